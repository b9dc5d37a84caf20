/**
 * `awg placer`: the process watcher in a process of its own (protocol: placer-protocol.ts).
 *
 * Why a process: placement races the exec'd program (bench/RESULTS.md Step 5): the watcher
 * must run the moment an EXEC event arrives, which needs SCHED_FIFO, and the daemon's main
 * thread, which also runs the engines' per-packet crypto, must not run at real-time
 * priority. This child does nothing but recv → readlink → write(cgroup.procs).
 *
 * Contract:
 * - The connector socket is inherited (AWG_PROC_CONNECTOR_FD, opened in the initial network
 *   namespace by the daemon or passed on from its own environment); without it the child
 *   opens one itself. The child subscribes (LISTEN) and owns the subscription.
 * - SCHED_FIFO (AWG_PLACER_PRIORITY, default 10) for its main thread; refused → normal
 *   priority, said in `ready` (`fifo: false, reason`).
 * - Never outlives the daemon: exits on stdin EOF, and PR_SET_PDEATHSIG(SIGKILL) covers a
 *   parent killed outright (AWG_PLACER_PARENT: exit at once when the parent is already gone).
 * - SIGINT/SIGHUP are ignored (a terminal's Ctrl-C reaches the whole process group; the
 *   daemon ends us by closing stdin after its teardown moved processes out).
 * - The exec gate (gate.ts): opened with the first `config` that has enabled rules, marked
 *   as the rules need (gate-marks.ts), re-marked when a config changes the marks (the new
 *   group is marked before the old one closes), reported as a `gate` message; unavailable
 *   (no CAP_SYS_ADMIN in the initial user namespace, no kernel support, AWG_EXEC_GATE=0) →
 *   `best-effort` with the reason, and the watcher alone places. This process must never
 *   start a program: it answers the execs (docs/platform-linux.md#fanotify).
 * - Memory: imports only the placer, the gate, the connector and the matcher (no CLI, zod or gRPC).
 */
import { readFileSync } from 'node:fs';
import type { Rule } from '../config/schema.js';
import { toAwgError } from '../errors.js';
import { compileRules } from '../model/match.js';
import { linuxIdentityLookup } from './identity.js';
import { ProcessPlacer, type PlacerOptions, type PlacerStats } from './placer.js';
import { ProcConnector, connectorFdFromEnv, type ProcEvent } from './connector.js';
import { ExecGate, type GateFiles, type GateGroup, type GateStats } from './gate.js';
import { parseMountinfo, planGateMarks } from './gate-marks.js';
import {
  LineDecoder,
  encode,
  parseToPlacer,
  zeroStats,
  type FromPlacer,
  type GateInfo,
  type PlacerMount,
  type ToPlacer,
} from './placer-protocol.js';
import {
  REPORT_EVERY_MS,
  placementErrorCounts,
  placementErrorReports,
  type PlacementErrorCounts,
  type PlacementErrorKind,
  type PlacerFailures,
} from './placement-errors.js';

/** add every counter of `from` into `into` (counters of a placer or gate that was replaced) */
function addCounts<T extends object>(into: T, from: T): void {
  const a = into as Record<string, number>;
  for (const [k, v] of Object.entries(from as Record<string, number>)) a[k] = (a[k] ?? 0) + v;
}

/** how the child reaches fanotify (fakes in unit tests) */
export interface GateAccess {
  /** a new group (throws AwgError when the kernel refuses) */
  open(): GateGroup & { markFilesystem(path: string): void };
  mountinfo(): string;
  /** call `cb` whenever `fd` is readable */
  watch(fd: number, cb: () => void): { close(): void };
}

export interface PlacerChildDeps {
  send: (m: FromPlacer) => void;
  openConnector: () => ProcConnector | Pick<ProcConnector, 'listen' | 'close' | 'stats'>;
  /** extra ProcessPlacer options (tests: writer, procfs) */
  placer?: Partial<PlacerOptions>;
  rssKb?: () => number;
  /** the child stopped by itself (fatal connector error) */
  onClose?: () => void;
  /** the exec gate; absent: `best-effort` because of `gateOff` */
  gate?: GateAccess;
  gateOff?: string;
  /** ExecGate deadline per pass (default 100 ms) */
  gateDeadlineMs?: number;
  /** reads of the files behind gate events (tests) */
  gateFiles?: GateFiles;
  /** wall clock in ms (tests; default Date.now): how often a placement error kind is reported */
  now?: () => number;
}

type Connector = ReturnType<PlacerChildDeps['openConnector']> & { drain?: ProcConnector['drain'] };

/** The message loop, without process-level concerns (unit-tested with fakes). */
export class PlacerChild {
  private placer: ProcessPlacer | undefined;
  private key = '';
  private conn: Connector | undefined;
  private lastSent = '';
  closed = false;

  constructor(private readonly deps: PlacerChildDeps) {}

  /** open and subscribe the connector; throws (AwgError) when the kernel refuses */
  start(): void {
    this.conn = this.deps.openConnector();
  }

  handle(m: ToPlacer): void {
    if (this.closed) return;
    try {
      switch (m.type) {
        case 'config':
          return this.configure(m);
        case 'down':
          this.placer?.setDown(new Set(m.down), new Set(m.held));
          return;
        case 'rescan':
          this.placer?.rescan();
          return;
        case 'stats':
          this.sendStats(m.id);
          return;
      }
    } catch (e) {
      const err = toAwgError(e, 'driver');
      this.deps.send({ type: 'error', kind: err.kind, message: `${m.type}: ${err.message}` });
    }
  }

  handleLine(line: string): void {
    const m = parseToPlacer(line);
    if ('invalid' in m)
      this.deps.send({ type: 'error', kind: 'bug', message: `placer protocol: ${m.invalid}` });
    else this.handle(m);
  }

  private configure(m: Extract<ToPlacer, { type: 'config' }>): void {
    const matcher = compileRules(m.rules, linuxIdentityLookup(m.identity));
    const key = JSON.stringify([m.cgroupRoot, m.mount, m.ownPid]);
    if (this.placer && key !== this.key) {
      this.placer.setRules(compileRules([]));
      this.placer.close();
      this.retire(this.placer);
      this.placer = undefined;
    }
    if (this.placer) {
      this.placer.setDown(new Set(m.down), new Set(m.held));
      this.syncGate(m.rules);
      this.placer.setRules(matcher);
      return;
    }
    this.placer = this.newPlacer(matcher, m.cgroupRoot, m.mount, m.down, m.ownPid, m.held);
    this.key = key;
    // the gate first: an exec between the scan and the gate would otherwise be the watcher's
    this.syncGate(m.rules);
    this.placer.rescan();
  }

  private gate: ExecGate | undefined;
  private gateWatch: { close(): void } | undefined;
  private gateKey: string | undefined;
  private gateSent = '';
  private readonly retiredGate: GateStats = {
    events: 0,
    execs: 0,
    placed: 0,
    late: 0,
    errors: 0,
    overflows: 0,
    denied: 0,
  };

  /** open, re-mark or close the exec gate for these rules; report its state when it changes */
  private syncGate(rules: readonly Rule[]): void {
    const access = this.deps.gate;
    if (!rules.some((r) => r.enabled !== false)) {
      this.gateKey = undefined;
      this.closeGate();
      return;
    }
    if (!access)
      return this.sendGate({
        state: 'best-effort',
        reason: this.deps.gateOff ?? 'the exec gate is not available here',
        marks: [],
      });
    let plan;
    try {
      plan = planGateMarks(rules, parseMountinfo(access.mountinfo()));
    } catch (e) {
      return this.sendGate({
        state: 'best-effort',
        reason: `exec gate: ${toAwgError(e, 'driver').message}`,
        marks: [],
      });
    }
    const key = plan.marks.map((x) => x.path).join('\0');
    if (key === this.gateKey && this.gate) return;
    if (plan.marks.length === 0) {
      this.gateKey = key;
      this.closeGate();
      return this.sendGate({
        state: 'best-effort',
        reason: 'no file system the rules need can be marked (all noexec or pseudo)',
        marks: [],
      });
    }
    let group: ReturnType<GateAccess['open']>;
    try {
      group = access.open();
    } catch (e) {
      this.gateKey = undefined;
      this.closeGate();
      return this.sendGate({
        state: 'best-effort',
        reason: `exec gate unavailable: ${toAwgError(e, 'unsupported').message}`,
        marks: [],
      });
    }
    const marked: string[] = [];
    const failed: string[] = [];
    for (const x of plan.marks) {
      try {
        group.markFilesystem(x.path);
        marked.push(x.path);
      } catch (e) {
        failed.push(toAwgError(e, 'driver').message);
      }
    }
    if (marked.length === 0) {
      group.close();
      this.gateKey = undefined;
      this.closeGate();
      return this.sendGate({
        state: 'best-effort',
        reason: `exec gate unavailable: ${failed.join('; ')}`,
        marks: [],
      });
    }
    const gate = new ExecGate({
      group,
      decide: (pid, file, named) => this.placer?.placeGated(pid, file, named) ?? 'miss',
      beforeEvents: () => this.pumpConnector(),
      ...(this.deps.gateFiles ? { files: this.deps.gateFiles } : {}),
      ...(this.deps.gateDeadlineMs !== undefined ? { deadlineMs: this.deps.gateDeadlineMs } : {}),
      onError: (message) => this.deps.send({ type: 'error', kind: 'driver', message }),
    });
    const watch = access.watch(group.fd, () => gate.pump());
    // the new group is marked before the old one closes: no exec slips between them
    this.closeGate();
    this.gate = gate;
    this.gateWatch = watch;
    this.gateKey = failed.length ? undefined : key;
    this.sendGate({
      state: failed.length ? 'best-effort' : 'gated',
      ...(failed.length ? { reason: `some file systems are not gated: ${failed.join('; ')}` } : {}),
      ...(plan.scope !== 'none' ? { scope: plan.scope } : {}),
      marks: marked,
    });
  }

  private closeGate(): void {
    const g = this.gate;
    this.gate = undefined;
    this.gateWatch?.close();
    this.gateWatch = undefined;
    if (g) {
      g.pump(); // answer what is queued before the group goes
      g.close();
      addCounts(this.retiredGate, g.stats);
    }
  }

  private sendGate(info: GateInfo): void {
    const sig = JSON.stringify(info);
    if (sig === this.gateSent) return;
    this.gateSent = sig;
    this.deps.send({ type: 'gate', ...info });
  }

  /** the connector's queued FORK/EXEC events, before the gate decides (the daemon's own children) */
  private pumpConnector(): void {
    const c = this.conn;
    if (!c?.drain) return;
    const evs: ProcEvent[] = [];
    let overrun = false;
    c.drain(evs, () => (overrun = true));
    if (evs.length) this.placer?.handleEvents(evs);
    if (overrun) this.placer?.rescan();
  }

  private newPlacer(
    matcher: ReturnType<typeof compileRules>,
    cgroupRoot: string,
    mount: PlacerMount,
    down: string[],
    ownPid?: number,
    held?: string[],
  ): ProcessPlacer {
    const p = new ProcessPlacer({
      matcher,
      cgroupRoot,
      mount,
      down: new Set(down),
      ...(held?.length ? { held: new Set(held) } : {}),
      selfPid: ownPid ?? process.ppid,
      ...this.deps.placer,
    });
    if (this.conn && !this.listening) {
      this.listening = true;
      this.conn.listen(
        (evs) => {
          this.receivedAt = process.hrtime.bigint();
          this.placer?.handleEvents(evs);
        },
        {
          onOverrun: () => this.placer?.rescan(),
          onError: (e) => {
            this.deps.send({
              type: 'error',
              kind: e.kind,
              message: `process watcher: ${e.message}`,
              fatal: true,
            });
            this.close();
            this.deps.onClose?.();
          },
        },
      );
    }
    return p;
  }

  private listening = false;
  /** CLOCK_MONOTONIC ns when the batch being handled arrived (traces) */
  receivedAt = 0n;

  /** stats (cumulative over placers) when changed, or always with `id` */
  sendStats(id?: number): void {
    const st = { ...(this.placer?.stats ?? zeroStats()) };
    addCounts(st, this.retired);
    const c = this.conn?.stats;
    const body = {
      ...st,
      connector: { received: c?.received ?? 0, overruns: c?.overruns ?? 0 },
      ...(this.gate || this.retiredGate.events ? { gate: this.gateStats() } : {}),
    };
    this.reportErrors(st, body.gate);
    const sig = JSON.stringify(body);
    if (id === undefined && sig === this.lastSent) return;
    this.lastSent = sig;
    this.deps.send({
      type: 'stats',
      ...(id !== undefined ? { id } : {}),
      ...body,
      rssKb: this.deps.rssKb?.() ?? 0,
    });
  }

  private retired = zeroStats();
  private reported: PlacementErrorCounts = placementErrorCounts(zeroStats());
  private readonly failures: PlacerFailures = {};

  private readonly reportedAt = new Map<PlacementErrorKind, number>();

  /**
   * one `error` per placement error kind that counted since its last report, at most once per
   * REPORT_EVERY_MS (placement-errors.ts); the counts in status are always current
   */
  private reportErrors(st: PlacerStats, gate: GateStats | undefined): void {
    Object.assign(this.failures, this.placer?.failures);
    const counts = placementErrorCounts(st, gate);
    const t = (this.deps.now ?? Date.now)();
    const due = (k: PlacementErrorKind) => {
      const at = this.reportedAt.get(k);
      return at === undefined || t - at >= REPORT_EVERY_MS;
    };
    for (const r of placementErrorReports(this.reported, counts, this.failures, due)) {
      this.deps.send({ type: 'error', kind: r.kind, message: r.message });
      this.reported[r.placement] = counts[r.placement];
      this.reportedAt.set(r.placement, t);
    }
  }

  private gateStats(): GateStats {
    const s = { ...this.retiredGate };
    if (this.gate) addCounts(s, this.gate.stats);
    return s;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeGate();
    this.placer?.close();
    this.conn?.close();
  }

  // keep retired counters when a placer is replaced (another cgroupRoot)
  private retire(p: ProcessPlacer): void {
    addCounts(this.retired, p.stats);
    Object.assign(this.failures, p.failures);
  }
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  statsIntervalMs?: number;
}

/** The process: scheduling, parent death, stdin/stdout. Resolves with the exit code. */
export async function runPlacerProcess(o: RunOptions = {}): Promise<number> {
  const env = o.env ?? process.env;
  const out = (m: FromPlacer) => process.stdout.write(encode(m));
  const { setFifo, setParentDeathSignal, errnoText } = await import('../native/sched.js');
  const { FanotifyGroup } = await import('../native/fanotify.js');
  const { Poller } = await import('../native/poll.js');
  type Poller = InstanceType<typeof Poller>;
  setParentDeathSignal(9);
  const parent = Number(env.AWG_PLACER_PARENT);
  if (Number.isInteger(parent) && parent > 0 && process.ppid !== parent) return 0;
  for (const s of ['SIGINT', 'SIGHUP'] as const) process.on(s, () => {});

  const prio = /^\d+$/.test(env.AWG_PLACER_PRIORITY ?? '') ? Number(env.AWG_PLACER_PRIORITY) : 10;
  const r = prio > 0 ? setFifo(prio) : -1;
  const fifo = r === 0;
  const reason = fifo
    ? undefined
    : prio > 0
      ? `sched_setscheduler(SCHED_FIFO, ${prio}) refused: ${errnoText(r)}; running at normal priority`
      : 'AWG_PLACER_PRIORITY=0: normal priority';

  const child: PlacerChild = new PlacerChild({
    send: out,
    openConnector: () => {
      const fd = connectorFdFromEnv(env);
      return fd !== undefined ? ProcConnector.open({ fd }) : ProcConnector.open();
    },
    rssKb: () => Math.round(process.memoryUsage.rss() / 1024),
    ...(env.AWG_PLACER_TRACE === '1'
      ? {
          placer: {
            onPlaced: (p) =>
              p.execTs !== undefined &&
              out({
                type: 'placed',
                pid: p.pid,
                execNs: String(p.execTs),
                recvNs: String(child.receivedAt),
                placedNs: String(p.placedTs),
              }),
          } satisfies Partial<PlacerOptions>,
        }
      : {}),
    onClose: () => finish?.(1),
    ...(env.AWG_EXEC_GATE === '0'
      ? { gateOff: 'the exec gate is switched off (AWG_EXEC_GATE=0)' }
      : {
          gate: {
            open: () => FanotifyGroup.open(),
            mountinfo: () => readFileSync('/proc/self/mountinfo', 'utf8'),
            watch: (fd: number, cb: () => void) => {
              const p: Poller = new Poller(fd, (status) => {
                cb();
                if (status < 0) p.restart();
              });
              return p;
            },
          },
        }),
  });
  let finish: ((code: number) => void) | undefined;
  try {
    child.start();
  } catch (e) {
    const err = toAwgError(e, 'unsupported');
    out({ type: 'error', kind: err.kind, message: err.message, fatal: true });
    return 3;
  }
  out({
    type: 'ready',
    pid: process.pid,
    fifo,
    ...(fifo ? { priority: prio } : {}),
    ...(reason ? { reason } : {}),
  });

  const timer = setInterval(() => child.sendStats(), o.statsIntervalMs ?? 1000);
  timer.unref();
  return await new Promise<number>((resolve) => {
    const dec = new LineDecoder(
      (l) => child.handleLine(l),
      (n) =>
        out({
          type: 'error',
          kind: 'bug',
          message: `placer protocol: line of ${n} characters dropped`,
        }),
    );
    finish = (code: number) => {
      clearInterval(timer);
      child.close();
      resolve(code);
    };
    process.stdin.on('data', (d: Buffer) => dec.push(d));
    process.stdin.on('end', () => {
      const rest = dec.rest();
      if (rest.trim()) child.handleLine(rest);
      child.sendStats(0);
      finish?.(0);
    });
    process.stdin.on('error', () => finish?.(0));
    process.on('SIGTERM', () => finish?.(0));
  });
}
