/**
 * UDP through a SOCKS5 proxy (RFC 1928 §7, UDP ASSOCIATE), as a local forwarding relay.
 *
 * How UDP reaches it: transparent UDP interception would need TPROXY (out of scope), and
 * SO_ORIGINAL_DST does not work for UDP (ENOPROTOOPT: docs/platform-linux.md#so_original_dst).
 * So the relay forwards
 * to ONE fixed destination per listening socket: a datagram arriving at `listen` is sent to
 * `target` through the proxy, and the answers come back to its sender. The intended use is
 * per-app DNS for a proxy tunnel: the firewall's per-app DNS rule DNATs the app's port-53
 * traffic to a local address (e.g. 127.0.0.53 + n), where a relay with target = the
 * tunnel's resolver listens on port 53. Covered: DNS and any other configured
 * (local port → remote host:port) forward. Not covered: arbitrary UDP of apps routed to a
 * proxy tunnel; the firewall must block (or send direct, per fallback) the rest of their UDP.
 *
 * One association (TCP control connection + UDP socket, both with the bypass mark) per local
 * sender address, so answers map back without guessing; sessions end after `sessionIdleMs`
 * without traffic or when the proxy closes the control connection. Datagrams arriving while
 * the association is being set up are queued (at most `maxPending`), the rest dropped.
 *
 * Replies are believed only from the relay: the association's UDP socket is connected to the
 * relay address the proxy named in its ASSOCIATE reply (BND.ADDR:BND.PORT; an unspecified
 * BND.ADDR, 0.0.0.0 or ::, means the address we reached the proxy at), so the kernel drops
 * datagrams from any other source; and a reply's frame address must be the destination we
 * send to (`target`). Anything else is counted (`forged`) and dropped, so a host that can
 * reach our UDP port cannot inject answers (e.g. DNS) into the tunnel's apps.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIP, type Socket } from 'node:net';
import ipaddr, { type IPv6 } from '../util/ipaddr.js';
import { SocksClient } from 'socks';

type SocksClientEstablishedEvent = Awaited<ReturnType<typeof SocksClient.createConnection>>;
import { markDgram } from '../native/sockmark.js';
import { classifySocksError, connectToProxy, socksProxy, type Socks5Options } from './socks5.js';
import { ProxyDialError, bindUdp, type Destination } from './types.js';

export interface Socks5UdpRelayOptions {
  listen: { host: string; port: number };
  target: Destination;
  socks: Socks5Options;
  sessionIdleMs?: number;
  maxSessions?: number;
  maxPending?: number;
}

export interface Socks5UdpRelayStats {
  sessions: { active: number; total: number };
  datagrams: { up: number; down: number; dropped: number };
  bytes: { up: number; down: number };
  errors: Partial<Record<'associate' | 'limit' | 'bad-frame' | 'forged', number>>;
}

/** An address in one spelling (IPv4-mapped IPv6 as IPv4, IPv6 compressed); names lower-cased. */
export function canonicalHost(h: string): string {
  if (!ipaddr.isValid(h)) return h.toLowerCase();
  const a = ipaddr.parse(h);
  if (a.kind() === 'ipv6' && (a as IPv6).isIPv4MappedAddress())
    return (a as IPv6).toIPv4Address().toString();
  return a.toString();
}

/**
 * Where the relay's datagrams come from: BND.ADDR:BND.PORT of the ASSOCIATE reply, or, when
 * BND.ADDR is unspecified (0.0.0.0, ::), the address of the proxy we are connected to. (The
 * `socks` package replaces a BND.ADDR of 0.0.0.0 by `proxy.ipaddress`, which we do not set:
 * it arrives as undefined.)
 */
export function relayAddress(
  bnd: { host?: string | undefined; port: number },
  proxyAddress: string,
): { host: string; port: number } {
  const unspecified =
    !bnd.host || (ipaddr.isValid(bnd.host) && ipaddr.parse(bnd.host).range() === 'unspecified');
  return { host: canonicalHost(unspecified ? proxyAddress : bnd.host!), port: bnd.port };
}

/** Whether a reply frame's address is the destination the relay sends to. */
export function frameFromTarget(
  frame: { host: string; port: number },
  target: Destination,
): boolean {
  return frame.port === target.port && canonicalHost(frame.host) === canonicalHost(target.host);
}

interface Session {
  key: string;
  client: RemoteInfo;
  control?: Socket;
  udp?: UdpSocket | undefined;
  relay?: { host: string; port: number };
  pending: Buffer[];
  idle?: NodeJS.Timeout;
  closed: boolean;
}

export class Socks5UdpRelay extends EventEmitter<{
  'associate-error': [ProxyDialError];
  error: [Error];
}> {
  private sock: UdpSocket | undefined;
  private readonly sessions = new Map<string, Session>();
  private readonly st: Socks5UdpRelayStats = {
    sessions: { active: 0, total: 0 },
    datagrams: { up: 0, down: 0, dropped: 0 },
    bytes: { up: 0, down: 0 },
    errors: {},
  };
  private readonly o: Required<Socks5UdpRelayOptions>;

  constructor(o: Socks5UdpRelayOptions) {
    super();
    this.o = {
      ...o,
      sessionIdleMs: o.sessionIdleMs ?? 60_000,
      maxSessions: o.maxSessions ?? 256,
      maxPending: o.maxPending ?? 16,
    };
  }

  async start(): Promise<{ address: string; port: number }> {
    const s = createSocket({ type: isIP(this.o.listen.host) === 6 ? 'udp6' : 'udp4' });
    this.sock = s;
    s.on('message', (m, r) => this.onMessage(m, r));
    s.on('error', (e) => this.emit('error', e));
    return bindUdp(s, this.o.listen);
  }

  address(): { address: string; port: number } | undefined {
    return this.sock?.address();
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) this.end(s);
    const s = this.sock;
    this.sock = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  stats(): Socks5UdpRelayStats {
    return structuredClone({
      ...this.st,
      sessions: { ...this.st.sessions, active: this.sessions.size },
    });
  }

  private count(k: keyof Socks5UdpRelayStats['errors']): void {
    this.st.errors[k] = (this.st.errors[k] ?? 0) + 1;
  }

  private onMessage(msg: Buffer, from: RemoteInfo): void {
    const key = `${from.address}|${from.port}`;
    let s = this.sessions.get(key);
    if (!s) {
      if (this.sessions.size >= this.o.maxSessions) {
        this.count('limit');
        this.st.datagrams.dropped++;
        return;
      }
      s = { key, client: from, pending: [], closed: false };
      this.sessions.set(key, s);
      this.st.sessions.total++;
      void this.associate(s);
    }
    this.touch(s);
    if (s.udp && s.relay) this.forward(s, msg);
    else if (s.pending.length < this.o.maxPending) s.pending.push(msg);
    else this.st.datagrams.dropped++;
  }

  private forward(s: Session, data: Buffer): void {
    const frame = SocksClient.createUDPFrame({ remoteHost: this.o.target, data });
    // connected to the relay (see associate)
    s.udp!.send(frame);
    this.st.datagrams.up++;
    this.st.bytes.up += data.length;
  }

  private touch(s: Session): void {
    if (s.idle) s.idle.refresh();
    else s.idle = setTimeout(() => this.end(s), this.o.sessionIdleMs).unref();
  }

  private async associate(s: Session): Promise<void> {
    try {
      const control = await connectToProxy(this.o.socks);
      s.control = control;
      if (s.closed) return this.end(s);
      let info: SocksClientEstablishedEvent;
      try {
        // createConnection() only does CONNECT; ASSOCIATE goes through the event API
        const client = new SocksClient({
          proxy: socksProxy(this.o.socks),
          command: 'associate',
          // the proxy learns our UDP source from the first datagram
          destination: { host: '0.0.0.0', port: 0 },
          timeout: this.o.socks.timeoutMs ?? 10_000,
        });
        info = await new Promise<SocksClientEstablishedEvent>((resolve, reject) => {
          client.once('established', resolve);
          client.once('error', reject);
          client.connect(control);
        });
      } catch (e) {
        throw new ProxyDialError(
          classifySocksError((e as Error).message),
          `SOCKS5 UDP ASSOCIATE at ${this.o.socks.server}:${this.o.socks.port} failed: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
      const relay = relayAddress(info.remoteHost!, control.remoteAddress ?? this.o.socks.server);
      const udp = createSocket({ type: isIP(relay.host) === 6 ? 'udp6' : 'udp4' });
      s.udp = udp; // closed by end() whatever happens next
      if (this.o.socks.bypassMark !== undefined) {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(0, () => {
            udp.off('error', reject);
            resolve();
          });
        });
        markDgram(udp, this.o.socks.bypassMark);
      }
      // connected: the kernel delivers only datagrams from the relay address
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.connect(relay.port, relay.host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      udp.on('message', (m, from) => this.onReply(s, m, from));
      udp.on('error', () => this.end(s));
      control.on('close', () => this.end(s));
      control.on('error', () => this.end(s));
      control.on('data', () => {}); // RFC 1928: the control connection only keeps the association alive
      control.resume();
      s.relay = relay;
      if (s.closed) return this.end(s);
      for (const m of s.pending.splice(0)) this.forward(s, m);
    } catch (e) {
      this.count('associate');
      const err =
        e instanceof ProxyDialError
          ? e
          : new ProxyDialError('unreachable', (e as Error).message, { cause: e });
      if (this.listenerCount('associate-error') > 0) this.emit('associate-error', err);
      this.st.datagrams.dropped += s.pending.length;
      this.end(s);
    }
  }

  private onReply(s: Session, m: Buffer, from: RemoteInfo): void {
    // the socket is connected to the relay; checked again so the rule holds on its own
    if (from.port !== s.relay?.port || canonicalHost(from.address) !== s.relay.host) {
      this.count('forged');
      return;
    }
    let data: Buffer;
    try {
      const f = SocksClient.parseUDPFrame(m);
      if (f.frameNumber) throw new Error('fragmented');
      if (!frameFromTarget(f.remoteHost, this.o.target)) {
        this.count('forged');
        return;
      }
      data = f.data;
    } catch {
      this.count('bad-frame');
      return;
    }
    this.touch(s);
    this.st.datagrams.down++;
    this.st.bytes.down += data.length;
    this.sock?.send(data, s.client.port, s.client.address);
  }

  private end(s: Session): void {
    s.closed = true;
    if (s.idle) clearTimeout(s.idle);
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    s.control?.destroy();
    try {
      s.udp?.close();
    } catch {
      /* already closed */
    }
    s.udp = undefined;
  }
}
