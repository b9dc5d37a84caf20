/**
 * The daemon core: a thin host over its parts. It runs the loop (loop.ts) over the shared
 * pipeline (src/pipeline) and offers the DaemonCore API the gRPC server wraps. One reconcile at
 * a time: loop runs and API operations (apply, diff, down) are serialised on one queue.
 *
 * Its parts, each in its own file: what it reconciles with (daemon-env.ts: the platform, its
 * drivers, the state directory), the config it follows (config-follower.ts: desired state
 * comes from one config file, re-read on every run, the last good one kept), the bookkeeping
 * of its runs (runs.ts), the event feed and its traffic poll (feed.ts), the tunnels it hosts
 * and their health (tunnels.ts), per-app routing (app-routing.ts: the placer, or on macOS the
 * flow router), the processes limited at run time (limit-book.ts: `awg limit`), the wake
 * sources (wakes.ts), the check of each new revision of a followed checkout after its apply
 * (revision-watch.ts: revert and reject on failure) and the status they add up to (status.ts).
 *
 * Stop: the host is left as `awg down` would leave it, unless the kill switch is on: then
 * the firewall (and the cgroups it names) stays, so traffic stays blocked until the next
 * start (fail-closed across restarts). Start adopts what is already there: engines left by
 * `awg apply` move into this process before the first run, everything else is observed,
 * so that run plans no change.
 */
import { resolve } from 'node:path';
import type { Actor } from 'xstate';
import { AwgError, toAwgError } from '../errors.js';
import { killSwitchOf } from '../config/schema.js';
import { tunnelUpOf, type ExecChoice } from '../model/match.js';
import { toPlanDocument } from '../model/plan-document.js';
import { applyContextOf } from '../reconciler/observe.js';
import { DEFAULT_CLAIMS } from '../pipeline/claims.js';
import { converge } from '../pipeline/converge.js';
import { observeAndPlan } from '../pipeline/diff.js';
import { observationOf, withRollout } from '../pipeline/observation.js';
import type { Prepared } from '../pipeline/prepare.js';
import type { FirewallSpec } from '../model/resources.js';
import { cgroupSetsOfRuleset } from '../resources/firewall/cgroup-sets.js';
import { CgroupSetKeeper } from './cgroup-sets.js';
import { teardown } from '../pipeline/teardown.js';
import type { Claims } from '../resources/driver.js';
import { createInprocEngineHost, type InprocEngineHost } from '../resources/engine/inproc.js';
import { silentReporter } from '../util/reporter.js';
import { topContext } from '../procs/top/routing.js';
import { trafficSource } from '../procs/top/source.js';
import { AppRouting } from './app-routing.js';
import { DaemonEnv } from './daemon-env.js';
import { ConfigFollower, readConfig, waitingMessage, type Source } from './config-follower.js';
import { restoreFor } from './last-good.js';
import { rolloutGateFor, rolloutRecordOf, type RolloutGate } from './rollout-gate.js';
import { checkConfirmTimeout, ConfirmWindow } from './confirm.js';
import type {
  ApplyRequest,
  ApplyResponse,
  DaemonCore,
  DaemonEvent,
  DiffResponse,
  ExplainDocument,
  ExplainRequest,
  LimitCaller,
  LimitInfo,
  LimitRequest,
  LimitResponse,
  ConfigState,
  ObservationRecord,
  ProcessInfo,
  StatusResponse,
  TopDocument,
  TopRequest,
  UpdateListsResponse,
  WakeReason,
} from './core.js';
import { explainRunning } from './explain-call.js';
import { ListsHost, planLists } from './lists-host.js';
import { MAX_LIMITS } from '../config/rate.js';
import { LimitBook } from './limit-book.js';
import { linuxLimitSystem } from './limit-system.js';
import { EventFeed } from './feed.js';
import { TopFeed } from './top-feed.js';
import { DnsStubHost, firewallChanged, stubConfigOf } from './dns-stub-host.js';
import { classifyError, startLoop, type loopMachine, type RunResult } from './loop.js';
import type { DaemonOptions } from './options.js';
import { applyResponse, isConverged, RunBook, type RunOutcome } from './runs.js';
import { RevisionWatch } from './revision-watch.js';
import { assembleStatus } from './status.js';
import { Tunnels } from './tunnels.js';
import { UpdateWatch } from './update-watch.js';
import { startWakeSources, type WakeSources } from './wakes.js';

export type { DaemonOptions } from './options.js';

const now = () => new Date().toISOString();

export class Daemon implements DaemonCore {
  readonly engines: InprocEngineHost;
  private readonly feed: EventFeed;
  private readonly topFeed: TopFeed;
  private readonly runs: RunBook;
  private readonly host: DaemonEnv;
  private readonly tunnels: Tunnels;
  private readonly routing: AppRouting;
  private readonly config: ConfigFollower;
  private readonly rollout: RolloutGate;
  private readonly confirmWindow: ConfirmWindow<Source>;
  private readonly limits: LimitBook;
  private readonly dnsStub = new DnsStubHost();
  private readonly lists: ListsHost;
  private readonly updates: UpdateWatch | undefined;
  /** the check of a new revision after its apply (revision-watch.ts) */
  private readonly verify: RevisionWatch;
  private cgroupSets: CgroupSetKeeper | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Diffs queued and not started, by config file (diff()) */
  private readonly queuedDiffs = new Map<string, Promise<DiffResponse>>();
  private loop: Actor<typeof loopMachine> | undefined;
  private wakes: WakeSources | undefined;
  private stopped = false;

  constructor(private readonly opts: DaemonOptions = {}) {
    const reporter = opts.reporter ?? silentReporter;
    const emit = (e: DaemonEvent) => void this.feed.emit(e);
    this.feed = new EventFeed({
      status: () => this.status(),
      trafficIntervalMs: opts.trafficIntervalMs,
    });
    this.topFeed = new TopFeed({
      source: async () => {
        if (opts.trafficSource) return opts.trafficSource();
        await this.host.ready();
        return trafficSource(this.host.platform!.perApp, {
          cgroupRoot: this.cgroupRoot(),
          // macOS: the router's connections, read at each reading (the router may start later)
          routed: () => this.routing.routedFlows?.() ?? [],
        });
      },
      context: () => {
        // the runtime limits' members, read once per reading
        const limited = this.limits.size
          ? this.guardLimits(() => this.limits.members())
          : undefined;
        return topContext(this.config.good?.prepared.config, {
          cgroupRoot: this.cgroupRoot(),
          tunnelUp: tunnelUpOf(this.tunnels.down, this.tunnels.held),
          ...(limited?.size ? { limitOf: (pid: number) => limited.get(pid) } : {}),
        });
      },
    });
    this.runs = new RunBook({ emit, reporter });
    this.host = new DaemonEnv({
      ...opts,
      reporter,
      engineDriver: () => this.engines.driver,
      current: () => this.config.good?.prepared.claims,
      onCorrupt: (message) => emit({ type: 'error', at: now(), kind: 'driver', message }),
    });
    this.engines =
      opts.engines ??
      createInprocEngineHost({ env: opts.env, ...(opts.engineLog ? { log: opts.engineLog } : {}) });
    this.tunnels = new Tunnels({
      engines: this.engines,
      host: this.host,
      emit,
      wake: (reason) => this.wake(reason),
      config: () => this.config.good?.prepared.config,
      running: () => this.runs.running,
    });
    this.routing = new AppRouting({
      ...opts,
      state: this.host.state,
      perApp: () => this.host.platform?.perApp,
      down: () => this.tunnels.down,
      held: () => this.tunnels.held,
      proxyDialer: (t) => this.engines.proxyDialer?.(t),
      physical: () => this.tunnels.physical(),
      emit,
    });
    this.confirmWindow = new ConfirmWindow(opts.timer);
    this.updates =
      opts.updates === false
        ? undefined
        : new UpdateWatch({ ...opts.updates, exec: this.host.exec });
    this.limits = new LimitBook({
      state: this.host.state,
      system: () => opts.limitSystem ?? linuxLimitSystem(),
      selfPid: process.pid,
      emit,
      onMaybeEmpty: () => this.wake('limit'),
    });
    this.lists = new ListsHost({
      ...opts.lists,
      stateDir: this.host.state.dir,
      emit,
      wake: () => this.wake('lists'),
      current: () => this.config.good?.prepared,
      proxyDialer: (t) => this.engines.proxyDialer?.(t),
    });
    this.rollout = rolloutGateFor(opts, emit, () => this.wake('config'));
    this.config = new ConfigFollower({
      file: opts.configPath ?? this.host.applied.load()?.configFile,
      read: (file, api, origin) =>
        readConfig(file, {
          platform: async () => (await this.host.ready(), this.host.platform!),
          // `{env:}` secrets only for the file the daemon was started with (ENV_REFUSED)
          ownEnv:
            !api &&
            opts.configPath !== undefined &&
            resolve(opts.configPath) === resolve(origin ?? file),
          env: opts.env,
          selection: opts.selection,
          ...this.tunnels.readOptions(),
          runtimeLimits: (config, cgroupRoot) => this.limits.forRun(config, cgroupRoot),
          state: this.host.state,
          reporter,
          facts: opts.facts,
          exec: this.host.exec,
          urlList: this.lists.source,
        }),
      emit,
      watch: (files) => this.wakes?.setConfigFiles(files),
      host: opts.selection?.host,
      admit: (c) => this.rollout.admit({ ...c, config: c.prepared.config }),
      waiting: (file) =>
        reporter.report({
          type: 'info',
          message: waitingMessage(file, this.host.applied.load()?.configFile),
        }),
      held: (revision, content) => this.verify.holdBack(revision, content),
      restore: restoreFor({
        verify: () => this.verify,
        admit: (c) => this.rollout.admit({ ...c, config: c.prepared.config }),
        stateDir: this.host.state.dir,
        emit,
      }),
    });
    this.verify = new RevisionWatch({
      state: this.host.state,
      emit,
      up: () => this.tunnelsUp(this.config.good?.prepared),
      revert: (to) =>
        this.exclusive(async () => {
          this.config.follow(to.source.file, to.source.prepared, to.revision);
          const r = await this.reconcileNow('revision-rejected', to.source.prepared);
          if (!isConverged(r.outcome))
            throw r.error ?? new AwgError('driver', `the run ended ${r.outcome}`);
        }),
      ...(opts.verify ?? {}),
    });
  }

  // ---- lifecycle ----------------------------------------------------------------------

  async start(): Promise<void> {
    await this.host.ready();
    this.guardLimits(() => this.limits.start());
    this.tunnels.start(this.opts.healthIntervalMs ?? 1000);
    this.updates?.start();
    this.loop = startLoop(this.opts.loop ?? {}, (reason) =>
      this.exclusive(() => this.runOnce(reason)),
    );
    if (this.opts.wakes !== false) {
      this.wakes = await startWakeSources({
        ...(this.opts.wakes ?? {}),
        configPath: this.config.file,
        ...(this.host.platform?.watchNetwork
          ? { watchNetwork: this.host.platform.watchNetwork }
          : {}),
        // AWG_SYSTEM_BUS=0: no system-bus watch (the drift timer still re-checks)
        ...(this.host.platform?.watchSystem && (this.opts.env ?? process.env).AWG_SYSTEM_BUS !== '0'
          ? { watchSystem: this.host.platform.watchSystem }
          : {}),
        onWake: (reason, detail, what) => {
          if (reason === 'network') {
            // the engines re-handshake after an underlay change, not after our table's or a qdisc's
            if (what !== 'firewall' && what !== 'shaper') this.tunnels.networkMoved();
            this.feed.emit({ type: 'network-changed', at: now(), detail });
          }
          if (reason === 'system') {
            // after resume every peer's session may be stale (NAT bindings expired while asleep):
            // each WireGuard tunnel starts a handshake after the run
            if (what === 'resume') this.tunnels.networkMoved();
            this.feed.emit({ type: 'network-changed', at: now(), detail });
          }
          this.wake(reason);
        },
        isEcho: () => this.runs.isEcho(),
        claims: () => this.config.good?.prepared.claims ?? DEFAULT_CLAIMS,
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
    this.rollout.close();
    this.tunnels.stopHealth();
    this.feed.close();
    this.topFeed.close();
    this.runs.close();
    this.loop?.send({ type: 'STOP' });
    this.loop?.stop();
    await this.wakes?.close();
    this.confirmWindow.close();
    this.verify.close();
    this.limits.close();
    this.lists.close();
    this.updates?.close();
    let out = { removed: [] as string[], keptFirewall: false };
    try {
      await this.queue.catch(() => {});
      // a daemon still waiting for its config applied nothing: it leaves the host as it is
      // (a kill switch the early unit loaded at boot stays closed)
      const waited = this.config.waiting && !this.config.good;
      if ((opts.teardown ?? this.opts.teardownOnStop ?? true) && !waited) {
        const good = this.config.good;
        const ks = good ? killSwitchOf(good.prepared.config).enabled : false;
        out = await this.exclusive(() => this.removeAll(this.host.claims(), ks));
        // the record stays while the kill switch does: the next start restores these, not "repairs drift"
        if (out.keptFirewall) this.host.applied.markStopped(out.removed);
      }
    } finally {
      this.dnsStub.close();
      this.cgroupSets?.close();
      this.cgroupSets = undefined;
      await this.routing.close();
      await this.tunnels.close();
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

  subscribe(
    listener: (e: DaemonEvent, id: string) => void,
    o: { after?: string | undefined } = {},
  ): () => void {
    // ids, and resuming after one: the event log (event-log.ts)
    return this.feed.subscribe(listener, o);
  }

  lastEventId(): string {
    return this.feed.log.lastId;
  }

  top(
    req: TopRequest,
    listener: (d: TopDocument) => void,
    onEnd: (err?: AwgError) => void,
  ): () => void {
    return this.topFeed.subscribe(req, listener, onEnd);
  }

  async apply(req: ApplyRequest): Promise<ApplyResponse> {
    // refused before anything is read or applied, whoever calls (gRPC or in-process)
    if (req.confirmTimeoutSec !== undefined && req.confirmTimeoutSec !== 0)
      checkConfirmTimeout(req.confirmTimeoutSec);
    const r = await this.config.read(req.configPath, true);
    if (!r.ok) return applyResponse(req.configPath, { outcome: 'failed', error: r.error }, 0);
    if (req.dryRun)
      return this.exclusive(async () => {
        const env = this.host.envFor(r.prepared);
        const ctx = await converge(env, this.host.applied, r.prepared, { dryRun: true });
        return applyResponse(req.configPath, { ...ctx, outcome: ctx.outcome ?? 'failed' }, 0);
      });
    return this.exclusive(async () => {
      const previous = this.config.good;
      this.confirmWindow.close();
      // an apply ends the sticky holds: the next run routes their rules by their tunnels again
      this.tunnels.releaseSticky('apply');
      this.config.follow(resolve(req.configPath), r.prepared);
      const before = this.host.exec.mutations;
      const res = await this.reconcileNow('api', r.prepared);
      const resp = applyResponse(req.configPath, res, this.host.exec.mutations - before);
      if (req.confirmTimeoutSec && req.confirmTimeoutSec > 0 && isConverged(res.outcome)) {
        resp.confirmDeadline = this.confirmWindow.open(
          req.confirmTimeoutSec,
          previous,
          (p) => void this.revert(p),
        );
        this.feed.emit({ type: 'confirm-pending', at: now(), deadline: resp.confirmDeadline });
      }
      return resp;
    });
  }

  async confirm(): Promise<{ confirmed: boolean }> {
    return { confirmed: this.confirmWindow.confirm() };
  }

  /**
   * A Diff of a file that another Diff of the same file waits for in the queue joins that one:
   * it reads the file and observes the host after both requests came. So API clients that
   * diff in a loop put one run per file ahead of the loop's runs, not one per request (a
   * config edit waited behind 20 clients' Diffs: bench/soak.bench.ts).
   */
  diff(req: { configPath: string }): Promise<DiffResponse> {
    const queued = this.queuedDiffs.get(req.configPath);
    if (queued) return queued;
    const run = this.exclusive(async () => {
      // started: later requests observe anew
      this.queuedDiffs.delete(req.configPath);
      const r = await this.config.read(req.configPath, true);
      if (!r.ok) throw r.error;
      const env = this.host.envFor(r.prepared);
      const plan = await observeAndPlan(env, this.host.applied, r.prepared.desired);
      const doc = toPlanDocument(plan, req.configPath, planLists(r.prepared));
      return { plan: doc, changes: doc.changes.length > 0 };
    });
    this.queuedDiffs.set(req.configPath, run);
    return run;
  }

  /** what status says of the config: the follower's, the rollout gate's hold, the after-apply check */
  private configState(): ConfigState | undefined {
    const c = this.rollout.stateOf(this.config.state(this.runs));
    return c && { ...c, ...this.verify.state() };
  }

  async status(): Promise<StatusResponse> {
    const s = await assembleStatus({
      config: this.configState(),
      configPath: this.config.file,
      configured: Boolean(this.config.good || (this.config.file && !this.config.waiting)),
      running: this.runs.runningFor,
      lastRun: this.runs.lastRun,
      observed: this.runs.observed,
      prepared: this.config.good?.prepared,
      engines: this.engines,
      health: this.tunnels.health,
      confirmDeadline: this.confirmWindow.deadline,
      placement: this.routing.status(),
      flowTraffic: this.routing.ruleTraffic,
      exec: this.host.exec,
      dnsStub: this.dnsStub.status(),
      learnedNames: () => this.dnsStub.learnedNames(),
      update: this.updates?.status(),
    });
    const [limits, lists] = [await this.listLimits(), this.lists.status()];
    return { ...s, ...(limits.length ? { limits } : {}), ...(lists.length ? { lists } : {}) };
  }

  async observation(): Promise<ObservationRecord> {
    await this.host.ready();
    return this.exclusive(async () => {
      const last = this.host.applied.load();
      const good = this.config.good?.prepared;
      const r = await observationOf(
        this.host.envFor({ claims: last?.claims ?? this.host.claims() }),
        last,
        {
          // the facts the running config was realised with (probed anew when none is followed)
          facts: good?.facts,
          warn: (message) => this.host.reporter.report({ type: 'warning', message }),
        },
      );
      const state = this.configState();
      const rec = withRollout(r, state, this.verify.state());
      const rollout = rolloutRecordOf(state);
      return rollout ? { ...rec, rollout } : rec;
    });
  }

  async down(): Promise<{ removed: string[]; mutations: number }> {
    await this.host.ready();
    return this.exclusive(async () => {
      this.confirmWindow.close();
      const before = this.host.exec.mutations;
      const claims = this.host.claims();
      this.config.forget();
      this.lists.follow(undefined);
      await this.routing.stopPlacement();
      const r = await this.removeAll(claims, false).finally(() => {
        this.limits.forget();
        return this.routing.stopRouter();
      });
      return { removed: r.removed, mutations: this.host.exec.mutations - before };
    });
  }

  /** `awg exec` on macOS: route `pid` and its descendants by `choice` until the returned function is called */
  async routeExec(
    pid: number,
    choice: ExecChoice,
    onEnd: (reason: string) => void,
  ): Promise<() => void> {
    await this.host.ready();
    return this.routing.routeExec(pid, choice, onEnd);
  }

  async listProcesses(): Promise<ProcessInfo[]> {
    const p = this.config.good?.prepared;
    if (!p) return [];
    await this.host.ready();
    const list = await this.routing.listProcesses(p);
    if (!this.limits.size) return list;
    return list.map((x) => {
      const l = x.cgroup === undefined ? undefined : this.limits.limitOf(x.cgroup);
      return l
        ? {
            ...x,
            limit: {
              pid: l.pid,
              ...(l.upload !== undefined ? { upload: l.upload } : {}),
              ...(l.download !== undefined ? { download: l.download } : {}),
            },
          }
        : x;
    });
  }

  /**
   * `awg limit`: set, change or clear a process's runtime limit (limit-book.ts), then run
   * toward the config with it. A limit the run could not apply (the model refused it: more
   * than 32 limits; or the run failed) is undone and the error thrown; a cleared limit stays
   * cleared and a failed run is reported (the loop retries).
   */
  async limit(
    req: LimitRequest,
    caller: LimitCaller = { uid: 0, root: true },
  ): Promise<LimitResponse> {
    await this.host.ready();
    if (this.host.platform?.perApp !== 'cgroup')
      throw new AwgError(
        'unsupported',
        'runtime limits (awg limit) need cgroups: Linux only; on macOS limit a rule with `limit:` in the config',
      );
    return this.exclusive(async () => {
      const good = this.config.good;
      const file = this.config.file;
      if (!good || !file)
        throw new AwgError(
          'invalid-config',
          'no config is applied: a runtime limit is shaped on the devices of the applied config (run `awg apply -f CONFIG` first)',
        );
      const change = req.clear
        ? this.limits.clear(req.pid, caller)
        : this.limits.set(req, caller, good.prepared.claims.cgroupRoot);
      const answer = (changed: boolean): LimitResponse => {
        const limit = this.limits.list().find((l) => l.pid === req.pid);
        return { ...(limit ? { limit } : {}), changed };
      };
      if (!change.changed) return answer(false);
      const what = req.clear
        ? `clearing the limit of process ${req.pid}`
        : `the limit of process ${req.pid}`;
      const r = await this.config.read(file);
      if (r.ok && !req.clear && this.limits.isUnshaped(req.pid)) {
        change.undo();
        throw new AwgError(
          'invalid-config',
          `${what}: at most ${MAX_LIMITS} limits can be in force at once, the config's and the runtime ones together; clear one first (awg limit --list)`,
        );
      }
      if (!r.ok) {
        change.undo();
        throw new AwgError(r.error.kind, `${what}: ${r.error.message}`, {
          ...(r.error.issues ? { issues: r.error.issues } : {}),
        });
      }
      const res = await this.reconcileNow('api', r.prepared);
      if (!isConverged(res.outcome)) {
        change.undo();
        const e = res.error ?? new AwgError('driver', `the run ended ${res.outcome}`);
        throw new AwgError(
          e.kind,
          req.clear
            ? `the limit of process ${req.pid} is cleared, but the run that removes its shaping ended ${res.outcome}: ${e.message} (the daemon retries)`
            : `the limit of process ${req.pid} is not set: the run that applies it ended ${res.outcome}: ${e.message}`,
        );
      }
      return answer(true);
    });
  }

  async explain(req: ExplainRequest): Promise<ExplainDocument> {
    const { good } = this.config;
    const book = this.opts.learned ?? this.dnsStub.book;
    return explainRunning(req, {
      prepared: good?.prepared,
      book,
      down: this.tunnels.down,
      held: this.tunnels.held,
      opts: this.opts,
    });
  }

  async updateLists(req: { list?: string | undefined }): Promise<UpdateListsResponse> {
    return this.lists.update(req);
  }

  async listLimits(): Promise<LimitInfo[]> {
    return this.limits.size ? (this.guardLimits(() => this.limits.list()) ?? []) : [];
  }

  // ---- the loop -------------------------------------------------------------------------

  /** One loop run: reload, adopt (first run), reconcile, record, report. */
  private async runOnce(reason: WakeReason): Promise<RunResult> {
    // limits whose processes all exited leave before the run, which then removes their classes
    if (this.limits.size) this.guardLimits(() => this.limits.expire());
    const { source, error } = await this.config.reload();
    if (!source) {
      if (error) this.runs.refused(reason, error);
      return error ? 'terminal' : 'ok';
    }
    const res = await this.reconcileNow(reason, source.prepared);
    this.tunnels.kickIfMoved();
    if (isConverged(res.outcome)) return 'ok';
    const kind = classifyError(res.error);
    return kind === 'ok' ? 'retryable' : kind;
  }

  private async reconcileNow(reason: WakeReason, p: Prepared): Promise<RunOutcome> {
    const env = this.host.envFor(p);
    const upBefore = this.tunnelsUp(p);
    this.runs.begin(reason);
    try {
      await this.tunnels.beforeRun(p, applyContextOf(env));
      await this.routing.before(p.config, p.model.policy?.shaping, p.destinations);
      const stub = stubConfigOf(p.model.policy, p.claims.nftTable, p.destinations);
      await this.dnsStub.before(stub);
      const restoring = this.host.applied.stoppedRemoved();
      const ctx = await converge(env, this.host.applied, p, {
        configFile: this.config.good?.file ?? p.file,
      });
      const ok = isConverged(ctx.outcome);
      // a replaced table (applied, or restored by a rollback) has empty learned sets
      await this.dnsStub.after(stub, ok, firewallChanged(ctx.plan?.changes));
      if (ok) this.keepCgroupSets(p);
      await this.routing.after(p, ok);
      // after the run: a list fetched through a tunnel finds it there
      this.lists.follow(p);
      if (ok) this.tunnels.afterRun();
      if (ok)
        this.verify.converged({
          revision: this.config.state(this.runs)?.revision,
          source:
            this.config.good?.prepared === p ? this.config.good : { file: p.file, prepared: p },
          changes: ctx.plan?.changes.length ?? 0,
          upBefore,
        });
      if (ok && this.limits.size) await this.rehomeLimits(p.claims.cgroupRoot);
      return this.runs.finished(ctx, restoring, p.file);
    } catch (e) {
      return this.runs.failed(e);
    } finally {
      this.runs.end();
    }
  }

  /**
   * unit/cgroup rules: their `w_<rule>` sets follow the cgroups as they come and go (a unit
   * restart makes a new cgroup); the firewall driver filled them at the apply
   */
  private keepCgroupSets(p: Prepared): void {
    const fw = p.desired.resources.find((r) => r.kind === 'firewall');
    const sets = fw ? cgroupSetsOfRuleset((fw.spec as FirewallSpec).ruleset) : [];
    if (!sets.length && !this.cgroupSets) return;
    this.cgroupSets ??= new CgroupSetKeeper({
      table: p.claims.nftTable,
      onError: (e) =>
        (this.opts.reporter ?? silentReporter).report({
          type: 'warning',
          message: `cgroup sets: ${e.message}`,
        }),
    });
    this.cgroupSets.setSets(sets);
  }

  /** Confirm timeout: back to the desired state before the apply (or down when there was none). */
  private async revert(previous: Source | undefined): Promise<void> {
    try {
      await this.exclusive(async () => {
        if (previous) {
          this.config.follow(previous.file, previous.prepared);
          await this.reconcileNow('confirm-timeout', previous.prepared);
        } else {
          const claims = this.host.claims();
          this.config.forget();
          await this.removeAll(claims, false).finally(() => {
            this.limits.forget();
            return this.routing.stopRouter();
          });
        }
      });
    } catch (e) {
      const err = toAwgError(e);
      this.feed.emit({
        type: 'error',
        at: now(),
        kind: err.kind,
        message: `revert after the confirm timeout failed: ${err.message}`,
      });
      this.wake('confirm-timeout');
      return;
    }
    this.feed.emit({
      type: 'reverted',
      at: now(),
      reason: 'confirm timeout expired without confirm()',
    });
  }

  /** Remove everything we own (pipeline/teardown.ts); with `keepKillSwitch` the firewall and its cgroups stay. */
  private async removeAll(
    claims: Claims,
    keepKillSwitch: boolean,
  ): Promise<{ removed: string[]; keptFirewall: boolean }> {
    const env = this.host.envFor({ claims });
    const r = await this.runs.teardown(() => teardown(env, this.host.applied, { keepKillSwitch }));
    if (!r.errors.length) this.dnsStub.close();
    if (r.errors.length) throw r.errors[0]!;
    if (r.left.length)
      throw new AwgError('verification', `down left objects behind: ${r.left.join(', ')}`);
    return { removed: r.removed, keptFirewall: r.kept.length > 0 };
  }

  // ---- internals ----------------------------------------------------------------------

  /**
   * Limits whose cgroup is gone while their process lives get a new one once the placer has
   * placed by this run's rules (it would move them again otherwise); a run then shapes them.
   */
  private async rehomeLimits(cgroupRoot: string): Promise<void> {
    await this.routing.placed();
    if (this.guardLimits(() => this.limits.rehome(cgroupRoot))) this.wake('limit');
  }

  /** a failure of the runtime limits' bookkeeping is reported, never the end of a run */
  private guardLimits<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      const err = toAwgError(e);
      this.feed.emit({
        type: 'error',
        at: now(),
        kind: err.kind,
        message: `runtime limits: ${err.message}`,
      });
      return undefined;
    }
  }

  /** the tunnels of `p` up now (tunnel health) */
  private tunnelsUp(p: Prepared | undefined): Set<string> {
    const names = Object.keys(p?.config.tunnels ?? {});
    return new Set(names.filter((t) => this.tunnels.health.stateOf(t) === 'up'));
  }

  /** the cgroup subtree of the config followed (the default before there is one) */
  private cgroupRoot(): string {
    return (this.config.good?.prepared.claims ?? DEFAULT_CLAIMS).cgroupRoot;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }
}

/** Build and start the daemon core (the gRPC server wraps the returned object). */
export async function startDaemonCore(opts: DaemonOptions = {}): Promise<Daemon> {
  const d = new Daemon(opts);
  await d.start();
  return d;
}
