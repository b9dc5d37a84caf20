/**
 * The UDP side of the data plane (wireguard-go `conn.Bind`).
 *
 * Contract:
 * - `open(port)` binds (0 = random) and resolves to the actual port; opening an open bind
 *   closes the old sockets first. Rejects with AwgError('driver') when the port is in use.
 * - `onReceive(cb)` installs the one receiver (set before or after open). Datagrams are
 *   delivered with the source endpoint. A datagram's buffer is valid until the batch ends
 *   (`onBatchEnd`'s callback has returned; without batches, until the callback returns): the
 *   native bind hands over views of its receive block, reused by its next recvmmsg. A
 *   receiver that keeps bytes longer copies them.
 * - `send(bufs, ep)` sends each buffer as one datagram to ep, in order. Errors on a single
 *   datagram are swallowed (UDP is lossy anyway); a closed bind drops silently. The caller
 *   reuses the buffers once `send` returns (the device encrypts into one reused slab): a
 *   bind that keeps a datagram beyond the call (queued until the socket has room, an
 *   asynchronous send) keeps a copy.
 * - `close()` closes the sockets; idempotent.
 * - `setMark(mark)` sets SO_MARK where supported (no-op elsewhere).
 * - `onBatchEnd(cb)` (optional): a bind that receives in batches calls `cb` after the last
 *   datagram of each batch (at most one recvmmsg's); the device then opens the batch's
 *   transport messages (on the crypto pool) and writes its packets to the TUN at once.
 *   Without it the device writes after every datagram.
 */
export interface Endpoint {
  /** numeric IP address (v4 dotted or v6 without brackets) */
  readonly address: string;
  readonly port: number;
  /**
   * the local address the peer's datagram arrived on (binds that report it): what we send
   * to this endpoint leaves from there. Not part of the endpoint's identity.
   */
  readonly src?: string;
  /**
   * interface of `src`, needed only for a link-local IPv6 source; undefined rather than absent
   * otherwise, so the endpoints a bind makes per datagram keep one shape
   */
  readonly srcIfindex?: number | undefined;
}

export interface Bind {
  open(port: number): Promise<number>;
  onReceive(cb: ((data: Uint8Array, from: Endpoint) => void) | null): void;
  send(bufs: Uint8Array[], to: Endpoint): void;
  close(): Promise<void> | void;
  setMark?(mark: number): void;
  onBatchEnd?(cb: (() => void) | null): void;
  /**
   * Gives the pages of the receive memory back to the kernel while the tunnel is idle
   * (dataplane/buffers.ts): bytes released. Called between batches only.
   */
  releaseIdle?(): number;
}

export function isIPv6(address: string): boolean {
  return address.includes(':');
}

/** `1.2.3.4:51820` / `[::1]:51820` (netip.AddrPort.String form). */
export function formatEndpoint(ep: Endpoint): string {
  return isIPv6(ep.address) ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

/** Splits `host:port` / `[v6]:port`; the host may be a name. Returns null when malformed. */
export function splitHostPort(s: string): { host: string; port: number } | null {
  let host: string;
  let portStr: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return null;
    host = s.slice(1, end);
    portStr = s.slice(end + 2);
  } else {
    const i = s.lastIndexOf(':');
    if (i <= 0) return null;
    host = s.slice(0, i);
    if (host.includes(':')) return null;
    portStr = s.slice(i + 1);
  }
  if (!/^\d{1,5}$/.test(portStr)) return null;
  const port = Number(portStr);
  if (port > 65535 || host === '') return null;
  return { host, port };
}

export function sameEndpoint(
  a: Endpoint | null | undefined,
  b: Endpoint | null | undefined,
): boolean {
  return !!a && !!b && a.port === b.port && a.address === b.address;
}
