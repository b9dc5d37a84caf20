/**
 * The daemon core: hosts the loop (loop.ts), the tunnel engines (in-process) and the
 * DaemonCore API the gRPC server wraps. One reconcile at a time: loop runs and API
 * operations (apply, diff, down) are serialised on one queue.
 *
 * Desired state comes from one config file (`--config`, or the file of the last apply). It
 * is re-read on every run (level-triggered: host facts such as resolved endpoints are
 * re-probed too); an invalid file keeps the last good desired state and is reported once
 * per content (`config-changed {valid:false}` + `error`).
 *
 * Stop: the host is left as `awg down` would leave it, unless the kill switch is on: then
 * the nft table (and the cgroups it names) stays, so traffic stays blocked until the next
 * start (fail-closed across restarts). Start adopts what is already there: engines left by
 * `awg apply` move into this process before the first run, everything else is observed,
 * so that run plans no change.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createActor, fromPromise, type Actor } from 'xstate';
import { AwgError, formatIssue, toAwgError } from '../errors.js';
import { readFileSync } from 'node:fs';
import { isWgLike, killSwitchOf } from '../config/schema.js';
import { compileRules } from '../model/match.js';
import { parseCgroup2Mount } from '../resources/cgroup/parse.js';
import { describeProcess } from '../procs/placer.js';
import { spawnPlacerProcess, type PlacerHandle, type PlacerProcessOptions } from '../procs/placer-process.js';
import { linuxProcFs, scanProcesses } from '../procs/scan.js';
import { readRuleCounters } from '../resources/firewall/counters.js';
import { downSet, isDown, wgHealth, type HealthState } from './health.js';
import { sameSet } from '../util/canonical.js';
import type { Plan } from '../model/change.js';
import { toPlanDocument } from '../model/plan-document.js';
import type { AnyResource, DesiredState, ObservedState } from '../model/resources.js';
import { executeChanges } from '../reconciler/execute.js';
import { plan as makePlan } from '../reconciler/plan.js';
import { observeWith, reconcile, type ReconcileEnv } from '../reconciler/run.js';
import { verify } from '../reconciler/verify.js';
import type { ApplyContext, DriverSet } from '../resources/driver.js';
import { createDrivers } from '../resources/registry.js';
import { createInprocEngineHost, type EngineChange, type InprocEngineHost } from '../resources/engine/inproc.js';
import { ProcessExec, type Exec } from '../util/exec.js';
import { silentReporter, type Reporter } from '../util/reporter.js';
import { FileStateStore, type StateStore } from '../util/state.js';
import type { HostFacts } from '../model/desired.js';
import { DEFAULT_CLAIMS, prepare, type Prepared } from '../cli/app.js';
import { APPLIED_KEY, stateDirFrom, type AppliedRecord } from '../cli/env.js';
import { hostFacts } from '../cli/commands/host.js';
import type { ApplyRequest, ApplyResponse, DaemonCore, DaemonEvent, PlacementStatus, ProcessInfo, StatusResponse, TunnelStatus, WakeReason } from './core.js';
import { classifyError, loopMachine, type LoopInput, type RunInput, type RunResult } from './loop.js';
import { startWakeSources, type WakeSources, type WakeSourceOptions } from './wakes.js';

export interface DaemonOptions {
  /** config file; default: the file of the last apply recorded in the state store */
  configPath?: string;
  stateDir?: string;
  /** mutation log (`[#] …`) and phases; events go to subscribers */
  reporter?: Reporter;
  loop?: LoopInput;
  /** config watcher and rtnetlink monitor (default on) */
  wakes?: Omit<WakeSourceOptions, 'configPath' | 'onWake' | 'isEcho' | 'claims'> | false;
  /** leave the host as `awg down` would on stop (default true; kill switch keeps the nft table) */
  teardownOnStop?: boolean;
  env?: NodeJS.ProcessEnv;
  // ---- injection for tests
  drivers?: Partial<DriverSet>;
  engines?: InprocEngineHost;
  exec?: Exec;
  state?: StateStore;
  facts?: HostFacts;
  /** confirm-timeout timer; default setTimeout */
  timer?: (ms: number, fn: () => void) => () => void;
  /**
   * The process watcher for path rules: an `awg placer` child at SCHED_FIFO, given
   * AWG_PROC_CONNECTOR_FD or a connector socket of our own (LISTEN works only from the
   * initial network namespace). false: no placement.
   */
  placement?: false | Pick<PlacerProcessOptions, 'connectorFd' | 'command' | 'priority'>;
  /** health evaluation period (default 1000 ms; 0: only on engine events) */
  healthIntervalMs?: number;
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
/** events that fall inside this window after a run are echoes of our own changes */
const ECHO_MS = 750;
/**
 * A peer we sent to but did not hear from for this long gets a handshake initiation: if it
 * goes unanswered for `downAfter`, the tunnel is down. WireGuard alone only notices at the
 * next rekey when we merely send keepalives. Longer than KEEPALIVE_TIMEOUT (10 s), within
 * which a live peer answers data with at least a keepalive.
 */
const SILENCE_PROBE_MS = 11_000;

export class Daemon implements DaemonCore {
  private readonly listeners = new Set<(e: DaemonEvent) => void>();
  private readonly state: StateStore;
  private readonly exec: Exec;
  readonly engines: InprocEngineHost;
  private readonly drivers: Partial<DriverSet>;
  private readonly reporter: Reporter;
  private configPath: string | undefined;
  private good: Source | undefined;
  private seenHash: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private running = false;
  private echoUntil = 0;
  private adopted = false;
  private lastRun: LastRun | undefined;
  private lastObserved: ObservedState | undefined;
  private lastPlan: Plan | undefined;
  private confirm_: { deadline: string; cancel: () => void; previous: Source | undefined } | undefined;
  private loop: Actor<typeof loopMachine> | undefined;
  private wakes: WakeSources | undefined;
  /** tunnel health as the loop routes by (see health.ts) */
  private health = new Map<string, HealthState>();
  private healthErrors = new Map<string, string>();
  /** proxy tunnels: the upstream checker's last state, from engine 'health' events */
  private proxyHealth = new Map<string, { state: 'up' | 'down' | 'auth-failed'; error?: string }>();
  /** tunnels not up: given to buildDesired (rules' fallbacks) and the placer (failover) */
  private downTunnels = new Set<string>();
  private healthTimer: NodeJS.Timeout | undefined;
  /** per tunnel/peer: byte counters at the last tick and when rx last moved */
  private peerSeen = new Map<string, { rx: number; tx: number; rxAt: number; txSinceRx: boolean }>();
  private placer: PlacerHandle | undefined;
  private placerKey = '';
  private placementFinal = false;
  private placement: PlacementStatus = { state: 'off', execs: 0, placed: 0, errors: 0 };
  private unsubEngines: (() => void) | undefined;
  private stopped = false;
  /** the underlay changed since the engines were last kicked (wakes coalesce: not a reason) */
  private networkDirty = false;

  constructor(private readonly opts: DaemonOptions = {}) {
    this.state = opts.state ?? new FileStateStore(stateDirFrom(opts.stateDir));
    this.reporter = opts.reporter ?? silentReporter;
    this.exec = opts.exec ?? new ProcessExec(this.reporter, false);
    this.engines = opts.engines ?? createInprocEngineHost({ env: opts.env });
    this.drivers = { ...(opts.drivers ?? createDrivers({ exec: this.exec, env: opts.env })), engine: opts.drivers?.engine ?? this.engines.driver };
    const path = opts.configPath ?? this.state.get<AppliedRecord>(APPLIED_KEY)?.configFile;
    this.configPath = path ? resolve(path) : undefined;
  }

  // ---- lifecycle ----------------------------------------------------------------------

  async start(): Promise<void> {
    this.unsubEngines = this.engines.onChange((c) => this.onEngine(c));
    const machine = loopMachine.provide({
      actors: { reconcile: fromPromise<RunResult, RunInput>(({ input }) => this.exclusive(() => this.runOnce(input.reason))) },
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
        onWake: (reason, detail) => {
          if (reason === 'network') {
            this.networkDirty = true;
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
  async stop(opts: { teardown?: boolean } = {}): Promise<{ removed: string[]; keptFirewall: boolean }> {
    if (this.stopped) return { removed: [], keptFirewall: false };
    this.stopped = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.loop?.send({ type: 'STOP' });
    this.loop?.stop();
    await this.wakes?.close();
    this.confirm_?.cancel();
    this.confirm_ = undefined;
    let out = { removed: [] as string[], keptFirewall: false };
    try {
      await this.queue.catch(() => {});
      if (opts.teardown ?? this.opts.teardownOnStop ?? true) {
        const ks = this.good ? killSwitchOf(this.good.prepared.config).enabled : false;
        out = await this.exclusive(() => this.teardown(ks));
      }
    } finally {
      await this.placer?.close();
      this.placer = undefined;
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
    return () => this.listeners.delete(listener);
  }

  async apply(req: ApplyRequest): Promise<ApplyResponse> {
    const r = await this.prepareFile(req.configPath);
    if (!r.ok) {
      const err = r.error;
      return { outcome: 'failed', plan: toPlanDocument({ changes: [], foreign: [], warnings: [] }, req.configPath), mutations: 0, error: errOf(err) };
    }
    if (req.dryRun) {
      return this.exclusive(async () => {
        const ctx = await reconcile(this.envFor(r.prepared), { desired: r.prepared.desired, lastApplied: this.lastApplied(), dryRun: true, failClosed: false });
        return { outcome: ctx.outcome ?? 'failed', plan: toPlanDocument(ctx.plan ?? { changes: [], foreign: [], warnings: [] }, req.configPath), mutations: 0, error: errOf(ctx.error) };
      });
    }
    return this.exclusive(async () => {
      const previous = this.good;
      this.confirm_?.cancel();
      this.confirm_ = undefined;
      this.setSource(resolve(req.configPath), r.prepared);
      const before = this.exec.mutations;
      const res = await this.reconcileNow('api', r.prepared);
      const resp: ApplyResponse = { outcome: res.outcome, plan: toPlanDocument(res.plan ?? { changes: [], foreign: [], warnings: [] }, req.configPath), mutations: this.exec.mutations - before, error: errOf(res.error) };
      if (req.confirmTimeoutSec && req.confirmTimeoutSec > 0 && (res.outcome === 'converged' || res.outcome === 'unchanged')) {
        const deadline = new Date(Date.now() + req.confirmTimeoutSec * 1000).toISOString();
        const timer = this.opts.timer ?? ((ms, fn) => {
          const t = setTimeout(fn, ms);
          t.unref?.();
          return () => clearTimeout(t);
        });
        const cancel = timer(req.confirmTimeoutSec * 1000, () => void this.revert(previous));
        this.confirm_ = { deadline, cancel, previous };
        resp.confirmDeadline = deadline;
        this.emit({ type: 'confirm-pending', at: now(), deadline });
      }
      return resp;
    });
  }

  async confirm(): Promise<{ confirmed: boolean }> {
    const c = this.confirm_;
    if (!c) return { confirmed: false };
    c.cancel();
    this.confirm_ = undefined;
    return { confirmed: true };
  }

  async diff(req: { configPath: string }): Promise<{ plan: ApplyResponse['plan']; changes: boolean }> {
    const r = await this.prepareFile(req.configPath);
    if (!r.ok) throw r.error;
    return this.exclusive(async () => {
      const env = this.envFor(r.prepared);
      const observed = await observeWith(env, r.prepared.desired);
      const p = makePlan(r.prepared.desired, observed, { lastApplied: this.lastApplied() });
      const doc = toPlanDocument(p, req.configPath);
      return { plan: doc, changes: doc.changes.length > 0 };
    });
  }

  async status(): Promise<StatusResponse> {
    const lr = this.lastRun;
    const stats = new Map(this.engines.stats().map((s) => [s.tunnel, s]));
    const proxies = new Map(this.engines.proxyStats().map((s) => [s.tunnel, s]));
    const tunnels: TunnelStatus[] = [];
    const t = Date.now();
    const age = (ms: number) => (ms > 0 ? Math.max(0, Math.round((t - ms) / 1000)) : undefined);
    for (const r of this.good?.prepared.desired.resources ?? []) {
      if (r.kind !== 'engine') continue;
      const px = proxies.get(r.spec.tunnel);
      if (!r.spec.link) {
        const health = this.health.get(r.spec.tunnel) ?? 'connecting';
        const error = this.healthErrors.get(r.spec.tunnel) ?? px?.error;
        tunnels.push({
          name: r.spec.tunnel,
          type: r.spec.type,
          health,
          ...(error && isDown(health) ? { error } : {}),
          up: health === 'up',
          rxBytes: px?.bytes.down ?? 0,
          txBytes: px?.bytes.up ?? 0,
          peers: [],
          connectionsActive: px?.connections.active ?? 0,
          connectionsTotal: px?.connections.total ?? 0,
          dialErrors: Object.values(px?.dialErrors ?? {}).reduce((a, n) => a + (n ?? 0), 0),
        });
        continue;
      }
      const s = stats.get(r.spec.tunnel);
      const peers = (s?.peers ?? []).map((p) => ({ publicKey: p.publicKey, ...(p.endpoint ? { endpoint: p.endpoint } : {}), lastHandshakeAgeSec: age(p.lastHandshakeMs), rxBytes: p.rxBytes, txBytes: p.txBytes }));
      const newest = Math.max(0, ...(s?.peers ?? []).map((p) => p.lastHandshakeMs));
      const health = this.health.get(r.spec.tunnel) ?? 'connecting';
      const error = this.healthErrors.get(r.spec.tunnel);
      tunnels.push({
        name: r.spec.tunnel,
        type: r.spec.type,
        ...(r.spec.link ? { link: r.spec.link } : {}),
        health,
        ...(error ? { error } : {}),
        up: r.spec.link ? Boolean(s?.up) && !isDown(health) : health === 'up',
        lastHandshakeAgeSec: age(newest),
        rxBytes: peers.reduce((a, p) => a + p.rxBytes, 0),
        txBytes: peers.reduce((a, p) => a + p.txBytes, 0),
        peers,
      });
    }
    let state: StatusResponse['state'];
    if (this.running) state = 'reconciling';
    else if (!this.good && !this.configPath) state = 'down';
    else if (!lr) state = 'reconciling';
    else if (lr.outcome === 'failed-closed') state = 'failed-closed';
    else if (lr.outcome === 'converged' || lr.outcome === 'unchanged') state = 'converged';
    else if (lr.outcome === 'rolled-back') state = 'drifted';
    else state = 'failed';
    return {
      state,
      ...(this.configPath ? { configPath: this.configPath } : {}),
      ...(lr ? { lastReconcile: { at: lr.at, outcome: lr.outcome, durationMs: lr.durationMs, ...(lr.error ? { error: lr.error } : {}) } } : {}),
      objects: (this.lastObserved?.resources ?? []).map((r) => ({ kind: r.kind, id: r.id })),
      tunnels,
      ...(this.confirm_ ? { confirmDeadline: this.confirm_.deadline } : {}),
      placement: this.placementStatus(),
      ...(await this.ruleCounters()),
    };
  }

  private placementStatus(): PlacementStatus {
    const st = this.placer?.stats;
    return { ...this.placement, ...(st ? { execs: st.execs, placed: st.placed, errors: st.errors + st.missingCgroup } : {}) };
  }

  /** per-rule egress counters from our nft table; nothing when it cannot be read */
  private async ruleCounters(): Promise<Pick<StatusResponse, 'rules'>> {
    const p = this.good?.prepared;
    if (!p || p.config.rules.length === 0) return {};
    try {
      const counters = await readRuleCounters(this.exec, p.claims.nftTable);
      const matcher = compileRules(p.config.rules);
      const rules = p.desired.policy.apps
        .filter((a) => !a.name.startsWith('_'))
        .map((a) => {
          const r = matcher.byName(a.name);
          const c = counters.get(`app/${a.name}`) ?? { packets: 0, bytes: 0 };
          const route = a.action.type === 'drop' ? 'blocked' : a.action.type === 'direct' ? 'direct' : (r?.target ?? '');
          return { name: a.name, target: r?.target ?? '', route, packets: c.packets, bytes: c.bytes };
        });
      return { rules };
    } catch {
      return {};
    }
  }

  async down(): Promise<{ removed: string[]; mutations: number }> {
    return this.exclusive(async () => {
      this.confirm_?.cancel();
      this.confirm_ = undefined;
      const before = this.exec.mutations;
      const claims = this.good?.prepared.claims ?? this.state.get<AppliedRecord>(APPLIED_KEY)?.claims ?? DEFAULT_CLAIMS;
      this.configPath = undefined;
      this.good = undefined;
      this.wakes?.setConfigPath(undefined);
      await this.stopPlacing();
      const r = await this.removeAll(claims, false);
      this.state.delete(APPLIED_KEY);
      this.lastObserved = { resources: [], foreign: [] };
      return { removed: r.removed, mutations: this.exec.mutations - before };
    });
  }

  /**
   * Processes awg routes: those in our cgroups and those a rule matches (pid, exe, the rule
   * of the cgroup they sit in, its target, the route now). Works without the watcher too.
   */
  async listProcesses(): Promise<ProcessInfo[]> {
    const p = this.good?.prepared;
    if (!p) return [];
    const o = { tunnelUp: (t: string) => !this.downTunnels.has(t), defaultRoute: p.config.default };
    const mount = parseCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
    const matcher = compileRules(p.config.rules);
    return scanProcesses(linuxProcFs()).flatMap((e) => describeProcess(e, matcher, p.claims.cgroupRoot, mount?.root ?? '/', o));
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

  private lastApplied(): AnyResource[] | undefined {
    return this.state.get<AppliedRecord>(APPLIED_KEY)?.resources;
  }

  private setSource(file: string, prepared: Prepared): void {
    this.configPath = file;
    this.good = { file, prepared };
    this.seenHash = undefined;
    this.wakes?.setConfigPath(file);
  }

  private envFor(p: { claims: Prepared['claims']; secrets?: ReadonlyMap<string, string> }): ReconcileEnv {
    return { drivers: this.drivers, claims: p.claims, state: this.state, exec: this.exec, reporter: this.reporter, secrets: p.secrets };
  }

  private applyCtx(env: ReconcileEnv): ApplyContext {
    return { exec: env.exec, reporter: env.reporter, state: env.state, dryRun: false, claims: env.claims, secrets: env.secrets };
  }

  private async prepareFile(file: string): Promise<{ ok: true; prepared: Prepared } | { ok: false; error: AwgError }> {
    try {
      const r = await prepare(file, { env: this.opts.env, down: this.downTunnels, ...(this.opts.facts ? { facts: this.opts.facts } : { probeFacts: hostFacts }) });
      if (r.ok) return r;
      const errors = r.issues.filter((i) => i.severity === 'error');
      return { ok: false, error: new AwgError('invalid-config', `${file}: invalid configuration: ${errors.map(formatIssue).join('; ')}`, { issues: r.issues }) };
    } catch (e) {
      return { ok: false, error: toAwgError(e, 'invalid-config') };
    }
  }

  /** Re-read the config; returns the source to reconcile toward (last good on errors). */
  private async reload(): Promise<{ source?: Source; error?: AwgError }> {
    const file = this.configPath;
    if (!file) return {};
    let hash: string;
    try {
      hash = createHash('sha256').update(await readFile(file)).digest('hex');
    } catch (e) {
      hash = `unreadable:${(e as NodeJS.ErrnoException).code ?? 'error'}`;
    }
    const changed = this.seenHash !== undefined && hash !== this.seenHash;
    const first = this.seenHash === undefined;
    this.seenHash = hash;
    const r = await this.prepareFile(file);
    if (r.ok) {
      if (changed) this.emit({ type: 'config-changed', at: now(), path: file, valid: true });
      this.good = { file, prepared: r.prepared };
      return { source: this.good };
    }
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

  private async reconcileNow(reason: WakeReason, p: Prepared): Promise<{ outcome: string; plan?: Plan; error?: AwgError }> {
    const env = this.envFor(p);
    const t0 = Date.now();
    this.running = true;
    this.emit({ type: 'reconcile-started', at: now(), reason });
    try {
      if (!this.adopted) {
        this.adopted = true;
        const moved = await this.engines.adopt(p.desired, this.applyCtx(env)).catch((e: unknown) => {
          this.emit({ type: 'error', at: now(), kind: toAwgError(e).kind, message: `adopting engines: ${(e as Error).message}` });
          return [] as string[];
        });
        if (moved.length) this.reporter.report({ type: 'info', message: `adopted engine(s) ${moved.join(', ')} from awg apply` });
      }
      const ctx = await reconcile(env, { desired: p.desired, lastApplied: this.lastApplied(), dryRun: false, failClosed: killSwitchOf(p.config).enabled });
      const outcome = ctx.outcome ?? 'failed';
      const ok = outcome === 'converged' || outcome === 'unchanged';
      if (ok) {
        const rec: AppliedRecord = { configFile: this.good?.file ?? p.file, appliedAt: now(), claims: p.claims, resources: p.desired.resources, outcome };
        this.state.set(APPLIED_KEY, rec);
        this.syncPlacement(p);
        this.healthTick();
      }
      this.lastObserved = ctx.after ?? ctx.before;
      this.lastPlan = ctx.plan;
      const drift = (ctx.plan?.changes ?? []).filter((c) => c.action !== 'noop' && c.cause === 'drift').map((c) => c.id);
      if (drift.length) this.emit({ type: 'drift', at: now(), ids: drift, repaired: outcome === 'converged' });
      const durationMs = Date.now() - t0;
      const doc = toPlanDocument(ctx.plan ?? { changes: [], foreign: [], warnings: [] }, p.file);
      const error = ctx.error ?? (ok ? undefined : new AwgError('driver', `reconcile ended ${outcome}`));
      this.lastRun = { at: now(), outcome, durationMs, reason, ...(error ? { error: errOf(error) } : {}) };
      this.emit({ type: 'reconcile-finished', at: now(), reason, outcome, durationMs, summary: doc.summary, ...(error ? { error: errOf(error) } : {}) });
      if (error) this.emit({ type: 'error', at: now(), kind: error.kind, message: error.message });
      return { outcome, plan: ctx.plan, error };
    } catch (e) {
      const err = toAwgError(e);
      const durationMs = Date.now() - t0;
      this.lastRun = { at: now(), outcome: 'failed', durationMs, reason, error: errOf(err) };
      this.emit({ type: 'reconcile-finished', at: now(), reason, outcome: 'failed', durationMs, summary: { create: 0, update: 0, replace: 0, delete: 0, drift: 0, config: 0 }, error: errOf(err) });
      this.emit({ type: 'error', at: now(), kind: err.kind, message: err.message });
      return { outcome: 'failed', error: err };
    } finally {
      this.running = false;
      this.echoUntil = Date.now() + ECHO_MS;
    }
  }

  /** Confirm timeout: back to the desired state before the apply (or down when there was none). */
  private async revert(previous: Source | undefined): Promise<void> {
    if (!this.confirm_) return;
    this.confirm_ = undefined;
    try {
      await this.revertNow(previous);
    } catch (e) {
      const err = toAwgError(e);
      this.emit({ type: 'error', at: now(), kind: err.kind, message: `revert after the confirm timeout failed: ${err.message}` });
      this.wake('confirm-timeout');
      return;
    }
    this.emit({ type: 'reverted', at: now(), reason: 'confirm timeout expired without confirm()' });
  }

  private async revertNow(previous: Source | undefined): Promise<void> {
    await this.exclusive(async () => {
      if (previous) {
        this.setSource(previous.file, previous.prepared);
        await this.reconcileNow('confirm-timeout', previous.prepared);
      } else {
        const claims = this.good?.prepared.claims ?? DEFAULT_CLAIMS;
        this.configPath = undefined;
        this.good = undefined;
        this.wakes?.setConfigPath(undefined);
        await this.removeAll(claims, false);
        this.state.delete(APPLIED_KEY);
      }
    });
  }

  /** Remove everything we own; with `keepKillSwitch` the firewall and what it references stay. */
  private async removeAll(claims: Prepared['claims'], keepKillSwitch: boolean): Promise<{ removed: string[]; keptFirewall: boolean }> {
    const env = this.envFor({ claims });
    const empty: DesiredState = { resources: [], warnings: [] };
    this.running = true;
    try {
      const observed = await observeWith(env, empty);
      let keep = new Set<string>();
      if (keepKillSwitch) {
        const fw = observed.resources.filter((r) => r.kind === 'firewall');
        keep = new Set(fw.flatMap((r) => [r.id, ...this.firewallDeps(r.id)]));
      }
      const p = makePlan(empty, observed);
      const changes = p.changes.filter((c) => !keep.has(c.id));
      const r = await executeChanges(changes, env.drivers, this.applyCtx(env));
      if (r.failed) throw r.failed.error;
      const left = verify({ resources: observed.resources.filter((x) => keep.has(x.id)), warnings: [] }, await observeWith(env, empty));
      if (!left.ok) throw new AwgError('verification', `down left objects behind: ${left.mismatches.map((m) => m.id).join(', ')}`);
      this.lastObserved = { resources: observed.resources.filter((x) => keep.has(x.id)), foreign: [] };
      return { removed: r.done.map((c) => c.id), keptFirewall: keep.size > 0 };
    } finally {
      this.running = false;
      this.echoUntil = Date.now() + ECHO_MS;
    }
  }

  private firewallDeps(id: string): string[] {
    return this.good?.prepared.desired.resources.find((r) => r.id === id)?.deps ?? [];
  }

  private async teardown(killSwitch: boolean): Promise<{ removed: string[]; keptFirewall: boolean }> {
    const claims = this.good?.prepared.claims ?? this.state.get<AppliedRecord>(APPLIED_KEY)?.claims ?? DEFAULT_CLAIMS;
    const r = await this.removeAll(claims, killSwitch);
    if (!killSwitch) this.state.delete(APPLIED_KEY);
    return r;
  }

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
        this.proxyHealth.set(c.tunnel, { state: c.state, ...(c.error ? { error: c.error } : {}) });
        if (c.state === 'auth-failed') this.emit({ type: 'error', at: now(), kind: 'permission', message: `tunnel ${c.tunnel}: the proxy refused our credentials${c.error ? `: ${c.error}` : ''} (fix tunnels.${c.tunnel}.auth; retrying will not help)` });
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
   * Re-evaluate tunnel health (timer, engine events): emit transitions, keep probing tunnels
   * that are not up, and wake the loop when the set of down tunnels changes (the firewall's
   * rule actions and the placer's failover follow it).
   */
  private healthTick(): void {
    const cfg = this.good?.prepared.config;
    if (!cfg || this.stopped) return;
    const stats = new Map(this.engines.stats().map((s) => [s.tunnel, s]));
    const next = new Map<string, HealthState>();
    const errors = new Map<string, string>();
    for (const [name, t] of Object.entries(cfg.tunnels)) {
      let st: HealthState;
      if (isWgLike(t)) {
        const s = stats.get(name);
        // not hosted (yet): the next run starts it; keep what we knew
        st = s ? wgHealth(s.up, s.peers.map((p) => ({ hasEndpoint: p.endpoint !== undefined, lastHandshakeMs: p.lastHandshakeMs, handshakePendingMs: p.handshakePendingMs })), t.downAfter * 1000) : (this.health.get(name) ?? 'connecting');
        if (s && st !== 'up') this.engines.probe(name);
        if (s && st === 'up') this.probeSilentPeers(name, s.peers);
      } else {
        st = this.proxyHealth.get(name)?.state ?? 'connecting';
      }
      next.set(name, st);
      const error = !isDown(st) ? undefined : isWgLike(t) ? `no handshake answered for ${t.downAfter}s` : this.proxyHealth.get(name)?.error;
      if (error) errors.set(name, error);
      const before = this.health.get(name);
      if (before !== st && !(before === undefined && st === 'connecting')) this.emit({ type: 'tunnel', at: now(), tunnel: name, state: st, ...(error ? { error } : {}) });
    }
    this.health = next;
    this.healthErrors = errors;
    const d = downSet(next);
    if (!sameSet(d, this.downTunnels)) {
      this.downTunnels = d;
      this.wake('engine');
    }
  }

  private probeSilentPeers(tunnel: string, peers: readonly { publicKey: string; endpoint?: string; rxBytes: number; txBytes: number }[]): void {
    const t = Date.now();
    for (const p of peers) {
      if (p.endpoint === undefined) continue;
      const key = `${tunnel}/${p.publicKey}`;
      const seen = this.peerSeen.get(key);
      if (!seen || seen.rx !== p.rxBytes) {
        this.peerSeen.set(key, { rx: p.rxBytes, tx: p.txBytes, rxAt: t, txSinceRx: false });
        continue;
      }
      if (seen.tx !== p.txBytes) {
        seen.tx = p.txBytes;
        seen.txSinceRx = true;
      }
      if (seen.txSinceRx && t - seen.rxAt >= SILENCE_PROBE_MS) {
        this.engines.probe(tunnel, { peer: p.publicKey });
        seen.rxAt = t;
        seen.txSinceRx = false;
      }
    }
  }

  /** Start the process watcher on the first converged run with rules; follow rule changes. */
  private syncPlacement(p: Prepared): void {
    if (this.opts.placement === false) return;
    const rules = p.config.rules.filter((r) => r.enabled);
    const key = JSON.stringify([p.claims.cgroupRoot, p.config.rules]);
    if (!this.placer) {
      // 'unsupported' (wrong namespace, no proc events) is final; other failures retry next run
      if (rules.length === 0 || (this.placement.state === 'unavailable' && this.placementFinal)) return;
      const mount = parseCgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
      try {
        if (!mount) throw new AwgError('unsupported', 'no cgroup v2 hierarchy is mounted');
        this.placer = spawnPlacerProcess({
          rules: p.config.rules,
          cgroupRoot: p.claims.cgroupRoot,
          mount,
          down: this.downTunnels,
          env: this.opts.env ?? process.env,
          ...(this.opts.placement ?? {}),
          onReady: (r) => {
            if (!r.fifo) this.emit({ type: 'error', at: now(), kind: 'permission', message: `process watcher: ${r.reason ?? 'not real-time'}` });
          },
          onError: (e, fatal) => {
            if (!fatal) return this.emit({ type: 'error', at: now(), kind: e.kind, message: `process watcher: ${e.message}` });
            this.placementUnavailable(e);
            const h = this.placer;
            this.placer = undefined;
            this.placerKey = '';
            void h?.close();
          },
        });
      } catch (e) {
        this.placementUnavailable(toAwgError(e, 'unsupported'));
        return;
      }
      this.placerKey = key;
      this.placement = { state: 'active', execs: 0, placed: 0, errors: 0 };
      return;
    }
    if (key !== this.placerKey) {
      // another cgroupRoot: the child first sends placed processes back from the old one
      this.placer.setRules(p.config.rules, p.claims.cgroupRoot);
      this.placerKey = key;
    }
    this.placer.setDown(this.downTunnels);
  }

  private placementUnavailable(err: AwgError): void {
    const again = this.placement.state === 'unavailable' && this.placement.reason === err.message;
    this.placementFinal = err.kind === 'unsupported';
    this.placement = { state: 'unavailable', reason: err.message, execs: 0, placed: 0, errors: 0 };
    if (again) return;
    this.emit({ type: 'error', at: now(), kind: err.kind, message: `process placement by rules is unavailable: ${err.message}; \`awg exec\` still works` });
  }

  /** `down`: processes leave the rule cgroups (the cgroups are removed next); the watcher stops */
  private async stopPlacing(): Promise<void> {
    if (!this.placer) return;
    const h = this.placer;
    this.placer = undefined;
    this.placerKey = '';
    this.placement = { state: 'off', execs: 0, placed: 0, errors: 0 };
    h.setRules([]);
    // close() returns once the child has applied everything sent (stdin EOF) and exited
    await h.close();
  }
}

/** Build and start the daemon core (the gRPC server wraps the returned object). */
export async function startDaemonCore(opts: DaemonOptions = {}): Promise<Daemon> {
  const d = new Daemon(opts);
  await d.start();
  return d;
}
