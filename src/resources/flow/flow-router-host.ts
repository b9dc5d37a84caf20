/**
 * The flow router as the daemon hosts it on macOS (Platform.perApp 'flow-router'): the
 * router of flow-router-darwin.ts for the config the daemon converges to, running exactly
 * while the PF anchor redirects to it (resources/platform/darwin-flow.ts: an enabled rule, or a
 * proxy tunnel as the default route).
 *
 * Order, so that no redirected SYN meets a closed port while the host can avoid it:
 * - `before(config)`, before the converge that may load the anchor's `rdr`: the router is
 *   listening, TCP and UDP on the same port (started, or updated: the next connection or UDP
 *   flow is judged by the new rules). A router that cannot listen throws AwgError('driver'):
 *   the run fails before it touches the host, and the previous state stays (retried with
 *   backoff).
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
 *
 * `awg exec` registrations (exec-routes.ts) live here, not in a router: a rebuild keeps them.
 * `registerExec` takes one only while a router runs (without it PF redirects nothing, so the
 * choice could not be kept) and only for a tunnel or an enabled rule of its config. They end,
 * with a reason the caller is told (it stops its command): when `stop()` closes the router
 * (down, daemon stop, a config without per-app rules), or when a config edit removes the
 * tunnel or rule one names.
 */
import { AwgError, toAwgError } from '../../errors.js';
import type { Config } from '../../config/schema.js';
import type { DestinationSet } from '../../config/lists.js';
import type { Dialer } from '../../proxy/types.js';
import { resolveIfname } from '../../platform/darwin/utun.js';
import type { StateStore } from '../../util/state.js';
import { flowRouterPort, isProxyDefault } from '../platform/darwin-flow.js';
import type { FlowRouter, FlowShaping, RoutedFlowCount } from './flow-router.js';
import type { ShapeClass } from '../../model/policy.js';
import { darwinClassPorts } from '../../platform/darwin/dnctl.js';
import type { RuleTraffic } from '../engine/stats.js';
import { describeChoice, ExecRegistry, type ExecChoice } from './exec-routes.js';
import { ruleName, type TunnelUp } from '../../model/match.js';
// the router and its natives load with the first per-app config on macOS: a Linux daemon never
// loads them (its memory has a budget: bench/RESULTS.md)
import type { DarwinFlowNatives } from './flow-router-darwin.js';

export type FlowConfig = Pick<Config, 'tunnels' | 'rules' | 'default' | 'routing' | 'ipv6'>;

export interface FlowRouterHostOptions {
  /** the system calls (default: the koffi bindings, loaded on the first start) */
  natives?: () => Promise<DarwinFlowNatives>;
  state: StateStore;
  tunnelUp: TunnelUp;
  proxyDialer(tunnel: string): Dialer | undefined;
  /** the physical interface of the default route now */
  physical(): string | undefined;
  /** a connected subnet lookup (tests); default os.networkInterfaces() */
  subnets?(ifname: string): string[];
  /** a listener that failed after it started (reported; the run that follows restarts it) */
  onError?(message: string): void;
  /** the learned address book: names DNS answers gave an address (flows without SNI/Host) */
  learned?(addr: string): readonly string[];
}

export interface FlowRouterStatus {
  state: 'off' | 'active';
  /** 127.0.0.1 / ::1 port */
  port?: number;
  /** decisions so far, by route (blocked, direct, tunnel names) */
  decisions?: Record<string, number>;
  /** live `awg exec` registrations */
  execs?: number;
}

/**
 * The router's view of the limits' classes (the model's FirewallPolicy.shaping): each class's
 * macOS port range (platform/darwin/dnctl.ts darwinClassPorts; PF's dummynet rules match
 * them, resources/platform/darwin-shaping.ts), by rule name and by pid.
 */
export function flowShaping(
  classes: readonly Pick<ShapeClass, 'n' | 'name'>[] | undefined,
): FlowShaping | undefined {
  if (!classes?.length) return undefined;
  const rules = new Map<string, readonly [number, number]>();
  const pids = new Map<number, readonly [number, number]>();
  for (const k of classes) {
    const m = /^(rule|pid)\/(.+)$/.exec(k.name);
    if (!m) continue;
    if (m[1] === 'rule') rules.set(m[2]!, darwinClassPorts(k.n));
    else pids.set(Number(m[2]), darwinClassPorts(k.n));
  }
  return { rules, pids };
}

/** Does this config's PF anchor redirect to the router (resources/platform/darwin-flow.ts)? */
export function needsFlowRouter(c: Pick<Config, 'rules' | 'default' | 'tunnels'>): boolean {
  return c.rules.some((r) => r.enabled) || isProxyDefault(c);
}

/** Why `choice` cannot be kept under config `c` (an unknown tunnel, no such enabled rule); undefined when it can. */
export function execChoiceProblem(
  choice: ExecChoice,
  c: Pick<Config, 'tunnels' | 'rules'>,
): string | undefined {
  if ('tunnel' in choice) {
    const names = Object.keys(c.tunnels);
    return choice.tunnel in c.tunnels
      ? undefined
      : `unknown tunnel ${JSON.stringify(choice.tunnel)}${names.length ? ` (tunnels: ${names.join(', ')})` : ' (the config has no tunnels)'}`;
  }
  if ('rule' in choice) {
    const names = c.rules.flatMap((r, i) => (r.enabled ? [ruleName(r, i)] : []));
    return names.includes(choice.rule)
      ? undefined
      : `no enabled rule named ${JSON.stringify(choice.rule)}${names.length ? ` (rules: ${names.join(', ')})` : ''}`;
  }
  return undefined;
}

export class FlowRouterHost {
  /** `awg exec` registrations, across rebuilds of the router */
  readonly execs = new ExecRegistry();
  private router: FlowRouter | undefined;
  private config: FlowConfig | undefined;
  private shape = '';
  private port: number | undefined;
  private natives: DarwinFlowNatives | undefined;
  private loading: Promise<DarwinFlowNatives> | undefined;
  /** the per-rule counts of routers this one replaced (a rebuild keeps them; `stop` ends them) */
  private carried = new Map<string, RuleTraffic>();
  /** the connections of the router this one replaced, closed with it (the monitor reads them once more) */
  private carriedFlows: RoutedFlowCount[] = [];

  constructor(private readonly o: FlowRouterHostOptions) {}

  /** the utun a link (`awg-work`) has now (macOS), undefined before its engine opened one */
  utun(link: string): string | undefined {
    return resolveIfname(this.o.state, link);
  }

  /**
   * The natives, loaded on first use (macOS): the router's, and the daemon's health probes
   * pin their sockets to a tunnel's utun with them too (daemon/probe-run.ts).
   */
  loadNatives(): Promise<DarwinFlowNatives> {
    // one load, whoever asks first (the router's start, a probe, a list's fetch)
    return (this.loading ??= (async () => {
      const load =
        this.o.natives ??
        (async () => (await import('./flow-router-darwin.js')).loadDarwinFlowNatives());
      return (this.natives = await load());
    })().catch((e: unknown) => {
      this.loading = undefined; // a failed load is tried again by the next caller
      throw e;
    }));
  }

  /**
   * `classes`: the limits in force (FirewallPolicy.shaping.classes); their flows leave from
   * their ports. `destinations`: the rules' `to` sets (config/load.ts LoadResult.destinations).
   */
  async before(
    c: FlowConfig,
    classes?: readonly Pick<ShapeClass, 'n' | 'name'>[],
    destinations?: ReadonlyMap<string, DestinationSet>,
  ): Promise<void> {
    if (!needsFlowRouter(c)) return;
    const shaping = flowShaping(classes);
    const dest = destinations ? { destinations } : {};
    const port = flowRouterPort(c.routing);
    const shape = JSON.stringify([
      port,
      Object.entries(c.tunnels)
        .map(([n, t]) => [n, t.type])
        .sort(),
    ]);
    if (this.router && shape === this.shape) {
      this.router.update({
        rules: c.rules,
        default: c.default,
        ipv6: c.ipv6,
        ...(shaping ? { shaping } : {}),
        ...dest,
      });
      this.config = c;
      this.endStale(c);
      return;
    }
    const counted = this.ruleTraffic();
    await this.close();
    this.carried = counted;
    try {
      const flow = await import('./flow-router-darwin.js');
      const natives = await this.loadNatives();
      const h = this.o;
      const { router } = flow.darwinFlowRouterFromConfig(
        c,
        {
          natives,
          tunnelUp: (n, r) => h.tunnelUp(n, r),
          utun: (link) => resolveIfname(h.state, link),
          proxyDialer: (t) => h.proxyDialer(t),
          physical: () => h.physical(),
          ...(h.subnets ? { subnets: (i: string) => h.subnets!(i) } : {}),
          execs: this.execs,
        },
        {
          ...(shaping ? { shaping } : {}),
          ...dest,
          ...(h.learned ? { learned: (a: string) => h.learned!(a) } : {}),
          ...(h.onError ? { onError: (m: string) => h.onError!(`flow router: ${m}`) } : {}),
        },
      );
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
      this.config = c;
      this.endStale(c);
    } catch (e) {
      const err = toAwgError(e, 'driver');
      throw new AwgError(
        err.kind,
        `the flow router cannot listen on 127.0.0.1/::1 port ${port} (TCP and UDP; routing.proxyPortBase), so per-app rules cannot be applied: ${err.message}`,
        { cause: e },
      );
    }
  }

  async after(c: FlowConfig | undefined, converged: boolean): Promise<void> {
    if (converged && (!c || !needsFlowRouter(c))) await this.stop();
  }

  /** the router closed: `awg exec` registrations end (their commands are stopped by their callers) */
  async stop(): Promise<void> {
    this.execs.endAll(
      'the flow router stopped (awg down, the daemon stopping, or a config without per-app rules): the choice of awg exec can no longer be kept',
    );
    await this.close();
  }

  private async close(): Promise<void> {
    const r = this.router;
    this.router = undefined;
    this.config = undefined;
    this.shape = '';
    this.port = undefined;
    this.carried = new Map();
    await r?.close();
    // its connections were reset with it: their final counts are read once more
    this.carriedFlows = (r?.flows() ?? []).map((f) => ({ ...f, closed: true }));
  }

  private endStale(c: FlowConfig): void {
    this.execs.endWhere((r) => {
      const p = execChoiceProblem(r.choice, c);
      return p && `the config changed: awg exec ${describeChoice(r.choice)}: ${p}`;
    });
  }

  /**
   * Route `pid` and its descendants by `choice` (`awg exec`) until the returned function is
   * called; `onEnd` gets the reason when the host ends it first. Refused (AwgError) when no
   * router runs, when it cannot see parents, or when the config has no such tunnel or rule.
   */
  registerExec(pid: number, choice: ExecChoice, onEnd: (reason: string) => void): () => void {
    const c = this.config;
    if (!this.router || !c)
      throw new AwgError(
        'unsupported',
        "awg exec on macOS routes through the daemon's flow router, which runs only while the applied config has an enabled rule or a proxy tunnel as its default route; it runs none now",
        {
          hint: 'add a rule to the config (docs/platform-macos.md, per-app routing), or run the command without awg exec',
        },
      );
    if (!this.natives?.ppid)
      throw new AwgError(
        'unsupported',
        "awg exec: this flow router cannot read processes' parents (proc_pidinfo), so it cannot follow the command's processes",
      );
    const problem = execChoiceProblem(choice, c);
    if (problem)
      throw new AwgError(
        'invalid-config',
        `awg exec ${describeChoice(choice)}: ${problem} in the applied configuration`,
      );
    return this.execs.add(pid, choice, onEnd);
  }

  /** per rule: connections and payload bytes since the router started (FlowRouter.ruleTraffic), across rebuilds */
  ruleTraffic(): Map<string, RuleTraffic> {
    const out = new Map<string, RuleTraffic>();
    for (const m of [this.carried, this.router?.ruleTraffic() ?? new Map<string, RuleTraffic>()])
      for (const [k, v] of m) {
        const t = out.get(k);
        out.set(
          k,
          t
            ? {
                connections: t.connections + v.connections,
                txBytes: t.txBytes + v.txBytes,
                rxBytes: t.rxBytes + v.rxBytes,
              }
            : { ...v },
        );
      }
    return out;
  }

  /** the connections the router relays and those that closed lately (FlowRouter.flows), across a rebuild: the monitor's reading on macOS */
  flows(): RoutedFlowCount[] {
    return [...this.carriedFlows, ...(this.router?.flows() ?? [])];
  }

  status(): FlowRouterStatus {
    const r = this.router;
    return r
      ? {
          state: 'active',
          ...(this.port !== undefined ? { port: this.port } : {}),
          decisions: Object.fromEntries(r.counts),
          ...(this.execs.size ? { execs: this.execs.size } : {}),
        }
      : { state: 'off' };
  }
}
