/**
 * UDP through a SOCKS5 proxy (RFC 1928 §7, UDP ASSOCIATE).
 *
 * `Socks5UdpAssociation`: one association towards one destination — a TCP control connection
 * to the proxy (the association lives exactly as long as it) and a UDP socket connected to
 * the relay address the proxy named, both with the bypass mark from their first packet. The
 * transparent UDP proxy (udp-redirect.ts) opens one per flow; `Socks5UdpRelay` below one per
 * local sender.
 *
 * Replies are believed only from the relay: the UDP socket is connected to the relay address
 * of the ASSOCIATE reply (BND.ADDR:BND.PORT; an unspecified BND.ADDR, 0.0.0.0 or ::, means
 * the address we reached the proxy at), so the kernel drops datagrams from any other source;
 * a reply must be a well-formed unfragmented frame (socks5-udp-frame.ts) naming the
 * destination we send to, with the address type we sent. Anything else is counted
 * (`bad-frame`, `fragment`, `forged`) and dropped, so a host that can reach our UDP port
 * cannot inject datagrams into the tunnel's apps.
 *
 * `Socks5UdpRelay`: a local forwarding relay to ONE fixed destination per listening socket
 * (a datagram arriving at `listen` goes to `target` through the proxy; answers go back to
 * its sender), one association per local sender address; sessions end after `sessionIdleMs`
 * without traffic or when the proxy closes the control connection. Datagrams arriving while
 * the association is being set up are queued (at most `maxPending`), the rest dropped. Used
 * where the original destination of a datagram cannot be read (no conntrack: the runtime's
 * DNS socket off Linux, configured forwards).
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIP, type Socket } from 'node:net';
import ipaddr, { type IPv6 } from '../util/ipaddr.js';
import { SocksClient } from 'socks';
import { markDgram } from '../native/sockmark.js';
import { classifySocksError, connectToProxy, socksProxy, type Socks5Options } from './socks5.js';
import {
  MAX_UDP_PAYLOAD,
  buildUdpFrame,
  frameIsFrom,
  parseUdpFrame,
  udpHeaderLength,
} from './socks5-udp-frame.js';
import { ProxyDialError, bindUdp, type Destination } from './types.js';

type SocksClientEstablishedEvent = Awaited<ReturnType<typeof SocksClient.createConnection>>;

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

/** why a datagram from the relay was dropped */
export type AssociationDrop = 'bad-frame' | 'fragment' | 'forged';

export interface Socks5UdpAssociationOptions {
  socks: Socks5Options;
  target: Destination;
  /** aborts the opening (the association is closed, `open` rejects) */
  signal?: AbortSignal | undefined;
  /** a genuine reply's payload */
  onReply: (data: Buffer) => void;
  onDrop: (why: AssociationDrop) => void;
  /** the association ended (control connection closed, socket error); not called by close() */
  onClose: () => void;
}

export class Socks5UdpAssociation {
  private closed = false;
  /** the largest payload one frame to `target` can carry */
  readonly maxPayload: number;
  /** the header of every frame we send (the target is fixed), and of every genuine reply */
  private readonly head: Buffer;
  /** the relay's address as the kernel reports it, once checked */
  private relaySeen: string | undefined;

  private constructor(
    private readonly o: Socks5UdpAssociationOptions,
    private readonly control: Socket,
    private readonly udp: UdpSocket,
    /** where replies come from (the socket is connected to it) */
    readonly relay: { host: string; port: number },
  ) {
    this.maxPayload = MAX_UDP_PAYLOAD - udpHeaderLength(o.target);
    this.head = buildUdpFrame(o.target, Buffer.alloc(0));
  }

  /** TCP to the proxy, UDP ASSOCIATE, the UDP socket connected to the relay; ProxyDialError on failure. */
  static async open(o: Socks5UdpAssociationOptions): Promise<Socks5UdpAssociation> {
    const control = await connectToProxy(o.socks, o.signal ? { signal: o.signal } : {});
    let udp: UdpSocket | undefined;
    try {
      let info: SocksClientEstablishedEvent;
      try {
        // createConnection() only does CONNECT; ASSOCIATE goes through the event API
        const client = new SocksClient({
          proxy: socksProxy(o.socks),
          command: 'associate',
          // the proxy learns our UDP source from the first datagram
          destination: { host: '0.0.0.0', port: 0 },
          timeout: o.socks.timeoutMs ?? 10_000,
        });
        info = await new Promise<SocksClientEstablishedEvent>((resolve, reject) => {
          client.once('established', resolve);
          client.once('error', reject);
          client.connect(control);
        });
        if (!info.remoteHost) throw new Error('SOCKS5 reply with an invalid address type');
      } catch (e) {
        throw new ProxyDialError(
          classifySocksError((e as Error).message),
          `SOCKS5 UDP ASSOCIATE at ${o.socks.server}:${o.socks.port} failed: ${(e as Error).message}`,
          { cause: e },
        );
      }
      const relay = relayAddress(info.remoteHost, control.remoteAddress ?? o.socks.server);
      const s = createSocket({ type: isIP(relay.host) === 6 ? 'udp6' : 'udp4' });
      udp = s;
      if (o.socks.bypassMark !== undefined) {
        await bindUdp(s, { host: isIP(relay.host) === 6 ? '::' : '0.0.0.0', port: 0 });
        markDgram(s, o.socks.bypassMark);
      }
      // connected: the kernel delivers only datagrams from the relay address
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.connect(relay.port, relay.host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      if (o.signal?.aborted) throw new ProxyDialError('timeout', 'UDP ASSOCIATE aborted');
      const a = new Socks5UdpAssociation(o, control, s, relay);
      a.wire();
      return a;
    } catch (e) {
      control.destroy();
      try {
        udp?.close();
      } catch {
        /* not open */
      }
      throw e instanceof ProxyDialError
        ? e
        : new ProxyDialError('unreachable', (e as Error).message, { cause: e });
    }
  }

  private wire(): void {
    const end = () => {
      if (this.closed) return;
      this.close();
      this.o.onClose();
    };
    this.udp.on('message', (m, from) => this.onMessage(m, from));
    this.udp.on('error', end);
    // the socket is half-open capable (connectToProxy): the proxy's FIN arrives as 'end' alone
    this.control.on('end', end);
    this.control.on('close', end);
    this.control.on('error', end);
    // RFC 1928: the control connection only keeps the association alive
    this.control.on('data', () => {});
    this.control.resume();
  }

  private onMessage(m: Buffer, from: RemoteInfo): void {
    // the socket is connected to the relay; checked again so the rule holds on its own
    // (the relay's spelling as the kernel reports it is checked once, then compared as text)
    if (from.address !== this.relaySeen) {
      if (from.port !== this.relay.port || canonicalHost(from.address) !== this.relay.host)
        return this.o.onDrop('forged');
      this.relaySeen = from.address;
    } else if (from.port !== this.relay.port) return this.o.onDrop('forged');
    // a genuine reply starts with exactly the header we send (RSV 0, FRAG 0, our ATYP,
    // address and port): compared as bytes, the frame reader only explains the rest
    if (
      m.length >= this.head.length &&
      m.compare(this.head, 0, this.head.length, 0, this.head.length) === 0
    )
      return this.o.onReply(m.subarray(this.head.length));
    const f = parseUdpFrame(m);
    if (f === 'malformed') return this.o.onDrop('bad-frame');
    if (f === 'fragment') return this.o.onDrop('fragment');
    if (!frameIsFrom(f, this.o.target)) return this.o.onDrop('forged');
    this.o.onReply(f.data);
  }

  /** Sends one datagram to the target through the relay; false when it cannot fit one frame. */
  send(data: Buffer): boolean {
    if (this.closed) return false;
    if (data.length > this.maxPayload) return false;
    // header and payload as two iovecs of one datagram: no copy of the payload
    this.udp.send([this.head, data]);
    return true;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.control.destroy();
    try {
      this.udp.close();
    } catch {
      /* already closed */
    }
  }
}

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
  errors: Partial<Record<'associate' | 'limit' | 'oversize' | AssociationDrop, number>>;
}

interface Session {
  key: string;
  client: RemoteInfo;
  assoc?: Socks5UdpAssociation;
  abort: AbortController;
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
      s = { key, client: from, pending: [], closed: false, abort: new AbortController() };
      this.sessions.set(key, s);
      this.st.sessions.total++;
      void this.associate(s);
    }
    this.touch(s);
    if (s.assoc) this.forward(s.assoc, msg);
    else if (s.pending.length < this.o.maxPending) s.pending.push(msg);
    else this.st.datagrams.dropped++;
  }

  private forward(a: Socks5UdpAssociation, data: Buffer): void {
    if (!a.send(data)) {
      this.count('oversize');
      this.st.datagrams.dropped++;
      return;
    }
    this.st.datagrams.up++;
    this.st.bytes.up += data.length;
  }

  private touch(s: Session): void {
    if (s.idle) s.idle.refresh();
    else s.idle = setTimeout(() => this.end(s), this.o.sessionIdleMs).unref();
  }

  private async associate(s: Session): Promise<void> {
    try {
      const a = await Socks5UdpAssociation.open({
        socks: this.o.socks,
        target: this.o.target,
        signal: s.abort.signal,
        onReply: (data) => this.onReply(s, data),
        onDrop: (why) => this.count(why),
        onClose: () => this.end(s),
      });
      if (s.closed) return a.close();
      s.assoc = a;
      for (const m of s.pending.splice(0)) this.forward(a, m);
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

  private onReply(s: Session, data: Buffer): void {
    this.touch(s);
    this.st.datagrams.down++;
    this.st.bytes.down += data.length;
    this.sock?.send(data, s.client.port, s.client.address);
  }

  private end(s: Session): void {
    s.closed = true;
    s.abort.abort();
    if (s.idle) clearTimeout(s.idle);
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    s.pending.length = 0;
    s.assoc?.close();
  }
}
