/**
 * Shared types of the proxy-tunnel data path. A tunnel's upstream is a `Dialer`: given the
 * original destination of a redirected connection it returns a connected byte stream to it
 * (through the proxy, or directly for the `allow-direct` fallback).
 */
import type { Socket as UdpSocket } from 'node:dgram';
import type { Duplex } from 'node:stream';

export interface Destination {
  /** IPv4/IPv6 literal or host name */
  host: string;
  port: number;
}

export interface DialOptions {
  signal?: AbortSignal;
  /**
   * Dial from a local port in this inclusive range (macOS: a limited class's connections,
   * which PF's dummynet rules tell apart by port; resources/flow/flow-router-darwin.ts).
   * Dialers that cannot choose their local port ignore it.
   */
  localPorts?: readonly [number, number];
}

export type Dialer = (dst: Destination, opts?: DialOptions) => Promise<Duplex>;

/**
 * Why a dial failed. `unreachable`: the proxy itself did not accept a TCP connection (or
 * TLS) — the tunnel is down. `auth`: the proxy refused our credentials (407, RFC 1929
 * status ≠ 0, no acceptable method) — a configuration error, retrying does not help.
 * `rejected`: the proxy is up but refused this destination (403, SOCKS reply ≠ 0, 5xx).
 * `timeout`: no answer in time. `blocked`: the fallback policy refused to dial.
 * `protocol`: the proxy spoke something unexpected.
 */
export type DialErrorKind =
  'unreachable' | 'auth' | 'rejected' | 'timeout' | 'blocked' | 'protocol';

export class ProxyDialError extends Error {
  readonly kind: DialErrorKind;
  /** HTTP status or SOCKS reply code when the proxy gave one */
  readonly status: number | undefined;
  constructor(
    kind: DialErrorKind,
    message: string,
    opts: { status?: number | undefined; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ProxyDialError';
    this.kind = kind;
    this.status = opts.status;
  }
}

/** Socket-level errors from connect() → a DialErrorKind. */
export function classifySocketError(e: unknown): DialErrorKind {
  if (e instanceof ProxyDialError) return e.kind;
  const code = (e as { code?: string } | null)?.code;
  if (code === 'ETIMEDOUT') return 'timeout';
  return 'unreachable';
}

export function formatDst(d: Destination): string {
  return d.host.includes(':') ? `[${d.host}]:${d.port}` : `${d.host}:${d.port}`;
}

/** bind a UDP socket; rejects with the bind error (EADDRINUSE…) instead of emitting it */
export async function bindUdp(
  s: UdpSocket,
  listen: Destination,
): Promise<{ address: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(listen.port, listen.host, () => {
      s.off('error', reject);
      resolve();
    });
  });
  return s.address();
}
