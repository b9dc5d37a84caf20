/**
 * One proxy tunnel at run time: what the daemon starts per `socks5`/`http` tunnel. It owns
 * the transparent proxy on `redirectPort` (the FirewallPolicy's TunnelRule.redirectPort;
 * `fallback` decides a failed dial, `block` by default), optionally a second one on
 * `directPort` (TunnelRule.redirectPortDirect: a failed dial redials direct, for rules with
 * `fallback: allow-direct`), the health checker of the upstream shared by both, and — for
 * SOCKS5 tunnels with `udp: true` — the UDP relays (one per forwarded destination).
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

export interface ProxyTunnelRuntimeOptions {
  name: string;
  upstream: ProxyUpstream;
  redirectPort: number;
  /** second listener whose failed dials redial direct (allow-direct rules) */
  directPort?: number | undefined;
  /** the tunnel's resolvers: TCP to port 53 goes to the first one */
  dns?: string[];
  /** UDP port of the DNS sockets (on the listen hosts): relay or DNS-over-TCP forwarder; needs `dns` */
  dnsUdpPort?: number | undefined;
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
    this.health.on('change', (c) => this.emit('state', c));
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
    if (resolver !== undefined && o.dnsUdpPort !== undefined) {
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
    this.dnsMode =
      resolver !== undefined && o.dnsUdpPort !== undefined ? (udp ? 'relay' : 'tcp') : undefined;
  }

  private readonly dnsMode: 'relay' | 'tcp' | undefined;

  async start(): Promise<void> {
    await this.proxy.start();
    try {
      await this.proxyDirect?.start();
      for (const r of this.relays) await r.start();
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
    ]);
  }

  stats(): ProxyTunnelStats {
    return {
      health: this.health.state,
      tcp: this.proxy.stats(),
      ...(this.proxyDirect ? { tcpDirect: this.proxyDirect.stats() } : {}),
      udp: this.relays.map((r) => r.stats()),
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
