/**
 * The flow router as the daemon hosts it on macOS (Platform.perApp 'flow-router'): the
 * router of flow-router-darwin.ts for the config the daemon converges to, running exactly
 * while the PF anchor redirects to it (resources/darwin-flow.ts: an enabled rule, or a
 * proxy tunnel as the default route).
 *
 * Order, so that no redirected SYN meets a closed port while the host can avoid it:
 * - `before(config)`, before the converge that may load the anchor's `rdr`: the router is
 *   listening (started, or updated: the next connection is judged by the new rules). A
 *   router that cannot listen throws AwgError('driver'): the run fails before it touches the
 *   host, and the previous state stays (retried with backoff).
 * - `after(config, converged)`, after the converge: a router the config no longer needs is
 *   closed once the anchor without `rdr` is in place (only after a converged run; a failed
 *   one may have rolled back to an anchor that still redirects).
 * - `stop()`: `down` and daemon stop, after the teardown. A kill switch kept across a stop
 *   keeps the anchor and its `rdr`: the apps' TCP then meets a closed port and is reset
 *   (fail-closed) until the next start.
 * A change of the tunnels (names, types) or of the port rebuilds the router (close, then
 * listen again: connections redirected in between are reset); a change of the rules,
 * default or ipv6 only updates it.
 *
 * What the router asks per connection comes from the daemon now (nothing captured at start):
 * tunnel health, the utun of a link (the utun registry), a proxy tunnel's upstream, the
 * physical interface of the default route the last run probed.
 */
import { AwgError, toAwgError } from '../../errors.js';
import type { Config } from '../../config/schema.js';
import type { Dialer } from '../../proxy/types.js';
import { resolveIfname } from '../../platform/darwin/utun.js';
import type { StateStore } from '../../util/state.js';
import { flowRouterPort, isProxyDefault } from '../darwin-flow.js';
import type { FlowRouter, RuleTraffic } from './flow-router.js';
// the router and its natives load with the first per-app config on macOS: a Linux daemon never
// loads them (its RSS is a Step 10 bar)
import type { DarwinFlowNatives } from './flow-router-darwin.js';

export type FlowConfig = Pick<Config, 'tunnels' | 'rules' | 'default' | 'routing' | 'ipv6'>;

export interface FlowRouterHostOptions {
  /** the system calls (default: the koffi bindings, loaded on the first start) */
  natives?: () => Promise<DarwinFlowNatives>;
  state: StateStore;
  tunnelUp(name: string): boolean;
  proxyDialer(tunnel: string): Dialer | undefined;
  /** the physical interface of the default route now */
  physical(): string | undefined;
  /** a connected subnet lookup (tests); default os.networkInterfaces() */
  subnets?(ifname: string): string[];
  /** a listener that failed after it started (reported; the run that follows restarts it) */
  onError?(message: string): void;
}

export interface FlowRouterStatus {
  state: 'off' | 'active';
  /** 127.0.0.1 / ::1 port */
  port?: number;
  /** decisions so far, by route (blocked, direct, tunnel names) */
  decisions?: Record<string, number>;
}

/** Does this config's PF anchor redirect to the router (resources/darwin-flow.ts)? */
export function needsFlowRouter(c: Pick<Config, 'rules' | 'default' | 'tunnels'>): boolean {
  return c.rules.some((r) => r.enabled) || isProxyDefault(c);
}

export class FlowRouterHost {
  private router: FlowRouter | undefined;
  private shape = '';
  private port: number | undefined;
  private natives: DarwinFlowNatives | undefined;
  /** the per-rule counts of routers this one replaced (a rebuild keeps them; `stop` ends them) */
  private carried = new Map<string, RuleTraffic>();

  constructor(private readonly o: FlowRouterHostOptions) {}

  async before(c: FlowConfig): Promise<void> {
    if (!needsFlowRouter(c)) return;
    const port = flowRouterPort(c.routing);
    const shape = JSON.stringify([port, Object.entries(c.tunnels).map(([n, t]) => [n, t.type]).sort()]);
    if (this.router && shape === this.shape) {
      this.router.update({ rules: c.rules, default: c.default, ipv6: c.ipv6 });
      return;
    }
    const counted = this.ruleTraffic();
    await this.stop();
    this.carried = counted;
    try {
      const flow = await import('./flow-router-darwin.js');
      this.natives ??= await (this.o.natives ?? (async () => flow.loadDarwinFlowNatives()))();
      const h = this.o;
      const { router } = flow.darwinFlowRouterFromConfig(c, {
        natives: this.natives,
        tunnelUp: (n) => h.tunnelUp(n),
        utun: (link) => resolveIfname(h.state, link),
        proxyDialer: (t) => h.proxyDialer(t),
        physical: () => h.physical(),
        ...(h.subnets ? { subnets: (i: string) => h.subnets!(i) } : {}),
      });
      // listen errors reject start(); later ones are reported (and without a listener an
      // 'error' event would throw)
      let started = false;
      router.proxy.on('error', (e: Error) => {
        if (started) h.onError?.(`flow router: ${e.message}`);
      });
      await router.start();
      started = true;
      this.router = router;
      this.shape = shape;
      this.port = port;
    } catch (e) {
      const err = toAwgError(e, 'driver');
      throw new AwgError(err.kind, `the flow router cannot listen on 127.0.0.1/::1 port ${port} (routing.proxyPortBase), so per-app rules cannot be applied: ${err.message}`, { cause: e });
    }
  }

  async after(c: FlowConfig | undefined, converged: boolean): Promise<void> {
    if (converged && (!c || !needsFlowRouter(c))) await this.stop();
  }

  async stop(): Promise<void> {
    const r = this.router;
    this.router = undefined;
    this.shape = '';
    this.port = undefined;
    this.carried = new Map();
    await r?.close();
  }

  /** per rule: connections and payload bytes since the router started (FlowRouter.ruleTraffic), across rebuilds */
  ruleTraffic(): Map<string, RuleTraffic> {
    const out = new Map<string, RuleTraffic>();
    for (const m of [this.carried, this.router?.ruleTraffic() ?? new Map<string, RuleTraffic>()])
      for (const [k, v] of m) {
        const t = out.get(k);
        out.set(k, t ? { connections: t.connections + v.connections, txBytes: t.txBytes + v.txBytes, rxBytes: t.rxBytes + v.rxBytes } : { ...v });
      }
    return out;
  }

  status(): FlowRouterStatus {
    const r = this.router;
    return r ? { state: 'active', ...(this.port !== undefined ? { port: this.port } : {}), decisions: Object.fromEntries(r.counts) } : { state: 'off' };
  }
}
