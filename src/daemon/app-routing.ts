/**
 * Per-app routing the daemon does in its own process: on Linux the placer child that moves
 * processes into their rule's cgroup (placement.ts), on macOS the flow router that routes
 * each TCP connection by its rule (resources/flow/flow-router-host.ts). They frame each run:
 * before it converges the router listens (the anchor that redirects to it may load) and the
 * rules it removes leave the placer (before their cgroups go); after it, both follow the
 * config and tunnel health. Also what status, ListProcesses and `awg exec` ask of them.
 */
import { AwgError } from '../errors.js';
import type { Config } from '../config/schema.js';
import { tunnelUpOf, type ExecChoice } from '../model/match.js';
import type { FirewallPolicy } from '../model/policy.js';
import type { Prepared } from '../pipeline/prepare.js';
import { FlowRouterHost, type FlowRouterHostOptions } from '../resources/flow/flow-router-host.js';
import { processLister, type PerApp, type ProcessLister } from '../procs/list.js';
import type { StateStore } from '../util/state.js';
import type { DaemonEvent, PlacementStatus, ProcessInfo } from './core.js';
import type { DaemonOptions } from './options.js';
import { flowPlacement, listRoutedProcesses, PlacementSupervisor } from './placement.js';
import { darwinProbeSockets, type ProbeSockets } from './probe-run.js';
import { utunPin, type LinkPinOf, type UtunPinHost } from '../resources/engine/link-pin.js';

/** the daemon's options this part reads (placement, the placer's log, the router's natives, the process table) */
export interface AppRoutingOptions extends Pick<
  DaemonOptions,
  'placement' | 'env' | 'onPlacerLog' | 'flowRouter' | 'processes'
> {
  state: StateStore;
  /** how this platform meets path rules; undefined until the platform is loaded */
  perApp: () => PerApp | undefined;
  /** tunnels not up now (tunnel health) */
  down: () => ReadonlySet<string>;
  /** rules held on their fallback although their tunnel is up (sticky.ts) */
  held?: () => ReadonlySet<string>;
  /** a proxy tunnel's upstream dialer (the router's route into it) */
  proxyDialer: FlowRouterHostOptions['proxyDialer'];
  /** the physical interface of the default route the last run probed */
  physical: () => string | undefined;
  emit: (e: DaemonEvent) => void;
}

const now = () => new Date().toISOString();

export class AppRouting {
  private readonly placement: PlacementSupervisor;
  private readonly flow: FlowRouterHost;
  private lister: ProcessLister | undefined;

  constructor(private readonly o: AppRoutingOptions) {
    this.placement = new PlacementSupervisor({
      placement: o.placement,
      env: o.env,
      perApp: () => o.perApp() ?? 'cgroup',
      ...(o.onPlacerLog ? { onLog: o.onPlacerLog } : {}),
      onError: (kind, message) => o.emit({ type: 'error', at: now(), kind, message }),
    });
    this.flow = new FlowRouterHost({
      ...o.flowRouter,
      state: o.state,
      tunnelUp: (t, rule) => tunnelUpOf(o.down(), o.held?.())(t, rule),
      proxyDialer: (t) => o.proxyDialer(t),
      physical: () => o.physical(),
      onError: (message) => o.emit({ type: 'error', at: now(), kind: 'driver', message }),
    });
  }

  /** the flow router applies path rules here (macOS), not cgroups */
  private get routed(): boolean {
    return this.o.perApp() === 'flow-router';
  }

  /** Before a run converges toward `config`; `shaping`: the limits' classes of its model (macOS: the router dials their flows from their ports). */
  async before(
    config: Config,
    shaping?: FirewallPolicy['shaping'],
    destinations?: Prepared['destinations'],
  ): Promise<void> {
    // macOS: the flow router listens before an anchor that redirects to it loads
    if (this.routed) await this.flow.before(config, shaping?.classes, destinations);
    // rules this run removes leave the placer before their cgroups go
    this.placement.narrow(config.rules);
  }

  /** After a run: `converged`, the host matches `p` and placement follows its rules. */
  async after(p: Pick<Prepared, 'config' | 'claims'>, converged: boolean): Promise<void> {
    if (this.routed) await this.flow.after(p.config, converged);
    if (converged)
      this.placement.sync(p.config.rules, p.claims.cgroupRoot, this.o.down(), this.o.held?.());
  }

  /** resolves once the placer has applied what it was sent (at most `timeoutMs`; none: at once) */
  placed(timeoutMs = 5000): Promise<void> {
    return this.placement.flush(timeoutMs);
  }

  /** placement as status shows it (macOS: the flow router's state) */
  status(): PlacementStatus {
    return this.routed
      ? flowPlacement(this.flow.status(), this.placement.status())
      : this.placement.status();
  }

  /** macOS: the router's per-rule traffic (status counts rules there); undefined elsewhere */
  get ruleTraffic(): (() => ReturnType<FlowRouterHost['ruleTraffic']>) | undefined {
    return this.routed ? () => this.flow.ruleTraffic() : undefined;
  }

  /** macOS: the router's relayed connections with their counts (the monitor's source, procs/top/darwin.ts); undefined elsewhere */
  get routedFlows(): (() => ReturnType<FlowRouterHost['flows']>) | undefined {
    return this.routed ? () => this.flow.flows() : undefined;
  }

  /** the processes awg routes under `p` (the platform is loaded) */
  async listProcesses(p: Pick<Prepared, 'config' | 'claims'>): Promise<ProcessInfo[]> {
    const perApp = this.o.perApp()!;
    this.lister ??= this.o.processes ?? (await processLister(perApp));
    const execOf =
      perApp === 'flow-router'
        ? (pid: number, parentOf: (pid: number) => number | undefined) =>
            this.flow.execs.ancestor(pid, parentOf)?.choice
        : undefined;
    return listRoutedProcesses(
      this.lister,
      p.config,
      p.claims.cgroupRoot,
      this.o.down(),
      execOf,
      this.o.held?.(),
    );
  }

  /** `awg exec` on macOS: route `pid` and its descendants by `choice` (FlowRouterHost.registerExec) */
  routeExec(pid: number, choice: ExecChoice, onEnd: (reason: string) => void): () => void {
    if (!this.routed)
      throw new AwgError(
        'unsupported',
        'the daemon routes awg exec only where per-app routing goes through its flow router (macOS); on Linux awg exec places itself in a cgroup and needs no daemon',
      );
    return this.flow.registerExec(pid, choice, onEnd);
  }

  /** macOS: a tunnel's link is its utun, pinned to through the flow router's natives */
  private readonly utuns: UtunPinHost = {
    utun: (link) => this.flow.utun(link),
    natives: () => this.flow.loadNatives(),
  };

  /** macOS: how the health probes hold to a tunnel (probe-run.ts darwinProbeSockets) */
  readonly probeSockets: ProbeSockets = darwinProbeSockets(this.utuns);

  /** macOS: how a list's fetch `via` a tunnel holds to its link (resources/engine/via.ts) */
  readonly linkPin: LinkPinOf = utunPin(this.utuns);

  /** down: the placer stops before the teardown */
  stopPlacement(): Promise<void> {
    return this.placement.stop();
  }

  /** the router stops (after a teardown, and on stop) */
  stopRouter(): Promise<void> {
    return this.flow.stop();
  }

  /** the daemon stops: the placer child ends, the router stops */
  async close(): Promise<void> {
    await this.placement.close();
    await this.flow.stop();
  }
}
