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
 * - Memory: imports only the placer, the connector and the matcher (no CLI, zod or gRPC).
 */
import { toAwgError } from '../errors.js';
import { compileRules } from '../model/match.js';
import { ProcessPlacer, type PlacerOptions } from './placer.js';
import { ProcConnector, connectorFdFromEnv } from './connector.js';
import { LineDecoder, encode, parseToPlacer, zeroStats, type FromPlacer, type PlacerMount, type ToPlacer } from './placer-protocol.js';

export interface PlacerChildDeps {
  send: (m: FromPlacer) => void;
  openConnector: () => ProcConnector | Pick<ProcConnector, 'listen' | 'close' | 'stats'>;
  /** extra ProcessPlacer options (tests: writer, procfs) */
  placer?: Partial<PlacerOptions>;
  rssKb?: () => number;
  /** the child stopped by itself (fatal connector error) */
  onClose?: () => void;
}

type Connector = ReturnType<PlacerChildDeps['openConnector']>;

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
          this.placer?.setDown(new Set(m.down));
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
    if ('invalid' in m) this.deps.send({ type: 'error', kind: 'bug', message: `placer protocol: ${m.invalid}` });
    else this.handle(m);
  }

  private configure(m: Extract<ToPlacer, { type: 'config' }>): void {
    const matcher = compileRules(m.rules);
    const key = JSON.stringify([m.cgroupRoot, m.mount, m.ownPid]);
    if (this.placer && key !== this.key) {
      this.placer.setRules(compileRules([]));
      this.placer.close();
      this.retire(this.placer);
      this.placer = undefined;
    }
    if (this.placer) {
      this.placer.setDown(new Set(m.down));
      this.placer.setRules(matcher);
      return;
    }
    this.placer = this.newPlacer(matcher, m.cgroupRoot, m.mount, m.down, m.ownPid);
    this.key = key;
    this.placer.rescan();
  }

  private newPlacer(matcher: ReturnType<typeof compileRules>, cgroupRoot: string, mount: PlacerMount, down: string[], ownPid?: number): ProcessPlacer {
    const p = new ProcessPlacer({ matcher, cgroupRoot, mount, down: new Set(down), selfPid: ownPid ?? process.ppid, ...this.deps.placer });
    if (this.conn && !this.listening) {
      this.listening = true;
      this.conn.listen((evs) => {
        this.receivedAt = process.hrtime.bigint();
        this.placer?.handleEvents(evs);
      }, {
        onOverrun: () => this.placer?.rescan(),
        onError: (e) => {
          this.deps.send({ type: 'error', kind: e.kind, message: `process watcher: ${e.message}`, fatal: true });
          this.close();
          this.deps.onClose?.();
        },
      });
    }
    return p;
  }

  private listening = false;
  /** CLOCK_MONOTONIC ns when the batch being handled arrived (traces) */
  receivedAt = 0n;

  /** stats (cumulative over placers) when changed, or always with `id` */
  sendStats(id?: number): void {
    const st = { ...(this.placer?.stats ?? zeroStats()) };
    for (const [k, v] of Object.entries(this.retired)) st[k as keyof typeof st] += v;
    const c = this.conn?.stats;
    const body = { ...st, connector: { received: c?.received ?? 0, overruns: c?.overruns ?? 0 } };
    const sig = JSON.stringify(body);
    if (id === undefined && sig === this.lastSent) return;
    this.lastSent = sig;
    this.deps.send({ type: 'stats', ...(id !== undefined ? { id } : {}), ...body, rssKb: this.deps.rssKb?.() ?? 0 });
  }

  private retired = zeroStats();

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.placer?.close();
    this.conn?.close();
  }

  // keep retired counters when a placer is replaced (another cgroupRoot)
  private retire(p: ProcessPlacer): void {
    for (const [k, v] of Object.entries(p.stats)) this.retired[k as keyof typeof this.retired] += v;
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
  setParentDeathSignal(9);
  const parent = Number(env.AWG_PLACER_PARENT);
  if (Number.isInteger(parent) && parent > 0 && process.ppid !== parent) return 0;
  for (const s of ['SIGINT', 'SIGHUP'] as const) process.on(s, () => {});

  const prio = /^\d+$/.test(env.AWG_PLACER_PRIORITY ?? '') ? Number(env.AWG_PLACER_PRIORITY) : 10;
  const r = prio > 0 ? setFifo(prio) : -1;
  const fifo = r === 0;
  const reason = fifo ? undefined : prio > 0 ? `sched_setscheduler(SCHED_FIFO, ${prio}) refused: ${errnoText(r)}; running at normal priority` : 'AWG_PLACER_PRIORITY=0: normal priority';

  const child: PlacerChild = new PlacerChild({
    send: out,
    openConnector: () => {
      const fd = connectorFdFromEnv(env);
      return fd !== undefined ? ProcConnector.open({ fd }) : ProcConnector.open();
    },
    rssKb: () => Math.round(process.memoryUsage.rss() / 1024),
    ...(env.AWG_PLACER_TRACE === '1'
      ? { placer: { onPlaced: (p) => p.execTs !== undefined && out({ type: 'placed', pid: p.pid, execNs: String(p.execTs), recvNs: String(child.receivedAt), placedNs: String(p.placedTs) }) } satisfies Partial<PlacerOptions> }
      : {}),
    onClose: () => finish?.(1),
  });
  let finish: ((code: number) => void) | undefined;
  try {
    child.start();
  } catch (e) {
    const err = toAwgError(e, 'unsupported');
    out({ type: 'error', kind: err.kind, message: err.message, fatal: true });
    return 3;
  }
  out({ type: 'ready', pid: process.pid, fifo, ...(fifo ? { priority: prio } : {}), ...(reason ? { reason } : {}) });

  const timer = setInterval(() => child.sendStats(), o.statsIntervalMs ?? 1000);
  timer.unref();
  return await new Promise<number>((resolve) => {
    const dec = new LineDecoder(
      (l) => child.handleLine(l),
      (n) => out({ type: 'error', kind: 'bug', message: `placer protocol: line of ${n} characters dropped` }),
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

