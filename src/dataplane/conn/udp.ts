/**
 * Real UDP bind on node:dgram. One dual-stack udp6 socket when the host has IPv6 (v4 peers
 * appear as ::ffff:a.b.c.d and are normalised), otherwise udp4. SO_MARK has no node API:
 * the platform layer injects `applyMark` (koffi setsockopt on the socket's fd); without it
 * `setMark` only records the value.
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { AwgError } from '../../errors.js';
import { type Bind, type Endpoint, isIPv6 } from './bind.js';

const MAPPED = '::ffff:';

export class UdpBind implements Bind {
  private sock: Socket | null = null;
  private dual = false;
  private receiver: ((data: Uint8Array, from: Endpoint) => void) | null = null;
  mark = 0;

  constructor(
    private readonly host?: string,
    private readonly applyMark?: (sock: Socket, mark: number) => void,
  ) {}

  async open(port: number): Promise<number> {
    await this.close();
    const attempts: Array<'udp6' | 'udp4'> = this.host
      ? [isIPv6(this.host) ? 'udp6' : 'udp4']
      : ['udp6', 'udp4'];
    let lastErr: unknown;
    for (const type of attempts) {
      const s = createSocket({ type, ipv6Only: false, reuseAddr: false });
      s.on('message', (msg, rinfo) => {
        const a =
          rinfo.address.startsWith(MAPPED) && rinfo.address.includes('.')
            ? rinfo.address.slice(MAPPED.length)
            : rinfo.address;
        this.receiver?.(msg, { address: a.replace(/%.*$/, ''), port: rinfo.port });
      });
      s.on('error', () => {});
      try {
        s.bind(port, this.host ?? (type === 'udp6' ? '::' : '0.0.0.0'));
        await Promise.race([
          once(s, 'listening'),
          once(s, 'error').then(([e]) => Promise.reject(e)),
        ]);
        this.sock = s;
        this.dual = type === 'udp6' && !this.host;
        if (this.mark && this.applyMark) this.applyMark(s, this.mark);
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

  send(bufs: Uint8Array[], to: Endpoint): void {
    const s = this.sock;
    if (!s) return;
    const addr = this.dual && !isIPv6(to.address) ? MAPPED + to.address : to.address;
    for (const b of bufs) s.send(b, to.port, addr, () => {});
  }

  setMark(mark: number): void {
    this.mark = mark;
    if (this.sock && this.applyMark) this.applyMark(this.sock, mark);
  }

  async close(): Promise<void> {
    const s = this.sock;
    this.sock = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
