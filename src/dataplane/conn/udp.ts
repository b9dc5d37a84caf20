/**
 * Real UDP bind on node:dgram. One dual-stack udp6 socket when the host has IPv6 (v4 peers
 * appear as ::ffff:a.b.c.d and are normalised), otherwise udp4. SO_MARK has no node API:
 * the platform layer injects `applyMark` (koffi setsockopt on the socket's fd); without it
 * `setMark` only records the value.
 *
 * Send batching: on Linux the bind sends bursts with one `sendmmsg` on the socket's own fd
 * (src/native/udpbatch.ts; same socket, so SO_MARK and the bound port are unchanged) and
 * falls back to dgram.send for what sendmmsg did not take (full socket buffer, a failing
 * datagram, oversize) and whenever dgram still has queued sends (keeps order). Off with
 * AWG_UDP_BATCH=0 or `{ batch: false }`. UDP GSO only with AWG_UDP_GSO=1 or `{ gso: true }` (this
 * bind is the diagnosis path; the native one has it on by default):
 * runs of equal-size datagrams go out as one UDP_SEGMENT message each.
 *
 * `pin` (macOS): each socket is handed to it once bound and taken back when it closes, so it
 * stays pinned to the physical interface (conn/pin.ts).
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { AwgError } from '../../errors.js';
import { type Bind, type Endpoint, isIPv6 } from './bind.js';
import { dgramFd } from '../../native/sockmark.js';
import { UdpBatcher } from '../../native/udpbatch.js';
import type { SocketPin } from './pin.js';

const MAPPED = '::ffff:';

/**
 * Endpoints are always numeric: skip dgram's default dns.lookup, which per datagram runs an
 * IP regex and defers the send to the next tick (the largest JS cost of the send path).
 */
function numericLookup(
  address: string,
  _opts: unknown,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  cb(null, address, isIPv6(address) ? 6 : 4);
}

const ignoreSendError = () => {};

function openBatcher(s: Socket, family: 4 | 6, gso: boolean): UdpBatcher | null {
  try {
    return UdpBatcher.create(dgramFd(s), family, gso);
  } catch {
    return null; // dgram internals changed: per-datagram sends still work
  }
}

export class UdpBind implements Bind {
  private sock: Socket | null = null;
  private dual = false;
  private receiver: ((data: Uint8Array, from: Endpoint) => void) | null = null;
  private batcher: UdpBatcher | null = null;
  private readonly batch: boolean;
  private readonly gso: boolean;
  private readonly pin: SocketPin | undefined;
  private batchEnd: (() => void) | null = null;
  private batchPending = false;
  private readonly fireBatchEnd = () => {
    this.batchPending = false;
    this.batchEnd?.();
  };
  mark = 0;

  constructor(
    private readonly host?: string,
    private readonly applyMark?: (sock: Socket, mark: number) => void,
    opts: { batch?: boolean; gso?: boolean; pin?: SocketPin } = {},
  ) {
    this.pin = opts.pin;
    this.batch = opts.batch ?? process.env.AWG_UDP_BATCH !== '0';
    this.gso = opts.gso ?? process.env.AWG_UDP_GSO === '1';
  }

  /** Whether equal-size runs go out as UDP GSO (UDP_SEGMENT) messages (for tests). */
  get segmenting(): boolean {
    return this.batcher?.gso ?? false;
  }

  /** Whether bursts currently go through sendmmsg (for tests). */
  get batching(): boolean {
    return this.batcher !== null;
  }

  async open(port: number): Promise<number> {
    await this.close();
    const attempts: Array<'udp6' | 'udp4'> = this.host
      ? [isIPv6(this.host) ? 'udp6' : 'udp4']
      : ['udp6', 'udp4'];
    let lastErr: unknown;
    for (const type of attempts) {
      const s = createSocket({
        type,
        ipv6Only: false,
        reuseAddr: false,
        lookup: numericLookup as never,
      });
      s.on('message', (msg, rinfo) => {
        let a = rinfo.address;
        if (a.startsWith(MAPPED) && a.includes('.')) a = a.slice(MAPPED.length);
        else if (a.includes('%')) a = a.slice(0, a.indexOf('%'));
        this.receiver?.(msg, { address: a, port: rinfo.port });
        // libuv reads up to 32 datagrams per wakeup, one callback each: the batch ends in
        // the check phase that follows
        if (this.batchEnd && !this.batchPending) {
          this.batchPending = true;
          setImmediate(this.fireBatchEnd);
        }
      });
      s.on('error', () => {});
      try {
        // listeners first: with a synchronous lookup, bind may emit before it returns
        const listening = Promise.race([
          once(s, 'listening'),
          once(s, 'error').then(([e]) => Promise.reject(e)),
        ]);
        s.bind(port, this.host ?? (type === 'udp6' ? '::' : '0.0.0.0'));
        await listening;
        this.sock = s;
        this.dual = type === 'udp6' && !this.host;
        if (this.mark && this.applyMark) this.applyMark(s, this.mark);
        this.pin?.attach(s, type === 'udp6' ? 6 : 4);
        if (this.batch) this.batcher = openBatcher(s, type === 'udp6' ? 6 : 4, this.gso);
        return s.address().port;
      } catch (e) {
        lastErr = e;
        s.close();
        if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') break;
      }
    }
    const code = (lastErr as NodeJS.ErrnoException)?.code;
    throw new AwgError('driver', `cannot bind UDP port ${port}: ${code ?? String(lastErr)}`, {
      cause: lastErr,
    });
  }

  onReceive(cb: ((data: Uint8Array, from: Endpoint) => void) | null): void {
    this.receiver = cb;
  }

  onBatchEnd(cb: (() => void) | null): void {
    this.batchEnd = cb;
  }

  send(bufs: Uint8Array[], to: Endpoint): void {
    const s = this.sock;
    if (!s) return;
    let i = 0;
    // dgram sends still queued in libuv (EAGAIN earlier) go first: keep datagram order
    if (this.batcher && s.getSendQueueCount() === 0)
      i = this.batcher.send(bufs, to.address, to.port);
    if (i >= bufs.length) return;
    const addr = this.dual && !isIPv6(to.address) ? MAPPED + to.address : to.address;
    // dgram sends asynchronously and the caller reuses its buffers: send copies
    for (; i < bufs.length; i++) s.send(Buffer.from(bufs[i]!), to.port, addr, ignoreSendError);
  }

  setMark(mark: number): void {
    this.mark = mark;
    if (this.sock && this.applyMark) this.applyMark(this.sock, mark);
  }

  async close(): Promise<void> {
    const s = this.sock;
    this.sock = null;
    void this.batcher?.close();
    this.batcher = null;
    if (s) this.pin?.detach(s);
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
