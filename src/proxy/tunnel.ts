/**
 * One proxy tunnel at run time: what the daemon starts per `socks5`/`http` tunnel. It owns
 * the transparent proxy on `redirectPort` (the FirewallPolicy's TunnelRule.redirectPort;
 * `fallback` decides a failed dial, `block` by default), optionally a second one on
 * `directPort` (TunnelRule.redirectPortDirect: a failed dial redials direct, for rules with
 * `fallback: allow-direct`), the health checker of the upstream shared by both, and the
 * transparent UDP proxies (`udpOrigin` given: Linux, where conntrack names a redirected
 * datagram's destination; udp-redirect.ts): on `redirectPort` for a SOCKS5 tunnel with
 * `udp: true` (every flow through its own UDP ASSOCIATE; none carried → dropped), and on
 * `directPort` for every proxy tunnel (through the proxy when it carries UDP and is up,
 * otherwise sent directly with the bypass mark). Configured `udpForwards` get a relay each.
 *
 * DNS (`dns` servers given): a redirected TCP connection to port 53 is sent to the tunnel's
 * first resolver instead of its original destination (per-app DNS, as the DNAT of WireGuard
 * tunnels); `dnsUdpPort` binds a UDP socket for the firewall's UDP/53 redirect: a SOCKS5 UDP
 * ASSOCIATE relay to that resolver when the tunnel carries UDP, otherwise a forwarder that
 * sends each query as DNS over TCP to that resolver through the proxy and returns the answer
 * over UDP (dns-forward.ts). Kernel: a reply to a redirected datagram is un-NATed only if it
 * leaves from the address the redirect chose (127.0.0.1 / ::1); a socket bound to `::`
 * answers from the app's own address and the app's connected socket drops it.
 *
 * Every listener (TCP and UDP) binds the loopback addresses 127.0.0.1 and ::1 only (the
 * targets of the nft `redirect`), never a wildcard: a host on the network must not be able
 * to use the tunnel's proxy (or its credentials) through our listeners.
 *
 * Events: `state` (HealthChange: unknown/up/down/auth-failed) and `dial-error`. The loop
 * should treat `down`/`auth-failed` like a WireGuard tunnel that is not up (apply the rules'
 * fallback in the firewall), and `auth-failed` as a terminal configuration problem.
 */
import { EventEmitter } from 'node:events';
import { directDialer } from './direct.js';
import { fallbackDialer, type FallbackMode } from './fallback.js';
import {
  ProxyHealth,
  httpProbe,
  socks5Probe,
  type HealthChange,
  type HealthState,
} from './upstream-health.js';
import { httpConnectDialer } from './http-connect.js';
import { socks5Dialer, type ProxyAuth } from './socks5.js';
import { Socks5UdpRelay, type Socks5UdpRelayStats } from './socks5-udp.js';
import { DnsTcpForwarder, type DnsTcpForwarderStats } from './dns-forward.js';
import { TransparentProxy, type DialFailure, type TransparentProxyStats } from './transparent.js';
import { UdpRedirectProxy, type UdpPeer, type UdpRedirectStats } from './udp-redirect.js';
import type { Destination, Dialer } from './types.js';

/** The upstream proxy of a tunnel. */
export interface ProxyUpstream {
  type: 'socks5' | 'http';
  server: string;
  port: number;
  /** SOCKS5 RFC 1929 / HTTP Basic; the password resolved by the caller */
  auth?: ProxyAuth | undefined;
  /** socks5: carry UDP (the DNS relay, `udpForwards`) through UDP ASSOCIATE */
  udp?: boolean;
  /** http: TLS to the proxy */
  tls?: boolean;
}

/** where redirected datagrams were going (Linux: conntrack); closed when the runtime stops */
export interface UdpOriginSource {
  origin(peer: UdpPeer): Destination | undefined;
  close?(): void;
}

export interface ProxyTunnelRuntimeOptions {
  name: string;
  upstream: ProxyUpstream;
  redirectPort: number;
  /** second listener whose failed dials redial direct (allow-direct rules) */
  directPort?: number | undefined;
  /** the tunnel's resolvers: TCP to port 53 goes to the first one */
  dns?: string[];
  /**
   * UDP port of the DNS sockets (on the listen hosts), needs `dns`: the DNS-over-TCP forwarder,
   * or with `udp: true` a relay to the resolver — unless the transparent UDP proxy listens on
   * that port (`udpOrigin`), which sends port 53 to the resolver itself
   */
  dnsUdpPort?: number | undefined;
  /**
   * the original destination of a datagram the firewall redirected to us (Linux: conntrack);
   * absent: no transparent UDP proxy
   */
  udpOrigin?: UdpOriginSource | undefined;
  /** transparent UDP: a flow ends after this long without a datagram (default 60 s) */
  udpIdleMs?: number | undefined;
  /** transparent UDP: flows per listener (default 512) */
  udpMaxFlows?: number | undefined;
  /** 127.0.0.1 and ::1 by default (the nft redirect sends v4 to 127.0.0.1 and v6 to ::1); tests give one */
  listenHost?: string;
  bypassMark: number;
  /** the proxy server's host name → addresses (default: the system resolver) */
  resolveServer?: (host: string) => Promise<string[]>;
  /** what happens when the upstream cannot be dialled (the matching rule's fallback) */
  fallback?: FallbackMode;
  /** further upstreams for `failover` (dialers of other proxy tunnels) */
  failoverCandidates?: Dialer[];
  /** UDP forwards through SOCKS5 UDP ASSOCIATE (ignored unless socks5 with udp: true) */
  udpForwards?: { listen: { host: string; port: number }; target: Destination }[];
  idleTimeoutMs?: number;
  maxConnections?: number;
  healthIntervalMs?: number | undefined;
  connectTimeoutMs?: number;
}

export interface ProxyTunnelStats {
  health: HealthState;
  tcp: TransparentProxyStats;
  /** the allow-direct listener */
  tcpDirect?: TransparentProxyStats;
  udp: Socks5UdpRelayStats[];
  /** the transparent UDP proxies: `strict` on redirectPort, `direct` on directPort */
  udpFlows?: { strict?: UdpRedirectStats; direct?: UdpRedirectStats };
  /** the UDP/53 sockets: `relay` (SOCKS5 UDP ASSOCIATE) or `tcp` (DNS over TCP through the proxy) */
  dns?: { mode: 'relay' | 'tcp'; relay?: Socks5UdpRelayStats[]; tcp?: DnsTcpForwarderStats[] };
}

export class ProxyTunnelRuntime extends EventEmitter<{
  state: [HealthChange];
  'dial-error': [DialFailure];
  error: [Error];
}> {
  readonly health: ProxyHealth;
  readonly proxy: TransparentProxy;
  /** the allow-direct listener (when `directPort` is given) */
  readonly proxyDirect: TransparentProxy | undefined;
  readonly relays: Socks5UdpRelay[] = [];
  /** the UDP/53 sockets (see dnsUdpPort) */
  readonly dnsSockets: (Socks5UdpRelay | DnsTcpForwarder)[] = [];
  /** the transparent UDP proxy on redirectPort (a tunnel that carries UDP) */
  readonly udpStrict: UdpRedirectProxy | undefined;
  /** the transparent UDP proxy on directPort (allow-direct rules) */
  readonly udpDirect: UdpRedirectProxy | undefined;
  /** the dialer of this tunnel's own upstream (for other tunnels' failover lists) */
  readonly upstream: Dialer;

  constructor(o: ProxyTunnelRuntimeOptions) {
    super();
    const t = o.upstream;
    const base = {
      server: t.server,
      port: t.port,
      auth: t.auth,
      bypassMark: o.bypassMark,
      timeoutMs: o.connectTimeoutMs ?? 10_000,
      ...(o.resolveServer ? { resolve: o.resolveServer } : {}),
    };
    this.upstream =
      t.type === 'socks5'
        ? socks5Dialer(base)
        : httpConnectDialer({ ...base, tls: t.tls ?? false });
    this.health = new ProxyHealth({
      probe: t.type === 'socks5' ? socks5Probe(base) : httpProbe({ ...base, tls: t.tls ?? false }),
      intervalMs: o.healthIntervalMs ?? 10_000,
    });
    this.health.on('change', (c) => {
      if (c.to === 'up') for (const u of this.udpProxies()) u.healthUp();
      this.emit('state', c);
    });
    const candidates = [this.upstream, ...(o.failoverCandidates ?? [])];
    const direct = directDialer({
      bypassMark: o.bypassMark,
      timeoutMs: o.connectTimeoutMs ?? 10_000,
    });
    const resolver = o.dns?.[0];
    const toResolver = (d: Destination): Destination =>
      resolver !== undefined && d.port === 53 ? { host: resolver, port: 53 } : d;
    const dialer = (mode: FallbackMode): Dialer =>
      fallbackDialer({
        candidates,
        mode,
        direct,
        // a tunnel known down is not dialled (no connect timeout per connection)
        isUp: (i) => i !== 0 || this.health.state !== 'down',
      });
    const hosts = o.listenHost !== undefined ? [o.listenHost] : ['127.0.0.1', '::1'];
    const listener = (port: number, mode: FallbackMode): TransparentProxy => {
      const dial = dialer(mode);
      const p = new TransparentProxy({
        listen: { host: hosts, port },
        dial: (dst, opts) => dial(toResolver(dst), opts),
        idleTimeoutMs: o.idleTimeoutMs,
        maxConnections: o.maxConnections,
      });
      p.on('dial-error', (f) => this.emit('dial-error', f));
      p.on('error', (e) => this.emit('error', e));
      return p;
    };
    this.proxy = listener(o.redirectPort, o.fallback ?? 'block');
    this.proxyDirect =
      o.directPort !== undefined ? listener(o.directPort, 'allow-direct') : undefined;
    const udp = t.type === 'socks5' && t.udp === true;
    if (udp)
      for (const f of o.udpForwards ?? [])
        this.relays.push(new Socks5UdpRelay({ listen: f.listen, target: f.target, socks: base }));
    const udpProxy = (port: number, fallback: 'block' | 'allow-direct') => {
      const u = new UdpRedirectProxy({
        listen: { host: hosts, port },
        origin: (p) => o.udpOrigin!.origin(p),
        socks: udp ? base : undefined,
        fallback,
        bypassMark: o.bypassMark,
        isDown: () => this.health.state === 'down' || this.health.state === 'auth-failed',
        target: toResolver,
        ...(o.udpIdleMs !== undefined ? { idleMs: o.udpIdleMs } : {}),
        ...(o.udpMaxFlows !== undefined ? { maxFlows: o.udpMaxFlows } : {}),
      });
      u.on('associate-error', (f) =>
        this.emit('dial-error', { dst: f.dst, error: f.error, kind: f.error.kind }),
      );
      u.on('error', (e) => this.emit('error', e));
      return u;
    };
    this.udpStrict = o.udpOrigin && udp ? udpProxy(o.redirectPort, 'block') : undefined;
    this.udpDirect =
      o.udpOrigin && o.directPort !== undefined
        ? udpProxy(o.directPort, 'allow-direct')
        : undefined;
    // with a transparent UDP proxy on redirectPort, UDP/53 is one of its flows (to the resolver)
    if (resolver !== undefined && o.dnsUdpPort !== undefined && !this.udpStrict) {
      // the strict listener's policy: DNS never falls back to a direct query
      const dnsDial = dialer(o.fallback === 'failover' ? 'failover' : 'block');
      for (const host of hosts) {
        const listen = { host, port: o.dnsUdpPort };
        const target = { host: resolver, port: 53 };
        this.dnsSockets.push(
          udp
            ? new Socks5UdpRelay({ listen, target, socks: base })
            : new DnsTcpForwarder({ listen, resolver: target, dial: dnsDial }),
        );
      }
    }
    for (const r of [...this.relays, ...this.dnsSockets])
      r.on('error', (e: Error) => this.emit('error', e));
    this.udpOriginSource = o.udpOrigin;
    this.dnsMode =
      resolver !== undefined && o.dnsUdpPort !== undefined ? (udp ? 'relay' : 'tcp') : undefined;
  }

  private udpProxies(): UdpRedirectProxy[] {
    return [this.udpStrict, this.udpDirect].filter((u): u is UdpRedirectProxy => !!u);
  }

  private readonly dnsMode: 'relay' | 'tcp' | undefined;
  private readonly udpOriginSource: UdpOriginSource | undefined;

  async start(): Promise<void> {
    await this.proxy.start();
    try {
      await this.proxyDirect?.start();
      for (const r of this.relays) await r.start();
      for (const u of this.udpProxies()) await u.start();
      for (const [i, d] of this.dnsSockets.entries()) {
        try {
          await d.start();
        } catch (e) {
          // ::1 is optional (IPv6 may be off on lo); 127.0.0.1 is not
          if (
            i === 0 ||
            !['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes((e as NodeJS.ErrnoException).code ?? '')
          )
            throw e;
        }
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.health.start();
  }

  async stop(): Promise<void> {
    this.health.stop();
    await Promise.all([
      this.proxy.close(),
      this.proxyDirect?.close(),
      ...this.dnsSockets.map((d) => d.close()),
      ...this.relays.map((r) => r.close()),
      ...this.udpProxies().map((u) => u.close()),
    ]);
    this.udpOriginSource?.close?.();
  }

  stats(): ProxyTunnelStats {
    return {
      health: this.health.state,
      tcp: this.proxy.stats(),
      ...(this.proxyDirect ? { tcpDirect: this.proxyDirect.stats() } : {}),
      udp: this.relays.map((r) => r.stats()),
      ...(this.udpStrict || this.udpDirect
        ? {
            udpFlows: {
              ...(this.udpStrict ? { strict: this.udpStrict.stats() } : {}),
              ...(this.udpDirect ? { direct: this.udpDirect.stats() } : {}),
            },
          }
        : {}),
      ...(this.dnsMode
        ? {
            dns: {
              mode: this.dnsMode,
              ...(this.dnsMode === 'relay'
                ? { relay: this.dnsSockets.map((d) => (d as Socks5UdpRelay).stats()) }
                : { tcp: this.dnsSockets.map((d) => (d as DnsTcpForwarder).stats()) }),
            },
          }
        : {}),
    };
  }
}
