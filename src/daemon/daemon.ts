/**
 * The daemon core: a thin host over its parts. It runs the loop (loop.ts) over the shared
 * pipeline (src/pipeline) and offers the DaemonCore API the gRPC server wraps. One reconcile at
 * a time: loop runs and API operations (apply, diff, down) are serialised on one queue.
 *
 * Its parts, each in its own file: what it reconciles with (daemon-env.ts: the platform, its
 * drivers, the state directory), the queue its runs and API calls take turns on (run-queue.ts),
 * the config it follows (revision-following.ts: the config follower, config-follower.ts, the
 * rollout gate before a new revision of a checkout and the check after its apply,
 * revision-watch.ts), the bookkeeping of its runs (runs.ts), the event feed and its traffic
 * poll (feed.ts), the tunnels it hosts and their health (tunnels.ts), per-app routing
 * (app-routing.ts: the placer, or on macOS the flow router), the processes limited at run time
 * (limits-host.ts: `awg limit`), the wake sources (wakes.ts) and the status they add up to
 * (status.ts).
 *
 * Stop: the host is left as `awg down` would leave it, unless the kill switch is on: then
 * the firewall (and the cgroups it names) stays, so traffic stays blocked until the next
 * start (fail-closed across restarts). Start adopts what is already there: engines left by
 * `awg apply` move into this process before the first run, everything else is observed,
 * so that run plans no change.
 */
import { resolve } from 'node:path';
import type { Actor } from 'xstate';
import { AwgError } from '../errors.js';
import { killSwitchOf } from '../config/schema.js';
import { tunnelUpOf, type ExecChoice } from '../model/match.js';
import { toPlanDocument } from '../model/plan-document.js';
import { applyContextOf } from '../reconciler/observe.js';
import { DEFAULT_CLAIMS } from '../pipeline/claims.js';
import { converge } from '../pipeline/converge.js';
import { observeAndPlan } from '../pipeline/diff.js';
import type { Prepared } from '../pipeline/prepare.js';
import { CgroupSetsHost } from './cgroup-sets.js';
import { teardown } from '../pipeline/teardown.js';
import type { Claims } from '../resources/driver.js';
import { createInprocEngineHost, type InprocEngineHost } from '../resources/engine/inproc.js';
import { silentReporter } from '../util/reporter.js';
import { topContext } from '../procs/top/routing.js';
import { trafficSource } from '../procs/top/source.js';
import { AppRouting } from './app-routing.js';
import { DaemonEnv } from './daemon-env.js';
import type { ConfigFollower, Source } from './config-follower.js';
import { checkConfirmTimeout, ConfirmWindow, revertAtTimeout } from './confirm.js';
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
import { LimitsHost } from './limits-host.js';
import { linuxLimitSystem } from './limit-system.js';
import { EventFeed } from './feed.js';
import { TopFeed } from './top-feed.js';
import { DnsStubHost, firewallChanged, stubConfigOf } from './dns-stub-host.js';
import { classifyError, startLoop, type loopMachine, type RunResult } from './loop.js';
import type { DaemonOptions } from './options.js';
import { applyResponse, isConverged, RunBook, type RunOutcome } from './runs.js';
import { RevisionFollowing } from './revision-following.js';
import { RunQueue } from './run-queue.js';
import { assembleStatus } from './status.js';
import { Tunnels } from './tunnels.js';
import { UpdateWatch } from './update-watch.js';
import { startDaemonWakes, type WakeSources } from './wakes.js';

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
  /** the config's revisions: the follower, the rollout gate, the after-apply check */
  private readonly revisions: RevisionFollowing;
  private readonly confirmWindow: ConfirmWindow<Source>;
  private readonly limits: LimitsHost;
  private readonly dnsStub = new DnsStubHost();
  private readonly lists: ListsHost;
  private readonly updates: UpdateWatch | undefined;
  private readonly cgroupSets: CgroupSetsHost;
  private readonly queue = new RunQueue();
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
      context: () =>
        topContext(this.config.good?.prepared.config, {
          cgroupRoot: this.cgroupRoot(),
          tunnelUp: tunnelUpOf(this.tunnels.down, this.tunnels.held),
          ...this.limits.topContext(),
        }),
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
      // macOS: probes pin their sockets to the tunnel's utun, as the flow router does
      probeSockets: () =>
        this.host.platform?.os === 'darwin' ? this.routing.probeSockets : undefined,
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
    this.limits = new LimitsHost({
      state: this.host.state,
      system: () => opts.limitSystem ?? linuxLimitSystem(),
      emit,
      wake: () => this.wake('limit'),
      placed: () => this.routing.placed(),
      followed: () => ({ file: this.config.file, good: this.config.good }),
      read: (file) => this.config.read(file),
      reconcile: (p) => this.reconcileNow('api', p),
    });
    this.lists = new ListsHost({
      ...opts.lists,
      stateDir: this.host.state.dir,
      emit,
      wake: () => this.wake('lists'),
      current: () => this.config.good?.prepared,
      proxyDialer: (t) => this.engines.proxyDialer?.(t),
      // macOS: a fetch via a tunnel holds to its utun, as the probes do
      linkPin: () => (this.host.platform?.os === 'darwin' ? this.routing.linkPin : undefined),
    });
    this.revisions = new RevisionFollowing({
      ...opts,
      host: this.host,
      reporter,
      runs: this.runs,
      emit,
      wake: (reason) => this.wake(reason),
      readOptions: () => ({
        ...this.tunnels.readOptions(),
        runtimeLimits: (config, cgroupRoot) => this.limits.forRun(config, cgroupRoot),
        urlList: this.lists.source,
      }),
      watch: (files) => this.wakes?.setConfigFiles(files),
      up: (p) => this.tunnelsUp(p),
      exclusive: (fn) => this.queue.run(fn),
      reconcile: (reason, p) => this.reconcileNow(reason, p),
    });
    this.config = this.revisions.config;
    this.cgroupSets = new CgroupSetsHost((e) =>
      reporter.report({ type: 'warning', message: `cgroup sets: ${e.message}` }),
    );
  }

  // ---- lifecycle ----------------------------------------------------------------------

  async start(): Promise<void> {
    await this.host.ready();
    this.limits.start();
    this.tunnels.start(this.opts.healthIntervalMs ?? 1000);
    this.updates?.start();
    this.loop = startLoop(this.opts.loop ?? {}, (reason) =>
      this.queue.run(() => this.runOnce(reason)),
    );
    if (this.opts.wakes !== false) {
      this.wakes = await startDaemonWakes({
        ...(this.opts.wakes ?? {}),
        configPath: this.config.file,
        platform: this.host.platform,
        env: this.opts.env ?? process.env,
        networkMoved: () => this.tunnels.networkMoved(),
        emit: (e) => this.feed.emit(e),
        wake: (reason) => this.wake(reason),
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
    this.tunnels.stopHealth();
    this.feed.close();
    this.topFeed.close();
    this.runs.close();
    this.loop?.send({ type: 'STOP' });
    this.loop?.stop();
    await this.wakes?.close();
    this.confirmWindow.close();
    this.revisions.close();
    this.limits.close();
    this.lists.close();
    this.updates?.close();
    let out = { removed: [] as string[], keptFirewall: false };
    try {
      await this.queue.idle();
      // a daemon still waiting for its config applied nothing: it leaves the host as it is
      // (a kill switch the early unit loaded at boot stays closed)
      const waited = this.config.waiting && !this.config.good;
      if ((opts.teardown ?? this.opts.teardownOnStop ?? true) && !waited) {
        const good = this.config.good;
        const ks = good ? killSwitchOf(good.prepared.config).enabled : false;
        out = await this.queue.run(() => this.removeAll(this.host.claims(), ks));
        // the record stays while the kill switch does: the next start restores these, not "repairs drift"
        if (out.keptFirewall) this.host.applied.markStopped(out.removed);
      }
    } finally {
      this.dnsStub.close();
      this.cgroupSets.close();
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
      return this.queue.run(async () => {
        const env = this.host.envFor(r.prepared);
        const ctx = await converge(env, this.host.applied, r.prepared, { dryRun: true });
        return applyResponse(req.configPath, { ...ctx, outcome: ctx.outcome ?? 'failed' }, 0);
      });
    return this.queue.run(async () => {
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
    return this.queue.joined(`diff:${req.configPath}`, async () => {
      const r = await this.config.read(req.configPath, true);
      if (!r.ok) throw r.error;
      const env = this.host.envFor(r.prepared);
      const plan = await observeAndPlan(env, this.host.applied, r.prepared.desired);
      const doc = toPlanDocument(plan, req.configPath, planLists(r.prepared));
      return { plan: doc, changes: doc.changes.length > 0 };
    });
  }

  async status(): Promise<StatusResponse> {
    const s = await assembleStatus({
      config: this.revisions.state(),
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
    const [limits, lists] = [this.limits.list(), this.lists.status()];
    return { ...s, ...(limits.length ? { limits } : {}), ...(lists.length ? { lists } : {}) };
  }

  /** the observation record (`awg fleet status`): revision-following.ts */
  observation(): Promise<ObservationRecord> {
    return this.revisions.observation();
  }

  async down(): Promise<{ removed: string[]; mutations: number }> {
    await this.host.ready();
    return this.queue.run(async () => {
      this.confirmWindow.close();
      const before = this.host.exec.mutations;
      const claims = this.host.claims();
      this.config.forget();
      this.lists.follow(undefined);
      await this.routing.stopPlacement();
      const r = await this.removeFollowed(claims);
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
    return this.limits.annotate(await this.routing.listProcesses(p));
  }

  /** `awg limit` (limits-host.ts) */
  async limit(
    req: LimitRequest,
    caller: LimitCaller = { uid: 0, root: true },
  ): Promise<LimitResponse> {
    await this.host.ready();
    this.limits.supported(this.host.platform?.perApp);
    return this.queue.run(() => this.limits.change(req, caller));
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
    return this.limits.list();
  }

  // ---- the loop -------------------------------------------------------------------------

  /** One loop run: reload, adopt (first run), reconcile, record, report. */
  private async runOnce(reason: WakeReason): Promise<RunResult> {
    // limits whose processes all exited leave before the run, which then removes their classes
    this.limits.expire();
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
      if (ok) this.cgroupSets.follow(p);
      await this.routing.after(p, ok);
      // after the run: a list fetched through a tunnel finds it there
      this.lists.follow(p);
      if (ok) this.tunnels.afterRun();
      if (ok) this.revisions.converged(p, ctx.plan?.changes.length ?? 0, upBefore);
      if (ok) await this.limits.rehome(p.claims.cgroupRoot);
      return this.runs.finished(ctx, restoring, p.file);
    } catch (e) {
      return this.runs.failed(e);
    } finally {
      this.runs.end();
    }
  }

  /** Confirm timeout: back to the desired state before the apply (or down when there was none). */
  private revert(previous: Source | undefined): Promise<void> {
    const back = () =>
      this.queue.run(async () => {
        if (previous) {
          this.config.follow(previous.file, previous.prepared);
          await this.reconcileNow('confirm-timeout', previous.prepared);
        } else {
          const claims = this.host.claims();
          this.config.forget();
          await this.removeFollowed(claims);
        }
      });
    return revertAtTimeout(back, {
      emit: (e) => this.feed.emit(e),
      retry: () => this.wake('confirm-timeout'),
    });
  }

  /** removeAll for down (and a revert to nothing): the runtime limits and the flow router go too */
  private removeFollowed(claims: Claims): Promise<{ removed: string[]; keptFirewall: boolean }> {
    return this.removeAll(claims, false).finally(() => {
      this.limits.forget();
      return this.routing.stopRouter();
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

  /** the tunnels of `p` up now (tunnel health) */
  private tunnelsUp(p: Prepared | undefined): Set<string> {
    const names = Object.keys(p?.config.tunnels ?? {});
    return new Set(names.filter((t) => this.tunnels.health.stateOf(t) === 'up'));
  }

  /** the cgroup subtree of the config followed (the default before there is one) */
  private cgroupRoot(): string {
    return (this.config.good?.prepared.claims ?? DEFAULT_CLAIMS).cgroupRoot;
  }
}

/** Build and start the daemon core (the gRPC server wraps the returned object). */
export async function startDaemonCore(opts: DaemonOptions = {}): Promise<Daemon> {
  const d = new Daemon(opts);
  await d.start();
  return d;
}
