/**
 * The daemon core: hosts the loop (loop.ts) over the shared pipeline (src/pipeline), the
 * tunnel engines (in-process), tunnel health (tunnel-health.ts), process placement
 * (placement.ts; on macOS the flow router instead: resources/engine/flow-router-host.ts) and
 * the DaemonCore API the gRPC server wraps. One reconcile at a time: loop
 * runs and API operations (apply, diff, down) are serialised on one queue.
 *
 * Desired state comes from one config file (`--config`, or the file of the last apply). It
 * is re-read on every run (level-triggered: host facts such as resolved endpoints are
 * re-probed too); an invalid file keeps the last good desired state and is reported once
 * per content (`config-changed {valid:false}` + `error`).
 *
 * Stop: the host is left as `awg down` would leave it, unless the kill switch is on: then
 * the firewall (and the cgroups it names) stays, so traffic stays blocked until the next
 * start (fail-closed across restarts). Start adopts what is already there: engines left by
 * `awg apply` move into this process before the first run, everything else is observed,
 * so that run plans no change.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { createActor, fromPromise, type Actor } from 'xstate';
import { AwgError, formatIssue, toAwgError } from '../errors.js';
import { killSwitchOf } from '../config/schema.js';
import type { Plan } from '../model/change.js';
import type { ExecChoice } from '../model/match.js';
import type { HostFacts } from '../model/desired.js';
import { toPlanDocument } from '../model/plan-document.js';
import type { ObservedState } from '../model/resources.js';
import { observeWith, type ReconcileEnv } from '../reconciler/observe.js';
import { plan as makePlan } from '../reconciler/plan.js';
import { AppliedStore } from '../pipeline/applied.js';
import { DEFAULT_CLAIMS } from '../pipeline/claims.js';
import { converge } from '../pipeline/converge.js';
import { stateDirFrom } from '../pipeline/host.js';
import { prepare, type Prepared } from '../pipeline/prepare.js';
import type { HostSelection } from '../config/overlay.js';
import { teardown } from '../pipeline/teardown.js';
import type { ApplyContext, Claims, DriverSet } from '../resources/driver.js';
import {
  createInprocEngineHost,
  type EngineChange,
  type InprocEngineHost,
} from '../resources/engine/inproc.js';
import { loadPlatform, type Platform } from '../resources/registry.js';
import type { PlacerProcessOptions } from '../procs/placer-process.js';
import { processLister, type ProcessLister } from '../procs/list.js';
import { settleNow } from '../native/settle.js';
import { ProcessExec, type Exec } from '../util/exec.js';
import { silentReporter, type Reporter } from '../util/reporter.js';
import { describeCorrupt, FileStateStore, type StateStore } from '../util/state.js';
import { LIMITS, readRegularFileSync } from '../util/files.js';
import { fingerprintKeyOf } from '../util/host-key.js';
import { checkConfirmTimeout, ConfirmWindow, type Timer } from './confirm.js';
import { gitHeadFiles, gitRevisionOf } from '../util/git-revision.js';
import type {
  ApplyRequest,
  ApplyResponse,
  ConfigState,
  DaemonCore,
  DaemonEvent,
  ProcessInfo,
  StatusResponse,
  WakeReason,
} from './core.js';
import {
  classifyError,
  loopMachine,
  type LoopInput,
  type RunInput,
  type RunResult,
} from './loop.js';
import { flowPlacement, listRoutedProcesses, PlacementSupervisor } from './placement.js';
import { FlowRouterHost, type FlowRouterHostOptions } from '../resources/flow/flow-router-host.js';
import type { Underlay } from '../resources/engine/inproc.js';
import { daemonState, flowRuleCounters, ruleCounters, tunnelStatuses } from './status.js';
import { readLinkTraffic, trafficEvent, TRAFFIC_EVENT_MS, withLinkTraffic } from './traffic.js';
import { HealthMonitor } from './tunnel-health.js';
import { startWakeSources, type WakeSources, type WakeSourceOptions } from './wakes.js';

export interface DaemonOptions {
  /** config file; default: the file of the last apply recorded in the state store */
  configPath?: string;
  stateDir?: string;
  /** mutation log (`[#] …`) and phases; events go to subscribers */
  reporter?: Reporter;
  loop?: LoopInput;
  /** config watcher and the platform's network monitor (default on) */
  wakes?:
    Omit<WakeSourceOptions, 'configPath' | 'onWake' | 'isEcho' | 'claims' | 'watchNetwork'> | false;
  /** leave the host as `awg down` would on stop (default true; kill switch keeps the firewall) */
  teardownOnStop?: boolean;
  env?: NodeJS.ProcessEnv;
  /** the host a config with overlays is rendered for (`--host`, `--labels`; default this machine) */
  selection?: HostSelection;
  // ---- injection for tests
  /** this host's platform unless given */
  platform?: Platform;
  drivers?: Partial<DriverSet>;
  engines?: InprocEngineHost;
  exec?: Exec;
  state?: StateStore;
  facts?: HostFacts;
  /** confirm-timeout timer; default setTimeout */
  timer?: Timer;
  /**
   * The process watcher for path rules: an `awg placer` child at SCHED_FIFO, given
   * AWG_PROC_CONNECTOR_FD or a connector socket of our own (LISTEN works only from the
   * initial network namespace). false: no placement.
   */
  placement?: false | Pick<PlacerProcessOptions, 'connectorFd' | 'command' | 'priority'>;
  /** ListProcesses' process table (default: the platform's, procs/list.ts) */
  processes?: ProcessLister;
  /** period of the `traffic` event while someone subscribes (default TRAFFIC_EVENT_MS; 0: none) */
  trafficIntervalMs?: number;
  /** health evaluation period (default 1000 ms; 0: only on engine events) */
  healthIntervalMs?: number;
  /** what the placer child prints that is not its protocol (its stderr): default our stderr */
  onPlacerLog?: (line: string) => void;
  /** the in-process engines' log (handshakes, proxy health, dial errors) */
  engineLog?: (level: 'debug' | 'info' | 'warn', message: string) => void;
  /** macOS flow router: its system calls (default: the koffi bindings) and subnet lookup (tests) */
  flowRouter?: Pick<FlowRouterHostOptions, 'natives' | 'subnets'>;
}

interface Source {
  file: string;
  prepared: Prepared;
}

interface LastRun {
  at: string;
  outcome: string;
  durationMs: number;
  error?: { kind: string; message: string };
  reason: WakeReason;
}

const now = () => new Date().toISOString();
const errOf = (e: AwgError | undefined) => (e ? { kind: e.kind, message: e.message } : undefined);
const EMPTY_PLAN = { changes: [], foreign: [], warnings: [] };
/**
 * `{env:}` secrets would come from the daemon's environment, not the caller's: resolved only
 * for the file the daemon was started with (`--config`, e.g. the unit's Environment=), never
 * for a config named through the API, nor for one remembered from an earlier apply.
 */
const ENV_REFUSED =
  "{env:} secrets are not resolved for a config given through the daemon's API (the daemon's environment is not the caller's); use {file: ...}, `awg apply --direct`, or start the daemon with --config naming this file";
/** events that fall inside this window after a run are echoes of our own changes */
const ECHO_MS = 750;
/** how long after a run ends (and no other began) the process settles (settleLater) */
const SETTLE_AFTER_MS = 3000;

export class Daemon implements DaemonCore {
  private readonly listeners = new Set<(e: DaemonEvent) => void>();
  private readonly state: StateStore;
  private readonly applied: AppliedStore;
  private readonly exec: Exec;
  readonly engines: InprocEngineHost;
  private readonly reporter: Reporter;
  private readonly health: HealthMonitor;
  private readonly placement: PlacementSupervisor;
  private readonly flow: FlowRouterHost;
  /** the physical network the last run probed */
  private underlay: Underlay = {};
  private readonly confirmWindow: ConfirmWindow<Source>;
  private platform: Platform | undefined;
  private lister: ProcessLister | undefined;
  private drivers: Partial<DriverSet> = {};
  private init: Promise<void> | undefined;
  private configPath: string | undefined;
  /** why the newest read of the config failed (the last good one keeps running); undefined: valid */
  private configError: string | undefined;
  /** git commit of the checkout when the good config was read */
  private goodRevision: string | undefined;
  /** sourcesHash of the good config's files when they were read */
  private goodHash: string | undefined;
  private lastConverged: string | undefined;
  private lastPlanChanges = 0;
  private good: Source | undefined;
  private seenHash: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private running = false;
  /** why the run under way was started (status: a re-check keeps the last verdict) */
  private runningReason: WakeReason | undefined;
  private echoUntil = 0;
  private adopted = false;
  private lastRun: LastRun | undefined;
  private lastObserved: ObservedState | undefined;
  private loop: Actor<typeof loopMachine> | undefined;
  private wakes: WakeSources | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private unsubEngines: (() => void) | undefined;
  private stopped = false;
  /** the underlay changed since the engines were last kicked (wakes coalesce: not a reason) */
  private networkDirty = false;

  constructor(private readonly opts: DaemonOptions = {}) {
    this.reporter = opts.reporter ?? silentReporter;
    // an unusable record is moved aside, logged and reported as an error event; the daemon
    // keeps running (a crash here would restart forever under systemd, kill switch closed)
    this.state =
      opts.state ??
      new FileStateStore(stateDirFrom(opts.stateDir, opts.env), {
        onCorrupt: (c) => {
          this.reporter.report({ type: 'warning', message: describeCorrupt(c) });
          this.emit({ type: 'error', at: now(), kind: 'driver', message: describeCorrupt(c) });
        },
      });
    this.applied = new AppliedStore(this.state);
    this.exec = opts.exec ?? new ProcessExec(this.reporter, false);
    this.engines =
      opts.engines ??
      createInprocEngineHost({ env: opts.env, ...(opts.engineLog ? { log: opts.engineLog } : {}) });
    this.health = new HealthMonitor(this.engines);
    this.placement = new PlacementSupervisor({
      placement: opts.placement,
      env: opts.env,
      perApp: () => this.platform?.perApp ?? 'cgroup',
      ...(opts.onPlacerLog ? { onLog: opts.onPlacerLog } : {}),
      onError: (kind, message) => this.emit({ type: 'error', at: now(), kind, message }),
    });
    this.flow = new FlowRouterHost({
      ...opts.flowRouter,
      state: this.state,
      tunnelUp: (t) => !this.health.down.has(t),
      proxyDialer: (t) => this.engines.proxyDialer?.(t),
      physical: () => this.underlay.v4 || this.underlay.v6,
      onError: (message) => this.emit({ type: 'error', at: now(), kind: 'driver', message }),
    });
    this.confirmWindow = new ConfirmWindow(opts.timer);
    const path = opts.configPath ?? this.applied.load()?.configFile;
    this.configPath = path ? resolve(path) : undefined;
  }

  // ---- lifecycle ----------------------------------------------------------------------

  /** the platform and its drivers (engines: the in-process host), once */
  private ready(): Promise<void> {
    this.init ??= (async () => {
      this.platform = this.opts.platform ?? (await loadPlatform());
      const drivers =
        this.opts.drivers ??
        (await this.platform.drivers({
          exec: this.exec,
          ...(this.opts.env ? { env: this.opts.env } : {}),
        }));
      this.drivers = { ...drivers, engine: this.opts.drivers?.engine ?? this.engines.driver };
    })();
    return this.init;
  }

  async start(): Promise<void> {
    await this.ready();
    this.unsubEngines = this.engines.onChange((c) => this.onEngine(c));
    const machine = loopMachine.provide({
      actors: {
        reconcile: fromPromise<RunResult, RunInput>(({ input }) =>
          this.exclusive(() => this.runOnce(input.reason)),
        ),
      },
    });
    this.loop = createActor(machine, { input: this.opts.loop ?? {} });
    this.loop.start();
    const every = this.opts.healthIntervalMs ?? 1000;
    if (every > 0) {
      this.healthTimer = setInterval(() => this.healthTick(), every);
      this.healthTimer.unref();
    }
    if (this.opts.wakes !== false) {
      this.wakes = await startWakeSources({
        ...(this.opts.wakes ?? {}),
        configPath: this.configPath,
        ...(this.platform?.watchNetwork ? { watchNetwork: this.platform.watchNetwork } : {}),
        onWake: (reason, detail, what) => {
          if (reason === 'network') {
            // the engines re-handshake after an underlay change, not after our table's
            if (what !== 'firewall') this.networkDirty = true;
            this.emit({ type: 'network-changed', at: now(), detail });
          }
          this.wake(reason);
        },
        isEcho: () => this.running || Date.now() < this.echoUntil,
        claims: () => this.good?.prepared.claims ?? DEFAULT_CLAIMS,
      });
    }
    this.wake('start');
  }

  /** Stop the loop and the wake sources; then tear down unless told not to (see file comment). */
  async stop(
    opts: { teardown?: boolean } = {},
  ): Promise<{ removed: string[]; keptFirewall: boolean }> {
    if (this.stopped) return { removed: [], keptFirewall: false };
    this.stopped = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    if (this.trafficTimer) clearInterval(this.trafficTimer);
    clearTimeout(this.settleTimer);
    this.loop?.send({ type: 'STOP' });
    this.loop?.stop();
    await this.wakes?.close();
    this.confirmWindow.close();
    let out = { removed: [] as string[], keptFirewall: false };
    try {
      await this.queue.catch(() => {});
      if (opts.teardown ?? this.opts.teardownOnStop ?? true) {
        const ks = this.good ? killSwitchOf(this.good.prepared.config).enabled : false;
        out = await this.exclusive(() => this.removeAll(this.claims(), ks));
        // the record stays while the kill switch does: the next start restores these, not "repairs drift"
        if (out.keptFirewall) this.applied.markStopped(out.removed);
      }
    } finally {
      await this.placement.close();
      await this.flow.stop();
      await this.engines.closeAll();
      this.unsubEngines?.();
    }
    return out;
  }

  /** Wake the loop (API requests use 'api'). */
  wake(reason: WakeReason): void {
    if (!this.stopped) this.loop?.send({ type: 'WAKE', reason });
  }

  /** the loop's current state name (for status and tests) */
  loopState(): string {
    return String(this.loop?.getSnapshot().value ?? 'stopped');
  }

  // ---- DaemonCore ---------------------------------------------------------------------

  subscribe(listener: (e: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    const every = this.opts.trafficIntervalMs ?? TRAFFIC_EVENT_MS;
    if (every > 0 && !this.trafficTimer && !this.stopped) {
      // counters are polled only while someone listens: one status read per period
      this.trafficTimer = setInterval(() => void this.trafficTick(), every);
      this.trafficTimer.unref();
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.trafficTimer) {
        clearInterval(this.trafficTimer);
        this.trafficTimer = undefined;
      }
    };
  }

  private trafficTimer: NodeJS.Timeout | undefined;
  private trafficKey = '';
  private trafficBusy = false;
  private async trafficTick(): Promise<void> {
    if (this.trafficBusy || this.stopped) return;
    this.trafficBusy = true;
    try {
      const r = trafficEvent(await this.status(), this.trafficKey, now());
      this.trafficKey = r.key;
      if (r.event) this.emit(r.event);
    } catch {
      /* the next period tries again */
    } finally {
      this.trafficBusy = false;
    }
  }

  async apply(req: ApplyRequest): Promise<ApplyResponse> {
    // refused before anything is read or applied, whoever calls (gRPC or in-process)
    if (req.confirmTimeoutSec !== undefined && req.confirmTimeoutSec !== 0)
      checkConfirmTimeout(req.confirmTimeoutSec);
    const r = await this.prepareFile(req.configPath, true);
    if (!r.ok)
      return {
        outcome: 'failed',
        plan: toPlanDocument(EMPTY_PLAN, req.configPath),
        mutations: 0,
        error: errOf(r.error),
      };
    if (req.dryRun) {
      return this.exclusive(async () => {
        const ctx = await converge(this.envFor(r.prepared), this.applied, r.prepared, {
          dryRun: true,
        });
        return {
          outcome: ctx.outcome ?? 'failed',
          plan: toPlanDocument(ctx.plan ?? EMPTY_PLAN, req.configPath),
          mutations: 0,
          error: errOf(ctx.error),
        };
      });
    }
    return this.exclusive(async () => {
      const previous = this.good;
      this.confirmWindow.close();
      this.setSource(resolve(req.configPath), r.prepared);
      const before = this.exec.mutations;
      const res = await this.reconcileNow('api', r.prepared);
      const resp: ApplyResponse = {
        outcome: res.outcome,
        plan: toPlanDocument(res.plan ?? EMPTY_PLAN, req.configPath),
        mutations: this.exec.mutations - before,
        error: errOf(res.error),
      };
      if (
        req.confirmTimeoutSec &&
        req.confirmTimeoutSec > 0 &&
        (res.outcome === 'converged' || res.outcome === 'unchanged')
      ) {
        resp.confirmDeadline = this.confirmWindow.open(
          req.confirmTimeoutSec,
          previous,
          (p) => void this.revert(p),
        );
        this.emit({ type: 'confirm-pending', at: now(), deadline: resp.confirmDeadline });
      }
      return resp;
    });
  }

  async confirm(): Promise<{ confirmed: boolean }> {
    return { confirmed: this.confirmWindow.confirm() };
  }

  async diff(req: {
    configPath: string;
  }): Promise<{ plan: ApplyResponse['plan']; changes: boolean }> {
    const r = await this.prepareFile(req.configPath, true);
    if (!r.ok) throw r.error;
    return this.exclusive(async () => {
      const observed = await observeWith(this.envFor(r.prepared), r.prepared.desired);
      const doc = toPlanDocument(
        makePlan(r.prepared.desired, observed, { lastApplied: this.applied.load()?.resources }),
        req.configPath,
      );
      return { plan: doc, changes: doc.changes.length > 0 };
    });
  }

  /** what the daemon follows; undefined before a config is known */
  private configState(): ConfigState | undefined {
    const file = this.configPath;
    if (!file) return undefined;
    const good = this.good?.file === file ? this.good : undefined;
    const checkout = gitRevisionOf(file);
    // a pull that touched none of this host's files (another host's overlay) leaves the same
    // config: it runs at the new commit as well
    const untouched =
      good &&
      !this.configError &&
      checkout !== undefined &&
      this.goodHash === sourcesHash([file, ...good.prepared.sources]);
    const revision = good ? (untouched ? checkout : this.goodRevision) : undefined;
    return {
      ...(revision ? { revision } : {}),
      valid: !this.configError,
      ...(this.configError ? { error: this.configError } : {}),
      ...(good ? { sources: good.prepared.sources } : {}),
      ...(this.opts.selection ? { host: this.opts.selection.host } : {}),
      ...(this.lastConverged ? { lastConverged: this.lastConverged } : {}),
      lastPlanChanges: this.lastPlanChanges,
      ...(checkout ? { checkoutRevision: checkout } : {}),
    };
  }

  async status(): Promise<StatusResponse> {
    const lr = this.lastRun;
    const p = this.good?.prepared;
    const config = this.configState();
    return {
      ...(config ? { config } : {}),
      state: daemonState({
        // a teardown (stop, down) runs without a reason of its own: reconciling
        running: this.running ? (this.runningReason ?? 'api') : undefined,
        configured: Boolean(this.good || this.configPath),
        lastOutcome: lr?.outcome,
      }),
      ...(this.configPath ? { configPath: this.configPath } : {}),
      ...(lr
        ? {
            lastReconcile: {
              at: lr.at,
              outcome: lr.outcome,
              durationMs: lr.durationMs,
              ...(lr.error ? { error: lr.error } : {}),
            },
          }
        : {}),
      objects: (this.lastObserved?.resources ?? []).map((r) => ({ kind: r.kind, id: r.id })),
      tunnels: withLinkTraffic(
        tunnelStatuses(
          p?.desired.resources ?? [],
          this.engines.stats(),
          this.engines.proxyStats(),
          this.health,
        ),
        readLinkTraffic(
          (p?.desired.resources ?? []).flatMap((r) =>
            r.kind === 'engine' && r.spec.link ? [r.spec.link] : [],
          ),
        ),
      ),
      ...(this.confirmWindow.deadline ? { confirmDeadline: this.confirmWindow.deadline } : {}),
      placement:
        this.platform?.perApp === 'flow-router'
          ? flowPlacement(this.flow.status(), this.placement.status())
          : this.placement.status(),
      ...(p
        ? this.platform?.perApp === 'flow-router'
          ? flowRuleCounters(p.config, p.model.policy, this.flow.ruleTraffic())
          : await ruleCounters(this.exec, p.claims.nftTable, p.config, p.model.policy)
        : {}),
    };
  }

  async down(): Promise<{ removed: string[]; mutations: number }> {
    await this.ready();
    return this.exclusive(async () => {
      this.confirmWindow.close();
      const before = this.exec.mutations;
      const claims = this.claims();
      this.forgetSource();
      await this.placement.stop();
      const r = await this.removeAll(claims, false).finally(() => this.flow.stop());
      return { removed: r.removed, mutations: this.exec.mutations - before };
    });
  }

  /** `awg exec` on macOS: route `pid` and its descendants by `choice` until the returned function is called (FlowRouterHost.registerExec) */
  async routeExec(
    pid: number,
    choice: ExecChoice,
    onEnd: (reason: string) => void,
  ): Promise<() => void> {
    await this.ready();
    if (this.platform?.perApp !== 'flow-router')
      throw new AwgError(
        'unsupported',
        'the daemon routes awg exec only where per-app routing goes through its flow router (macOS); on Linux awg exec places itself in a cgroup and needs no daemon',
      );
    return this.flow.registerExec(pid, choice, onEnd);
  }

  async listProcesses(): Promise<ProcessInfo[]> {
    const p = this.good?.prepared;
    if (!p) return [];
    await this.ready();
    this.lister ??= this.opts.processes ?? (await processLister(this.platform!.perApp));
    const execOf =
      this.platform!.perApp === 'flow-router'
        ? (pid: number, parentOf: (pid: number) => number | undefined) =>
            this.flow.execs.ancestor(pid, parentOf)?.choice
        : undefined;
    return listRoutedProcesses(
      this.lister,
      p.config,
      p.claims.cgroupRoot,
      this.health.down,
      execOf,
    );
  }

  // ---- the loop -------------------------------------------------------------------------

  /** Re-read the config; returns the source to reconcile toward (last good on errors). */
  private async reload(): Promise<{ source?: Source; error?: AwgError }> {
    const file = this.configPath;
    if (!file) return {};
    // the config and the overlay files the last good load applied: an edit of either is a change
    const hashed = [file, ...(this.good?.file === file ? this.good.prepared.sources : [])];
    const hash = sourcesHash(hashed);
    const changed = this.seenHash !== undefined && hash !== this.seenHash;
    const first = this.seenHash === undefined;
    this.seenHash = hash;
    const r = await this.prepareFile(file);
    if (r.ok) {
      if (changed) this.emit({ type: 'config-changed', at: now(), path: file, valid: true });
      this.configError = undefined;
      this.goodRevision = gitRevisionOf(file);
      this.good = { file, prepared: r.prepared };
      // the same files as hashed above (the usual case): that hash, not a second read of them
      const files = [file, ...r.prepared.sources];
      this.goodHash =
        files.length === hashed.length && files.every((f, i) => f === hashed[i])
          ? hash
          : sourcesHash(files);
      this.wakes?.setConfigFiles([...r.prepared.sources, ...gitHeadFiles(file)]);
      return { source: this.good };
    }
    this.configError = r.error.message;
    if (changed || first) {
      if (changed) this.emit({ type: 'config-changed', at: now(), path: file, valid: false });
      this.emit({ type: 'error', at: now(), kind: r.error.kind, message: r.error.message });
    }
    return { source: this.good?.file === file ? this.good : undefined, error: r.error };
  }

  /** One loop run: reload, adopt (first run), reconcile, record, report. */
  private async runOnce(reason: WakeReason): Promise<RunResult> {
    const { source, error } = await this.reload();
    if (!source) {
      if (error) {
        this.lastRun = { at: now(), outcome: 'failed', durationMs: 0, error: errOf(error), reason };
        return 'terminal';
      }
      return 'ok';
    }
    const res = await this.reconcileNow(reason, source.prepared);
    if (this.networkDirty) {
      this.networkDirty = false;
      this.engines.kick();
    }
    if (res.outcome === 'converged' || res.outcome === 'unchanged') return 'ok';
    const kind = classifyError(res.error);
    return kind === 'ok' ? 'retryable' : kind;
  }

  private async reconcileNow(
    reason: WakeReason,
    p: Prepared,
  ): Promise<{ outcome: string; plan?: Plan; error?: AwgError }> {
    const env = this.envFor(p);
    const t0 = Date.now();
    this.running = true;
    this.runningReason = reason;
    this.emit({ type: 'reconcile-started', at: now(), reason });
    try {
      if (!this.adopted) {
        this.adopted = true;
        const moved = await this.engines
          .adopt(p.desired, this.applyCtx(env))
          .catch((e: unknown) => {
            this.emit({
              type: 'error',
              at: now(),
              kind: toAwgError(e).kind,
              message: `adopting engines: ${(e as Error).message}`,
            });
            return [] as string[];
          });
        if (moved.length)
          this.reporter.report({
            type: 'info',
            message: `adopted engine(s) ${moved.join(', ')} from awg apply`,
          });
      }
      // the engines' sockets leave by the physical interface this run probed (macOS: re-pinned)
      this.underlay = {
        ...(p.facts.defaultRouteV4 ? { v4: p.facts.defaultRouteV4.interface } : {}),
        ...(p.facts.defaultRouteV6 ? { v6: p.facts.defaultRouteV6.interface } : {}),
      };
      this.engines.setUnderlay?.(this.underlay);
      // macOS: the flow router listens before an anchor that redirects to it loads
      const flow = this.platform?.perApp === 'flow-router';
      if (flow) await this.flow.before(p.config);
      // rules this run removes leave the placer before their cgroups go
      this.placement.narrow(p.config.rules);
      const restoring = this.applied.stoppedRemoved();
      const ctx = await converge(env, this.applied, p, { configFile: this.good?.file ?? p.file });
      const outcome = ctx.outcome ?? 'failed';
      const ok = outcome === 'converged' || outcome === 'unchanged';
      if (flow) await this.flow.after(p.config, ok);
      if (ok) {
        this.placement.sync(p.config.rules, p.claims.cgroupRoot, this.health.down);
        this.healthTick();
      }
      this.lastObserved = ctx.after ?? ctx.before;
      const missing = (ctx.plan?.changes ?? [])
        .filter((c) => c.action !== 'noop' && c.cause === 'drift')
        .map((c) => c.id);
      const drift = missing.filter((id) => !restoring.has(id));
      const restored = missing.filter((id) => restoring.has(id));
      if (drift.length)
        this.emit({ type: 'drift', at: now(), ids: drift, repaired: outcome === 'converged' });
      if (restored.length && outcome === 'converged')
        this.reporter.report({
          type: 'info',
          message: `restored ${restored.length} object(s) the daemon removed when it last stopped`,
        });
      const durationMs = Date.now() - t0;
      const doc = toPlanDocument(ctx.plan ?? EMPTY_PLAN, p.file);
      const error =
        ctx.error ?? (ok ? undefined : new AwgError('driver', `reconcile ended ${outcome}`));
      this.lastPlanChanges = (ctx.plan?.changes ?? []).filter((c) => c.action !== 'noop').length;
      if (ok) this.lastConverged = now();
      this.lastRun = {
        at: now(),
        outcome,
        durationMs,
        reason,
        ...(error ? { error: errOf(error) } : {}),
      };
      this.emit({
        type: 'reconcile-finished',
        at: now(),
        reason,
        outcome,
        durationMs,
        summary: doc.summary,
        ...(error ? { error: errOf(error) } : {}),
      });
      if (error) this.emit({ type: 'error', at: now(), kind: error.kind, message: error.message });
      return { outcome, plan: ctx.plan, error };
    } catch (e) {
      const err = toAwgError(e);
      const durationMs = Date.now() - t0;
      this.lastRun = { at: now(), outcome: 'failed', durationMs, reason, error: errOf(err) };
      this.emit({
        type: 'reconcile-finished',
        at: now(),
        reason,
        outcome: 'failed',
        durationMs,
        summary: { create: 0, update: 0, replace: 0, delete: 0, drift: 0, config: 0 },
        error: errOf(err),
      });
      this.emit({ type: 'error', at: now(), kind: err.kind, message: err.message });
      return { outcome: 'failed', error: err };
    } finally {
      this.running = false;
      this.runningReason = undefined;
      this.echoUntil = Date.now() + ECHO_MS;
      this.settleLater();
    }
  }

  private settleTimer: NodeJS.Timeout | undefined;
  /**
   * A run's transient native memory (child processes' output, the JSON of `ip -j`/`nft -j`,
   * netlink dumps) is freed when it ends, but glibc keeps the pages: once runs settle, give
   * them back (1.5–6 MiB of an idle daemon's RSS, bench/RESULTS.md Step 10), after a
   * collection unless a tunnel is busy (native/settle.ts).
   */
  private settleLater(): void {
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      settleNow();
    }, SETTLE_AFTER_MS);
    this.settleTimer.unref();
  }

  /** Confirm timeout: back to the desired state before the apply (or down when there was none). */
  private async revert(previous: Source | undefined): Promise<void> {
    try {
      await this.exclusive(async () => {
        if (previous) {
          this.setSource(previous.file, previous.prepared);
          await this.reconcileNow('confirm-timeout', previous.prepared);
        } else {
          const claims = this.claims();
          this.forgetSource();
          await this.removeAll(claims, false).finally(() => this.flow.stop());
        }
      });
    } catch (e) {
      const err = toAwgError(e);
      this.emit({
        type: 'error',
        at: now(),
        kind: err.kind,
        message: `revert after the confirm timeout failed: ${err.message}`,
      });
      this.wake('confirm-timeout');
      return;
    }
    this.emit({ type: 'reverted', at: now(), reason: 'confirm timeout expired without confirm()' });
  }

  /** Remove everything we own (pipeline/teardown.ts); with `keepKillSwitch` the firewall and its cgroups stay. */
  private async removeAll(
    claims: Claims,
    keepKillSwitch: boolean,
  ): Promise<{ removed: string[]; keptFirewall: boolean }> {
    this.running = true;
    try {
      const r = await teardown(this.envFor({ claims }), this.applied, { keepKillSwitch });
      this.lastObserved = { resources: r.after, foreign: [] };
      if (r.errors.length) throw r.errors[0]!;
      if (r.left.length)
        throw new AwgError('verification', `down left objects behind: ${r.left.join(', ')}`);
      return { removed: r.removed, keptFirewall: r.kept.length > 0 };
    } finally {
      this.running = false;
      this.echoUntil = Date.now() + ECHO_MS;
    }
  }

  // ---- tunnel health ----------------------------------------------------------------------

  private onEngine(c: EngineChange): void {
    switch (c.type) {
      case 'handshake':
        this.emit({ type: 'handshake', at: now(), tunnel: c.tunnel, peer: c.peer });
        this.healthTick();
        return;
      case 'handshake-failed':
        this.healthTick();
        return;
      case 'stopped':
        this.healthTick();
        if (this.running) return;
        this.wake('engine');
        return;
      case 'health':
        this.health.setProxy(c.tunnel, c.state, c.error);
        if (c.state === 'auth-failed')
          this.emit({
            type: 'error',
            at: now(),
            kind: 'permission',
            message: `tunnel ${c.tunnel}: the proxy refused our credentials${c.error ? `: ${c.error}` : ''} (fix tunnels.${c.tunnel}.auth; retrying will not help)`,
          });
        this.healthTick();
        return;
      case 'endpoint':
        this.wake('engine');
        return;
      case 'started':
        return;
    }
  }

  /**
   * Re-evaluate tunnel health (timer, engine events): emit transitions and wake the loop when
   * the set of down tunnels changes (the firewall's rule actions and the placer follow it).
   */
  private healthTick(): void {
    const cfg = this.good?.prepared.config;
    if (!cfg || this.stopped) return;
    const { changes, downChanged } = this.health.tick(cfg);
    for (const c of changes)
      this.emit({
        type: 'tunnel',
        at: now(),
        tunnel: c.tunnel,
        state: c.state,
        ...(c.error ? { error: c.error } : {}),
      });
    if (downChanged) this.wake('engine');
  }

  // ---- internals ----------------------------------------------------------------------

  private emit(e: DaemonEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        /* a subscriber never breaks the loop */
      }
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** the claims of what we manage: the current config's, else the last apply's, else the defaults */
  private claims(): Claims {
    return this.good?.prepared.claims ?? this.applied.claims() ?? DEFAULT_CLAIMS;
  }

  private setSource(file: string, prepared: Prepared): void {
    this.configPath = file;
    this.good = { file, prepared };
    this.configError = undefined;
    this.goodRevision = gitRevisionOf(file);
    this.goodHash = sourcesHash([file, ...prepared.sources]);
    this.seenHash = undefined;
    this.wakes?.setConfigFiles([
      ...(prepared.sources.length ? prepared.sources : [file]),
      ...gitHeadFiles(file),
    ]);
  }

  private forgetSource(): void {
    this.configPath = undefined;
    this.good = undefined;
    this.wakes?.setConfigFiles([]);
  }

  private envFor(p: { claims: Claims; secrets?: ReadonlyMap<string, string> }): ReconcileEnv {
    return {
      drivers: this.drivers,
      claims: p.claims,
      state: this.state,
      exec: this.exec,
      reporter: this.reporter,
      secrets: p.secrets,
    };
  }

  private applyCtx(env: ReconcileEnv): ApplyContext {
    return {
      exec: env.exec,
      reporter: env.reporter,
      state: env.state,
      dryRun: false,
      claims: env.claims,
      secrets: env.secrets,
    };
  }

  /** `api`: named by an API request; otherwise env secrets are resolved only for the start-up file */
  private async prepareFile(
    file: string,
    api = false,
  ): Promise<{ ok: true; prepared: Prepared } | { ok: false; error: AwgError }> {
    try {
      await this.ready();
      const ownEnv =
        !api &&
        this.opts.configPath !== undefined &&
        resolve(this.opts.configPath) === resolve(file);
      const r = await prepare(file, {
        platform: this.platform,
        env: this.opts.env,
        ...(this.opts.selection ? { selection: this.opts.selection } : {}),
        down: this.health.down,
        state: this.state,
        persistEndpoints: true,
        fingerprintKey: () =>
          fingerprintKeyOf(this.state, {
            onReplaced: (why) => this.reporter.report({ type: 'warning', message: why }),
          }),
        ...(ownEnv ? {} : { envSecretsRefused: ENV_REFUSED }),
        ...(this.opts.facts ? { facts: this.opts.facts } : { probe: true, exec: this.exec }),
      });
      if (r.ok) return r;
      const errors = r.issues.filter((i) => i.severity === 'error');
      return {
        ok: false,
        error: new AwgError(
          r.kind ?? 'invalid-config',
          `${file}: ${r.kind === 'unsupported' ? 'this host cannot run it' : 'invalid configuration'}: ${errors.map(formatIssue).join('; ')}`,
          { issues: r.issues },
        ),
      };
    } catch (e) {
      return { ok: false, error: toAwgError(e, 'invalid-config') };
    }
  }
}

/** Build and start the daemon core (the gRPC server wraps the returned object). */
export async function startDaemonCore(opts: DaemonOptions = {}): Promise<Daemon> {
  const d = new Daemon(opts);
  await d.start();
  return d;
}

/** One hash over files (path and content; unreadable ones by their error): has any changed? */
function sourcesHash(files: readonly string[]): string {
  const h = createHash('sha256');
  for (const f of new Set(files)) {
    h.update(f).update('\0');
    try {
      h.update(readRegularFileSync(f, { maxBytes: LIMITS.config }));
    } catch (e) {
      h.update(`unreadable:${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    h.update('\0');
  }
  return h.digest('hex');
}
