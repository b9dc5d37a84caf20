/**
 * The transparent UDP proxy of a proxy tunnel. nft `redirect to :PORT` (nat output, by tunnel
 * mark or per rule — resources/firewall/render.ts) sends the tunnel's UDP to our sockets on
 * 127.0.0.1 and ::1; the original destination of each flow is read from conntrack
 * (`origin`: ctnetlink by the reply tuple, native/conntrack.ts `redirectedUdpOrigin`), and
 * the flow is carried through its own SOCKS5 UDP association (socks5-udp.ts), or — the
 * `allow-direct` listener, when the proxy cannot carry it — by a socket of ours that sends
 * it directly with the bypass mark.
 *
 * Kernel facts this rests on (docs/platform-linux.md#proxy-tunnels-socks5-http-connect):
 * - A flow is what conntrack sees as one: the app's (address, port) → destination. Flows of
 *   one app socket to several destinations arrive from distinct source ports: a second
 *   entry whose reply tuple (listener → app) would clash gets its source port remapped by
 *   the null SNAT binding of postrouting. So the source a datagram arrives from names one
 *   conntrack entry, and that entry's original tuple names the destination.
 * - A reply sent from the listener's address (127.0.0.1 / ::1, never a wildcard) to that
 *   source is un-NATed by the same entry: the app receives it from the original destination.
 * - An entry outlives a silence of at least nf_conntrack_udp_timeout (30 s by default); a
 *   new entry may then reuse the source for another destination. A flow silent from the app
 *   for `revalidateMs` (1 s) therefore reads its entry again before its next datagram.
 *
 * Contracts:
 * - Per flow: one association (its own TCP control connection; the association lives as
 *   long as it) or one direct socket, connected to the relay / the destination, so the
 *   kernel drops datagrams from anyone else. The flow ends after `idleMs` without a datagram
 *   either way (a DNS flow, port 53, after at most 10 s), when the proxy closes the
 *   association, or at close(); its next datagram starts a new flow. A reply after a silence
 *   of `revalidateMs` is passed on only while the entry still names the flow (`expired`).
 * - At most `maxFlows` flows: a datagram that would start another is dropped (`limit`)
 *   until one ends. At most `maxPending` datagrams wait while an association opens.
 * - Fallback (`fallback`), decided per flow when it starts (fallback.ts decideFallback): a
 *   tunnel known down, or without UDP (`socks` absent), is not asked. `block`: the flow's
 *   datagrams are dropped for `retryMs`, then the next one tries again; `allow-direct`: the
 *   flow is sent directly (for its whole life; `healthUp()` ends direct flows so the next
 *   datagram goes through the proxy again). A proxy that refuses the association
 *   (`rejected`) never sends a flow direct.
 * - Only unicast destinations: a flow to a multicast, broadcast or unspecified address is
 *   dropped (`not-unicast`: an app's mDNS or SSDP is not sent to the proxy's network), and a
 *   datagram that was not redirected (its destination is the listener itself) is dropped
 *   (`not-redirected`): no loops.
 * - A datagram larger than one SOCKS5 frame can carry (65507 bytes of IPv4 UDP payload less
 *   the header) is dropped (`oversize`).
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import ipaddr, { type IPv6 } from '../util/ipaddr.js';
import type { ReceivedDatagram } from '../native/conntrack.js';
import { markDgram } from '../native/sockmark.js';
import { decideFallback } from './fallback.js';
import { Socks5UdpAssociation, canonicalHost, type AssociationDrop } from './socks5-udp.js';
import type { Socks5Options } from './socks5.js';
import { MAX_UDP_PAYLOAD } from './socks5-udp-frame.js';
import { ProxyDialError, bindUdp, formatDst, type Destination } from './types.js';

/** a datagram as our listener received it: the app's (possibly remapped) source, our address */
export type UdpPeer = ReceivedDatagram;

export type UdpFlowError =
  | 'no-origin'
  | 'not-redirected'
  | 'not-unicast'
  | 'limit'
  | 'pending-full'
  | 'associate'
  | 'blocked'
  | 'direct'
  | 'oversize'
  | 'expired'
  | AssociationDrop;

export interface UdpRedirectStats {
  flows: { active: number; total: number; proxied: number; direct: number };
  /** up: app → destination; down: destination → app; dropped: datagrams of either way */
  datagrams: { up: number; down: number; dropped: number };
  bytes: { up: number; down: number };
  errors: Partial<Record<UdpFlowError, number>>;
}

export interface UdpRedirectProxyOptions {
  /** 127.0.0.1 and ::1 (the redirect targets); never a wildcard (docs: the DNS notes) */
  listen: { host: string | readonly string[]; port: number };
  /** the original destination of a redirected datagram; undefined when conntrack has no entry */
  origin: (peer: UdpPeer) => Destination | undefined;
  /** the proxy, when it carries UDP (SOCKS5 with `udp: true`) */
  socks?: Socks5Options | undefined;
  fallback: 'block' | 'allow-direct';
  /** SO_MARK of the direct sockets (the bypass mark) */
  bypassMark?: number | undefined;
  /** the proxy is known down (health): not asked */
  isDown?: () => boolean;
  /** where a flow to `dst` really goes (DNS to the tunnel's resolver); default: dst */
  target?: (dst: Destination) => Destination;
  /** a flow ends after this long without a datagram either way (default 60 s) */
  idleMs?: number;
  /** default 512 */
  maxFlows?: number;
  /** datagrams queued per flow while its association opens (default 16) */
  maxPending?: number;
  /** a flow that could not be carried drops its datagrams this long before trying again (default 5 s) */
  retryMs?: number;
  /** a flow silent from the app this long reads its conntrack entry again (default 1 s) */
  revalidateMs?: number;
  /** ms clock (default performance.now) */
  now?: () => number;
}

/** one listening socket and its address (read once: getsockname per datagram is a syscall) */
interface Listener {
  sock: UdpSocket;
  address: string;
  port: number;
  family: 4 | 6;
}

interface Flow {
  key: string;
  listener: Listener;
  client: { address: string; port: number };
  dst: Destination;
  target: Destination;
  state: 'opening' | 'proxy' | 'direct' | 'failed';
  assoc?: Socks5UdpAssociation;
  direct?: UdpSocket;
  pending: Buffer[];
  abort: AbortController;
  /** last datagram from the app / either way (now()) */
  lastUp: number;
  last: number;
  /** idleMs, or for DNS (port 53: one question, one answer) at most 10 s */
  idleMs: number;
  /** failed: when the next datagram may try again */
  retryAt?: number;
}

/** a DNS flow (port 53) ends after this long without a datagram (or idleMs when shorter) */
const DNS_IDLE_MS = 10_000;

const sameDst = (a: Destination, b: Destination) =>
  a.port === b.port && canonicalHost(a.host) === canonicalHost(b.host);

/** a destination a flow may go to: unicast (not multicast, broadcast or unspecified) */
export function unicastDestination(host: string): boolean {
  if (!ipaddr.isValid(host)) return false;
  let a = ipaddr.parse(host);
  if (a.kind() === 'ipv6' && (a as IPv6).isIPv4MappedAddress()) a = (a as IPv6).toIPv4Address();
  return !['multicast', 'broadcast', 'unspecified'].includes(a.range());
}

export class UdpRedirectProxy extends EventEmitter<{
  'associate-error': [{ dst: Destination; error: ProxyDialError }];
  error: [Error];
}> {
  private readonly socks: Listener[] = [];
  private readonly flows = new Map<string, Flow>();
  private readonly o: Required<Omit<UdpRedirectProxyOptions, 'socks' | 'bypassMark'>> &
    Pick<UdpRedirectProxyOptions, 'socks' | 'bypassMark'>;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly st: UdpRedirectStats = {
    flows: { active: 0, total: 0, proxied: 0, direct: 0 },
    datagrams: { up: 0, down: 0, dropped: 0 },
    bytes: { up: 0, down: 0 },
    errors: {},
  };

  constructor(o: UdpRedirectProxyOptions) {
    super();
    this.o = {
      ...o,
      isDown: o.isDown ?? (() => false),
      target: o.target ?? ((d) => d),
      idleMs: o.idleMs ?? 60_000,
      maxFlows: o.maxFlows ?? 512,
      maxPending: o.maxPending ?? 16,
      retryMs: o.retryMs ?? 5_000,
      revalidateMs: o.revalidateMs ?? 1_000,
      now: o.now ?? (() => performance.now()),
    };
  }

  /**
   * Binds every host (port 0: the first picks, the others take the same); a host after the
   * first that does not exist here (`::1` with IPv6 off) is skipped.
   */
  async start(): Promise<{ address: string; port: number }> {
    if (this.socks.length) throw new Error('UdpRedirectProxy already started');
    const h = this.o.listen.host;
    let port = this.o.listen.port;
    try {
      for (const [i, host] of (typeof h === 'string' ? [h] : [...h]).entries()) {
        const family = isIP(host) === 6 ? 6 : 4;
        const s = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
        let bound: { address: string; port: number };
        try {
          bound = await bindUdp(s, { host, port });
        } catch (e) {
          s.close();
          const code = (e as NodeJS.ErrnoException).code ?? '';
          if (i > 0 && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
          throw e;
        }
        port = bound.port;
        const l: Listener = { sock: s, address: bound.address, port, family };
        s.on('message', (m, r) => this.onMessage(l, m, r));
        s.on('error', (e) => this.emit('error', e));
        this.socks.push(l);
      }
    } catch (e) {
      await this.close();
      throw e;
    }
    const every = Math.max(100, Math.min(1_000, this.o.idleMs / 4));
    this.sweeper = setInterval(() => this.sweep(), every).unref();
    const first = this.socks[0]!;
    return { address: first.address, port: first.port };
  }

  /** every listening address */
  addresses(): { address: string; port: number }[] {
    return this.socks.map((l) => ({ address: l.address, port: l.port }));
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const f of [...this.flows.values()]) this.end(f);
    const ls = this.socks.splice(0);
    await Promise.all(ls.map((l) => new Promise<void>((r) => l.sock.close(() => r()))));
  }

  stats(): UdpRedirectStats {
    return structuredClone({
      ...this.st,
      flows: { ...this.st.flows, active: this.flows.size },
    });
  }

  /** the number of flows by state (tests, status) */
  flowStates(): Record<Flow['state'], number> {
    const n = { opening: 0, proxy: 0, direct: 0, failed: 0 };
    for (const f of this.flows.values()) n[f.state]++;
    return n;
  }

  /**
   * The proxy is up again: flows that went direct or were refused end, so their next
   * datagram goes through the proxy.
   */
  healthUp(): void {
    for (const f of [...this.flows.values()])
      if (f.state === 'direct' || f.state === 'failed') this.end(f);
  }

  /** Ends idle flows and failed flows whose hold-down is over (run periodically). */
  sweep(): void {
    const now = this.o.now();
    for (const f of [...this.flows.values()])
      if (now - f.last >= f.idleMs || (f.retryAt !== undefined && now >= f.retryAt)) this.end(f);
  }

  /** `n` datagrams dropped for reason `k` */
  private count(k: UdpFlowError, n = 1): void {
    if (n === 0) return;
    this.st.errors[k] = (this.st.errors[k] ?? 0) + n;
    this.st.datagrams.dropped += n;
  }

  /** a failed attempt (no datagram dropped by it) */
  private attempt(k: 'associate' | 'direct'): void {
    this.st.errors[k] = (this.st.errors[k] ?? 0) + 1;
  }

  private onMessage(l: Listener, msg: Buffer, from: RemoteInfo): void {
    const key = `${l.family}|${from.address}|${from.port}`;
    const now = this.o.now();
    let f = this.flows.get(key);
    if (f && now - f.lastUp >= this.o.revalidateMs) {
      // the entry may have expired and a new one reused the source for another destination
      const o = this.lookup(l, from);
      if (!o || !sameDst(o, f.dst)) {
        this.end(f);
        f = undefined;
      }
    }
    if (!f) {
      f = this.startFlow(l, key, from, now);
      if (!f) return;
    }
    f.lastUp = now;
    if (f.state !== 'failed') f.last = now;
    this.up(f, msg);
  }

  private lookup(l: Listener, from: { address: string; port: number }): Destination | undefined {
    try {
      return this.o.origin({
        family: l.family,
        addr: from.address,
        port: from.port,
        localAddr: l.address,
        localPort: l.port,
      });
    } catch (e) {
      this.emit('error', e instanceof Error ? e : new Error(String(e)));
      return undefined;
    }
  }

  private startFlow(l: Listener, key: string, from: RemoteInfo, now: number): Flow | undefined {
    const dst = this.lookup(l, from);
    if (!dst) return void this.count('no-origin');
    if (dst.port === l.port && canonicalHost(dst.host) === canonicalHost(l.address))
      return void this.count('not-redirected');
    if (!unicastDestination(dst.host)) return void this.count('not-unicast');
    if (this.flows.size >= this.o.maxFlows) return void this.count('limit');
    const f: Flow = {
      key,
      listener: l,
      client: { address: from.address, port: from.port },
      dst,
      target: this.o.target(dst),
      state: 'opening',
      pending: [],
      abort: new AbortController(),
      lastUp: now,
      last: now,
      idleMs: dst.port === 53 ? Math.min(this.o.idleMs, DNS_IDLE_MS) : this.o.idleMs,
    };
    this.flows.set(f.key, f);
    this.st.flows.total++;
    void this.open(f);
    return f;
  }

  private up(f: Flow, msg: Buffer): void {
    switch (f.state) {
      case 'opening':
        if (f.pending.length < this.o.maxPending) f.pending.push(msg);
        else this.count('pending-full');
        return;
      case 'failed':
        return this.count('blocked');
      case 'proxy':
        if (!f.assoc!.send(msg)) return this.count('oversize');
        break;
      case 'direct':
        if (msg.length > MAX_UDP_PAYLOAD) return this.count('oversize');
        f.direct!.send(msg);
        break;
    }
    this.st.datagrams.up++;
    this.st.bytes.up += msg.length;
  }

  private async open(f: Flow): Promise<void> {
    let err: ProxyDialError;
    if (this.o.socks && !this.o.isDown()) {
      try {
        const a = await Socks5UdpAssociation.open({
          socks: this.o.socks,
          target: f.target,
          signal: f.abort.signal,
          onReply: (data) => this.down(f, data),
          onDrop: (why) => this.count(why),
          onClose: () => this.end(f),
        });
        if (this.flows.get(f.key) !== f) return a.close();
        f.assoc = a;
        this.st.flows.proxied++;
        return this.ready(f, 'proxy');
      } catch (e) {
        if (this.flows.get(f.key) !== f) return;
        err =
          e instanceof ProxyDialError
            ? e
            : new ProxyDialError('unreachable', String((e as Error).message), { cause: e });
        this.attempt('associate');
        if (this.listenerCount('associate-error') > 0)
          this.emit('associate-error', { dst: f.target, error: err });
      }
    } else
      err = new ProxyDialError(
        'unreachable',
        this.o.socks ? 'the proxy is down (health check)' : 'the tunnel does not carry UDP',
      );
    const d = decideFallback(this.o.fallback, err.kind, {
      index: 0,
      candidates: 1,
      hops: 0,
      maxHops: 0,
      directTried: false,
    });
    if (d.action === 'direct') {
      try {
        await this.openDirect(f);
        return;
      } catch (e) {
        if (this.flows.get(f.key) !== f) return;
        this.attempt('direct');
        if (this.listenerCount('associate-error') > 0)
          this.emit('associate-error', {
            dst: f.target,
            error: new ProxyDialError(
              'unreachable',
              `direct UDP to ${formatDst(f.target)}: ${(e as Error).message}`,
              { cause: e },
            ),
          });
      }
    }
    this.fail(f);
  }

  private async openDirect(f: Flow): Promise<void> {
    const s = createSocket({ type: isIP(f.target.host) === 6 ? 'udp6' : 'udp4' });
    try {
      await bindUdp(s, { host: isIP(f.target.host) === 6 ? '::' : '0.0.0.0', port: 0 });
      if (this.o.bypassMark !== undefined) markDgram(s, this.o.bypassMark);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.connect(f.target.port, f.target.host, () => {
          s.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      s.close();
      throw e;
    }
    if (this.flows.get(f.key) !== f) return void s.close();
    f.direct = s;
    // connected: only the destination's datagrams arrive; an ICMP error (ECONNREFUSED) ends nothing
    s.on('message', (m) => this.down(f, m));
    s.on('error', () => {});
    this.st.flows.direct++;
    this.ready(f, 'direct');
  }

  private ready(f: Flow, state: 'proxy' | 'direct'): void {
    f.state = state;
    for (const m of f.pending.splice(0)) this.up(f, m);
  }

  private fail(f: Flow): void {
    if (this.flows.get(f.key) !== f) return;
    f.state = 'failed';
    this.count('blocked', f.pending.length);
    f.pending.length = 0;
    f.retryAt = this.o.now() + this.o.retryMs;
  }

  private down(f: Flow, data: Buffer): void {
    if (this.flows.get(f.key) !== f) return;
    const now = this.o.now();
    // after a silence the entry may be gone: a reply without it would reach the app un-NATed,
    // from the listener's address instead of the destination's
    if (now - f.last >= this.o.revalidateMs) {
      const o = this.lookup(f.listener, f.client);
      if (!o || !sameDst(o, f.dst)) {
        this.count('expired');
        return this.end(f);
      }
    }
    f.last = now;
    this.st.datagrams.down++;
    this.st.bytes.down += data.length;
    // from the listener's own address: conntrack un-NATs it to the original destination
    f.listener.sock.send(data, f.client.port, f.client.address);
  }

  private end(f: Flow): void {
    if (this.flows.get(f.key) === f) this.flows.delete(f.key);
    f.abort.abort();
    if (f.pending.length) this.st.datagrams.dropped += f.pending.length;
    f.pending.length = 0;
    f.assoc?.close();
    if (f.direct)
      try {
        f.direct.close();
      } catch {
        /* already closed */
      }
  }
}
