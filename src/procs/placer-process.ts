/**
 * Daemon side of `awg placer` (placer-child.ts): a handle shaped like the in-process
 * ProcessPlacer the daemon drives (setRules, setDown, rescan, stats, close).
 *
 * Contract:
 * - The connector socket: `connectorFd` (borrowed), else AWG_PROC_CONNECTOR_FD of `env`
 *   (borrowed), else one opened here in our network namespace (owned, closed by close()).
 *   It is passed to every child as fd 3; the child subscribes. Creating the socket never
 *   fails outside the initial namespace; the child's LISTEN does: a fatal `unsupported` error.
 * - The handle keeps the whole desired state (rules, cgroup root, mount, down set) and sends
 *   it as one `config` to each new child, so a restarted child converges by itself (its
 *   first `config` rescans /proc).
 * - A child that dies is restarted after 0.25 s, doubling up to 30 s; the delay resets once a
 *   child has run for a minute. A fatal error (the child says a restart would fail alike) or
 *   a child that dies before ever becoming ready 5 times in a row stops restarts: `failed`.
 * - `stats` are cumulative over children (counters of dead children are kept).
 * - close(): stdin EOF (the child applies what was sent, then exits), SIGKILL after
 *   `killAfterMs`; resolves when the child is gone. The child also dies with us
 *   (stdin EOF, PR_SET_PDEATHSIG).
 */
import { spawn as nodeSpawn } from 'node:child_process';
import { AWG_BIN } from '../util/package-root.js';
import { LONG_RUNNING_NODE_FLAGS } from '../util/node-flags.js';
import type { Readable, Writable } from 'node:stream';
import type { Rule } from '../config/schema.js';
import { AwgError } from '../errors.js';
import { close as closeFd } from '../native/libc.js';
import { connectorFdFromEnv, openConnectorSocket } from './connector.js';
import type { PlacerStats } from './placer.js';
import {
  LineDecoder,
  STAT_KEYS,
  encode,
  parseFromPlacer,
  zeroStats,
  type ConnectorCounts,
  type FromPlacer,
  type GateInfo,
  type PlacerMount,
  type ToPlacer,
} from './placer-protocol.js';
import type { GateStats } from './gate.js';

/** what the handle needs of a child process (a fake in unit tests) */
export interface PlacerChildProcess {
  readonly pid?: number;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable | null;
  kill(signal?: NodeJS.Signals | number): boolean;
  once(event: 'exit', cb: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  once(event: 'error', cb: (e: Error) => void): unknown;
}

export type SpawnPlacer = (
  command: string[],
  env: NodeJS.ProcessEnv,
  connectorFd: number,
) => PlacerChildProcess;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
  now(): number;
}

export interface PlacerProcessOptions {
  rules: readonly Rule[];
  cgroupRoot: string;
  mount: PlacerMount;
  down?: ReadonlySet<string>;
  /** rules held on their fallback (`sticky`, by name) */
  held?: ReadonlySet<string>;
  /** root of the process tree never moved (default: this process) */
  ownPid?: number;
  connectorFd?: number;
  env?: NodeJS.ProcessEnv;
  /** default: this Node running bin/awg.js placer */
  command?: string[];
  /** SCHED_FIFO priority of the child (0: normal priority); default 10 */
  priority?: number;
  spawn?: SpawnPlacer;
  timers?: Timers;
  killAfterMs?: number;
  onReady?: (r: Extract<FromPlacer, { type: 'ready' }>) => void;
  /** `fatal`: placement has stopped for good (state `failed`) */
  onError?: (e: AwgError, fatal: boolean) => void;
  /** exec placements (CLOCK_MONOTONIC ns); needs AWG_PLACER_TRACE=1 in `env` (benchmarks) */
  onPlaced?: (p: { pid: number; execNs: bigint; recvNs?: bigint; placedNs: bigint }) => void;
  /** the exec gate's state changed (the child's `gate` message) */
  onGate?: (g: GateInfo) => void;
  /** child stderr and non-protocol stdout lines; default: our stderr */
  onLog?: (line: string) => void;
}

export type PlacerProcessState = 'starting' | 'ready' | 'restarting' | 'failed' | 'closed';

export interface PlacerHandle {
  readonly state: PlacerProcessState;
  /** cumulative over children; refreshed from the child's reports */
  readonly stats: PlacerStats;
  readonly connector: ConnectorCounts;
  /** the child's last `ready` (scheduling outcome), if any */
  readonly info: Extract<FromPlacer, { type: 'ready' }> | undefined;
  readonly restarts: number;
  /** the exec gate of the running child, once it has said (undefined while a child starts) */
  readonly gate: GateInfo | undefined;
  /** the running child's gate counters */
  readonly gateStats: GateStats | undefined;
  /** new rules (and cgroup root): the child re-places running processes */
  setRules(rules: readonly Rule[], cgroupRoot?: string): void;
  /** new health view: the tunnels not up, the rules held on their fallback (`sticky`) */
  setDown(down: ReadonlySet<string>, held?: ReadonlySet<string>): void;
  rescan(): void;
  /** resolves with fresh stats once the child has applied everything sent before */
  flush(): Promise<PlacerStats>;
  close(): Promise<void>;
}

const INITIAL_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
const STABLE_MS = 60_000;
const MAX_EARLY_DEATHS = 5;

/** `awg placer` with the long-running processes' Node flags (util/node-flags.ts) */
export function defaultPlacerCommand(): string[] {
  return [process.execPath, ...LONG_RUNNING_NODE_FLAGS, AWG_BIN, 'placer'];
}

const nodeTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
  now: () => Date.now(),
};

const defaultSpawn: SpawnPlacer = (command, env, fd) =>
  nodeSpawn(command[0]!, command.slice(1), {
    stdio: ['pipe', 'pipe', 'pipe', fd],
    env,
  }) as PlacerChildProcess;

export function spawnPlacerProcess(opts: PlacerProcessOptions): PlacerHandle {
  return new PlacerProcess(opts);
}

class PlacerProcess implements PlacerHandle {
  state: PlacerProcessState = 'starting';
  info: Extract<FromPlacer, { type: 'ready' }> | undefined;
  gate: GateInfo | undefined;
  gateStats: GateStats | undefined;
  restarts = 0;
  private rules: readonly Rule[];
  private cgroupRoot: string;
  private down: string[];
  private held: string[];
  private readonly fd: number;
  private readonly ownsFd: boolean;
  private readonly timers: Timers;
  private child: PlacerChildProcess | undefined;
  private childStats = zeroStats();
  private childConn: ConnectorCounts = { received: 0, overruns: 0 };
  private base = zeroStats();
  private baseConn: ConnectorCounts = { received: 0, overruns: 0 };
  private backoff = INITIAL_BACKOFF_MS;
  private earlyDeaths = 0;
  private startedAt = 0;
  private timer: unknown;
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (s: PlacerStats) => void; reject: (e: Error) => void }
  >();
  private exited: Promise<void> = Promise.resolve();
  private fatal: AwgError | undefined;

  constructor(private readonly opts: PlacerProcessOptions) {
    this.rules = opts.rules;
    this.cgroupRoot = opts.cgroupRoot;
    this.down = [...(opts.down ?? [])].sort();
    this.held = [...(opts.held ?? [])].sort();
    this.timers = opts.timers ?? nodeTimers;
    const inherited = opts.connectorFd ?? connectorFdFromEnv(opts.env ?? process.env);
    this.fd = inherited ?? openConnectorSocket();
    this.ownsFd = inherited === undefined;
    this.startChild();
  }

  get stats(): PlacerStats {
    const s = zeroStats();
    for (const k of STAT_KEYS) s[k] = this.base[k] + this.childStats[k];
    return s;
  }

  get connector(): ConnectorCounts {
    return {
      received: this.baseConn.received + this.childConn.received,
      overruns: this.baseConn.overruns + this.childConn.overruns,
    };
  }

  setRules(rules: readonly Rule[], cgroupRoot: string = this.cgroupRoot): void {
    this.rules = rules;
    this.cgroupRoot = cgroupRoot;
    this.send(this.configMessage());
  }

  setDown(down: ReadonlySet<string>, held: ReadonlySet<string> = new Set()): void {
    const next = [...down].sort();
    const nextHeld = [...held].sort();
    const same = (a: string[], b: string[]) =>
      a.length === b.length && a.every((t, i) => t === b[i]);
    if (same(next, this.down) && same(nextHeld, this.held)) return;
    this.down = next;
    this.held = nextHeld;
    this.send({ type: 'down', down: next, ...(nextHeld.length ? { held: nextHeld } : {}) });
  }

  rescan(): void {
    this.send({ type: 'rescan' });
  }

  flush(): Promise<PlacerStats> {
    if (!this.child)
      return Promise.reject(new AwgError('driver', `placer process is ${this.state}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.send({ type: 'stats', id });
    });
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return this.exited;
    this.state = 'closed';
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    const c = this.child;
    if (c) {
      c.stdin.end();
      const kill = this.timers.setTimeout(() => c.kill('SIGKILL'), this.opts.killAfterMs ?? 3000);
      await this.exited;
      this.timers.clearTimeout(kill);
    }
    if (this.ownsFd) closeFd(this.fd);
  }

  private configMessage(): ToPlacer {
    return {
      type: 'config',
      rules: [...this.rules],
      cgroupRoot: this.cgroupRoot,
      mount: { mountPoint: this.opts.mount.mountPoint, root: this.opts.mount.root },
      down: this.down,
      ...(this.held.length ? { held: this.held } : {}),
      ownPid: this.opts.ownPid ?? process.pid,
    };
  }

  private send(m: ToPlacer): void {
    // no child (restarting): the next one gets the whole state in its config
    if (!this.child || this.state === 'closed') return;
    this.child.stdin.write(encode(m));
  }

  private startChild(): void {
    const env: NodeJS.ProcessEnv = {
      ...(this.opts.env ?? process.env),
      AWG_PROC_CONNECTOR_FD: '3',
      AWG_PLACER_PARENT: String(process.pid),
      AWG_PLACER_PRIORITY: String(this.opts.priority ?? 10),
    };
    const c = (this.opts.spawn ?? defaultSpawn)(
      this.opts.command ?? defaultPlacerCommand(),
      env,
      this.fd,
    );
    this.child = c;
    this.childStats = zeroStats();
    this.childConn = { received: 0, overruns: 0 };
    this.startedAt = this.timers.now();
    let readyHere = false;
    const log = this.opts.onLog ?? ((l: string) => process.stderr.write(`awg placer: ${l}\n`));
    const out = new LineDecoder(
      (line) => {
        const m = parseFromPlacer(line);
        if (!m) return log(line);
        if (m.type === 'ready') readyHere = true;
        this.onMessage(m);
      },
      (n) => log(`(dropped an output line of ${n} characters)`),
    );
    c.stdout.on('data', (d: Buffer) => out.push(d));
    if (c.stderr) {
      const err = new LineDecoder(log);
      c.stderr.on('data', (d: Buffer) => err.push(d));
    }
    c.stdin.on('error', () => {}); // EPIPE when the child died: its exit is handled below
    this.exited = new Promise<void>((resolve) => {
      let done = false;
      const gone = (why: string) => {
        if (done) return;
        done = true;
        this.onExit(c, why, readyHere);
        resolve();
      };
      c.once('exit', (code, signal) =>
        gone(signal ? `killed by ${signal}` : `exited with code ${code}`),
      );
      c.once('error', (e) => gone(`could not start: ${e.message}`));
    });
    this.send(this.configMessage());
  }

  private onMessage(m: FromPlacer): void {
    switch (m.type) {
      case 'ready':
        this.info = m;
        if (this.state !== 'closed') this.state = 'ready';
        this.opts.onReady?.(m);
        return;
      case 'stats': {
        for (const k of STAT_KEYS) this.childStats[k] = m[k];
        this.childConn = m.connector;
        if (m.gate) this.gateStats = m.gate;
        if (m.id !== undefined) {
          const w = this.waiting.get(m.id);
          this.waiting.delete(m.id);
          w?.resolve(this.stats);
        }
        return;
      }
      case 'gate': {
        const { type: _t, ...info } = m;
        this.gate = info;
        this.opts.onGate?.(info);
        return;
      }
      case 'placed':
        this.opts.onPlaced?.({
          pid: m.pid,
          execNs: BigInt(m.execNs),
          ...(m.recvNs ? { recvNs: BigInt(m.recvNs) } : {}),
          placedNs: BigInt(m.placedNs),
        });
        return;
      case 'error': {
        const e = new AwgError(m.kind, `placer process: ${m.message}`);
        if (m.fatal) this.fatal = e;
        else this.opts.onError?.(e, false);
        return;
      }
    }
  }

  private onExit(c: PlacerChildProcess, why: string, wasReady: boolean): void {
    if (this.child !== c) return;
    this.child = undefined;
    this.gate = undefined;
    this.gateStats = undefined;
    for (const k of STAT_KEYS) this.base[k] += this.childStats[k];
    this.baseConn = this.connector;
    this.childStats = zeroStats();
    this.childConn = { received: 0, overruns: 0 };
    for (const w of this.waiting.values())
      w.reject(new AwgError('driver', `placer process ${why}`));
    this.waiting.clear();
    if (this.state === 'closed') return;
    if (this.fatal) return this.fail(this.fatal);
    this.earlyDeaths = wasReady ? 0 : this.earlyDeaths + 1;
    if (this.earlyDeaths >= MAX_EARLY_DEATHS)
      return this.fail(
        new AwgError(
          'driver',
          `placer process ${why} before it was ready, ${MAX_EARLY_DEATHS} times in a row`,
        ),
      );
    if (this.timers.now() - this.startedAt >= STABLE_MS) this.backoff = INITIAL_BACKOFF_MS;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
    this.state = 'restarting';
    this.opts.onError?.(
      new AwgError('driver', `placer process ${why}; restarting in ${delay} ms`),
      false,
    );
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      if (this.state !== 'restarting') return;
      this.restarts++;
      this.state = 'starting';
      this.startChild();
    }, delay);
  }

  private fail(e: AwgError): void {
    this.state = 'failed';
    this.opts.onError?.(e, true);
  }
}
