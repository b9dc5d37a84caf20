/**
 * One proxy tunnel at run time: what the daemon starts per `socks5`/`http` tunnel. It owns
 * the transparent proxy on `redirectPort` (the FirewallPolicy's TunnelRule.redirectPort),
 * the health checker of the upstream, and — for SOCKS5 tunnels with `udp: true` — the UDP
 * relays (one per forwarded destination, e.g. the tunnel's resolvers).
 *
 * Events: `state` (HealthChange: unknown/up/down/auth-failed) and `dial-error`. The loop
 * should treat `down`/`auth-failed` like a WireGuard tunnel that is not up (apply the rules'
 * fallback in the firewall), and `auth-failed` as a terminal configuration problem.
 */
import { EventEmitter } from 'node:events';
import type { ProxyTunnel } from '../config/schema.js';
import { directDialer } from './direct.js';
import { fallbackDialer, type FallbackMode } from './fallback.js';
import {
  ProxyHealth,
  httpProbe,
  socks5Probe,
  type HealthChange,
  type HealthState,
} from './health.js';
import { httpConnectDialer } from './http-connect.js';
import { socks5Dialer, type ProxyAuth } from './socks5.js';
import { Socks5UdpRelay, type Socks5UdpRelayStats } from './socks5-udp.js';
import { TransparentProxy, type DialFailure, type TransparentProxyStats } from './transparent.js';
import type { Destination, Dialer } from './types.js';

export interface ProxyTunnelRuntimeOptions {
  name: string;
  tunnel: ProxyTunnel;
  /** `tunnel.auth.password` resolved (secrets are resolved by the caller) */
  password?: string;
  redirectPort: number;
  /** `::` by default: the nft redirect sends v4 to 127.0.0.1 and v6 to ::1 */
  listenHost?: string;
  bypassMark: number;
  /** what happens when the upstream cannot be dialled (the matching rule's fallback) */
  fallback?: FallbackMode;
  /** further upstreams for `failover` (dialers of other proxy tunnels) */
  failoverCandidates?: Dialer[];
  /** UDP forwards through SOCKS5 UDP ASSOCIATE (ignored unless socks5 with udp: true) */
  udpForwards?: { listen: { host: string; port: number }; target: Destination }[];
  idleTimeoutMs?: number;
  maxConnections?: number;
  healthIntervalMs?: number;
  connectTimeoutMs?: number;
}

export interface ProxyTunnelStats {
  health: HealthState;
  tcp: TransparentProxyStats;
  udp: Socks5UdpRelayStats[];
}

export class ProxyTunnelRuntime extends EventEmitter<{
  state: [HealthChange];
  'dial-error': [DialFailure];
  error: [Error];
}> {
  readonly health: ProxyHealth;
  readonly proxy: TransparentProxy;
  readonly relays: Socks5UdpRelay[] = [];
  /** the dialer of this tunnel's own upstream (for other tunnels' failover lists) */
  readonly upstream: Dialer;

  constructor(o: ProxyTunnelRuntimeOptions) {
    super();
    const t = o.tunnel;
    const auth: ProxyAuth | undefined = t.auth
      ? { username: t.auth.username, password: o.password ?? '' }
      : undefined;
    const base = {
      server: t.server,
      port: t.port,
      auth,
      bypassMark: o.bypassMark,
      timeoutMs: o.connectTimeoutMs ?? 10_000,
    };
    this.upstream =
      t.type === 'socks5' ? socks5Dialer(base) : httpConnectDialer({ ...base, tls: t.tls });
    this.health = new ProxyHealth({
      probe: t.type === 'socks5' ? socks5Probe(base) : httpProbe({ ...base, tls: t.tls }),
      intervalMs: o.healthIntervalMs ?? 10_000,
    });
    this.health.on('change', (c) => this.emit('state', c));
    const candidates = [this.upstream, ...(o.failoverCandidates ?? [])];
    this.proxy = new TransparentProxy({
      listen: { host: o.listenHost ?? '::', port: o.redirectPort },
      dial: fallbackDialer({
        candidates,
        mode: o.fallback ?? 'block',
        direct: directDialer({ bypassMark: o.bypassMark, timeoutMs: o.connectTimeoutMs ?? 10_000 }),
        // a tunnel known down is not dialled (no connect timeout per connection)
        isUp: (i) => i !== 0 || this.health.state !== 'down',
      }),
      idleTimeoutMs: o.idleTimeoutMs,
      maxConnections: o.maxConnections,
    });
    this.proxy.on('dial-error', (f) => this.emit('dial-error', f));
    this.proxy.on('error', (e) => this.emit('error', e));
    if (t.type === 'socks5' && t.udp)
      for (const f of o.udpForwards ?? [])
        this.relays.push(new Socks5UdpRelay({ listen: f.listen, target: f.target, socks: base }));
  }

  async start(): Promise<void> {
    await this.proxy.start();
    try {
      for (const r of this.relays) await r.start();
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.health.start();
  }

  async stop(): Promise<void> {
    this.health.stop();
    await Promise.all([this.proxy.close(), ...this.relays.map((r) => r.close())]);
  }

  stats(): ProxyTunnelStats {
    return {
      health: this.health.state,
      tcp: this.proxy.stats(),
      udp: this.relays.map((r) => r.stats()),
    };
  }
}
