/**
 * The transparent proxy of a proxy tunnel. nft `redirect to :PORT` (nat output, by tunnel
 * mark — see resources/firewall/render.ts) sends the tunnel's TCP here; each accepted
 * connection's original destination is read with SO_ORIGINAL_DST (native/origdst.ts) and
 * dialled through the tunnel's upstream (a Dialer: SOCKS5, HTTP CONNECT, or a fallback
 * chain), then both directions are piped.
 *
 * Contracts:
 * - Backpressure: the accepted socket starts paused (`pauseOnConnect`), so during the dial
 *   the app's bytes wait in the kernel; afterwards `pipe` stops reading a side whose
 *   destination is full. Nothing is buffered beyond each stream's highWaterMark.
 * - Half-close: a FIN from either side is forwarded as a FIN (`end()`) to the other; the
 *   opposite direction keeps flowing until it ends too (sockets are allowHalfOpen).
 * - Errors: a reset or error on one side resets the other (`resetAndDestroy`), so an app
 *   sees a failed connection, never a clean-looking EOF, when the upstream dies.
 * - A connection whose original destination equals the listener's own address was not
 *   redirected (docs/platform-linux.md#so_original_dst); it is refused so a direct connect cannot loop.
 * - The bypass mark is not set here: this module opens no outbound socket; dialers do.
 */
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { originalDst } from '../native/origdst.js';
import { ProxyDialError, type Destination, type DialErrorKind, type Dialer } from './types.js';

export interface TransparentProxyOptions {
  /**
   * The addresses to listen on: `127.0.0.1` and `::1` receive the nft redirects (v4 and v6:
   * `redirect` sends to the primary address of the loopback device). A wildcard (`::`) would
   * also take connections from the network, which could then use the proxy.
   */
  listen: { host: string | readonly string[]; port: number };
  dial: Dialer;
  /** close a connection after this long without traffic in either direction (default 5 min) */
  idleTimeoutMs?: number | undefined;
  /** accepted connections beyond this are reset (default 4096) */
  maxConnections?: number | undefined;
  /** per-socket stream buffer (default 64 KiB) */
  highWaterMark?: number;
  /** test hook: the original destination of an accepted socket (default SO_ORIGINAL_DST) */
  originalDestination?: (sock: Socket) => Destination;
  /** the dialer for one connection (the flow router decides per app); default `dial` */
  dialFor?: (client: Socket, dst: Destination) => Dialer;
}

export type ConnectionErrorKind =
  | `dial-${DialErrorKind}`
  | 'no-original-dst'
  | 'not-redirected'
  | 'limit'
  | 'idle-timeout'
  | 'client-error'
  | 'upstream-error';

export interface TransparentProxyStats {
  connections: { active: number; total: number };
  /** up: app → destination; down: destination → app (payload bytes on the app side) */
  bytes: { up: number; down: number };
  errors: Partial<Record<ConnectionErrorKind, number>>;
}

export interface DialFailure {
  dst: Destination;
  error: Error;
  kind: DialErrorKind;
}

export interface TransparentProxyEvents {
  'dial-error': [DialFailure];
  listening: [AddressInfo];
  error: [Error];
}

interface Conn {
  client: Socket;
  upstream?: Duplex;
}

/** v4 or v4-mapped local address → 4 */
function familyOf(local: string | undefined): 4 | 6 {
  if (!local) return 4;
  return local.includes(':') && !local.startsWith('::ffff:') ? 6 : 4;
}

function defaultOriginalDst(sock: Socket): Destination {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('accepted socket has no fd');
  const a = originalDst(fd, familyOf(sock.localAddress));
  return { host: a.address, port: a.port };
}

function sameAddress(a: string, b: string | undefined): boolean {
  if (!b) return false;
  const strip = (x: string) => (x.startsWith('::ffff:') ? x.slice(7) : x);
  return strip(a) === strip(b);
}

export class TransparentProxy extends EventEmitter<TransparentProxyEvents> {
  /** the options with the defaults filled in */
  private readonly opts: TransparentProxyOptions & {
    idleTimeoutMs: number;
    maxConnections: number;
    highWaterMark: number;
  };
  private readonly servers: Server[] = [];
  private readonly conns = new Set<Conn>();
  private total = 0;
  private doneUp = 0;
  private doneDown = 0;
  private readonly errors: Partial<Record<ConnectionErrorKind, number>> = {};

  constructor(opts: TransparentProxyOptions) {
    super();
    this.opts = {
      ...opts,
      idleTimeoutMs: opts.idleTimeoutMs ?? 300_000,
      maxConnections: opts.maxConnections ?? 4096,
      highWaterMark: opts.highWaterMark ?? 64 * 1024,
    };
  }

  /**
   * Starts listening on every host (port 0: the first one picks the port, the others take
   * the same); resolves with the first one's address. A host after the first that does not
   * exist here (`::1` with IPv6 off: EADDRNOTAVAIL, EAFNOSUPPORT) is skipped.
   */
  async start(): Promise<AddressInfo> {
    if (this.servers.length) throw new Error('TransparentProxy already started');
    const h = this.opts.listen.host;
    const hosts = typeof h === 'string' ? [h] : [...h];
    let port = this.opts.listen.port;
    try {
      for (const [i, host] of hosts.entries()) {
        const server = createServer({
          allowHalfOpen: true,
          pauseOnConnect: true,
          highWaterMark: this.opts.highWaterMark,
        } as Parameters<typeof createServer>[0]);
        server.on('connection', (s) => this.onConnection(s));
        server.on('error', (e) => this.emit('error', e));
        try {
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen({ host, port }, () => {
              server.off('error', reject);
              resolve();
            });
          });
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? '';
          if (i > 0 && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
          throw e;
        }
        this.servers.push(server);
        port = (server.address() as AddressInfo).port;
      }
    } catch (e) {
      await this.close();
      throw e;
    }
    const a = this.servers[0]!.address() as AddressInfo;
    this.emit('listening', a);
    return a;
  }

  /** the first listening address */
  address(): AddressInfo | undefined {
    return (this.servers[0]?.address() as AddressInfo | null) ?? undefined;
  }

  /** every listening address */
  addresses(): AddressInfo[] {
    return this.servers.map((s) => s.address() as AddressInfo);
  }

  /** Stops accepting and resets every open connection. */
  async close(): Promise<void> {
    const servers = this.servers.splice(0);
    for (const c of this.conns) this.teardown(c, true);
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  stats(): TransparentProxyStats {
    let up = this.doneUp;
    let down = this.doneDown;
    for (const c of this.conns) {
      up += c.client.bytesRead;
      down += c.client.bytesWritten;
    }
    return {
      connections: { active: this.conns.size, total: this.total },
      bytes: { up, down },
      errors: { ...this.errors },
    };
  }

  private count(kind: ConnectionErrorKind): void {
    this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  private onConnection(client: Socket): void {
    this.total++;
    client.on('error', () => {}); // handled per connection below; never crash the daemon
    if (this.conns.size >= this.opts.maxConnections) {
      this.count('limit');
      client.resetAndDestroy();
      return;
    }
    let dst: Destination;
    try {
      dst = (this.opts.originalDestination ?? defaultOriginalDst)(client);
    } catch {
      this.count('no-original-dst');
      client.resetAndDestroy();
      return;
    }
    if (sameAddress(dst.host, client.localAddress) && dst.port === client.localPort) {
      this.count('not-redirected');
      client.resetAndDestroy();
      return;
    }
    const conn: Conn = { client };
    this.conns.add(conn);
    const ac = new AbortController();
    client.setTimeout(this.opts.idleTimeoutMs, () => {
      this.count('idle-timeout');
      this.teardown(conn, true);
    });
    client.on('error', () => {
      this.count('client-error');
      this.teardown(conn, true);
    });
    client.once('close', (hadError) => {
      ac.abort();
      const clean = !hadError && client.readableEnded && client.writableFinished;
      // a clean close leaves the upstream to flush the FIN it was given by pipe()
      if (!clean) this.teardown(conn, true);
      else if (!conn.upstream || conn.upstream.destroyed) this.finish(conn);
    });
    (this.opts.dialFor?.(client, dst) ?? this.opts.dial)(dst, { signal: ac.signal }).then(
      (up) => this.wire(conn, up),
      (e: unknown) => {
        const error = e instanceof Error ? e : new Error(String(e));
        const kind: DialErrorKind = e instanceof ProxyDialError ? e.kind : 'unreachable';
        this.count(`dial-${kind}`);
        if (this.listenerCount('dial-error') > 0) this.emit('dial-error', { dst, error, kind });
        this.teardown(conn, true);
      },
    );
  }

  private wire(conn: Conn, up: Duplex): void {
    const { client } = conn;
    if (client.destroyed) {
      up.destroy();
      return;
    }
    conn.upstream = up;
    up.on('error', () => {
      this.count('upstream-error');
      this.teardown(conn, true);
    });
    up.once('close', () => {
      const clean = up.readableEnded && up.writableFinished;
      if (!clean) this.teardown(conn, true);
      else if (client.destroyed) this.finish(conn);
    });
    // pipe() forwards a FIN as end() and honours backpressure in each direction
    client.pipe(up);
    up.pipe(client);
    client.resume();
  }

  /** Destroys both sides; `reset`: send RST to the app instead of a FIN. */
  private teardown(conn: Conn, reset: boolean): void {
    const { client, upstream } = conn;
    if (!client.destroyed) {
      if (reset) client.resetAndDestroy();
      else client.destroy();
    }
    if (upstream && !upstream.destroyed) upstream.destroy();
    this.finish(conn);
  }

  private finish(conn: Conn): void {
    if (!this.conns.delete(conn)) return;
    this.doneUp += conn.client.bytesRead;
    this.doneDown += conn.client.bytesWritten;
  }
}
