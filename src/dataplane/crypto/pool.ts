/**
 * The crypto pool: transport messages sealed and opened on every core (wireguard-go's
 * encryption/decryption workers). The engine's thread stays the only owner of protocol state;
 * it queues a run's jobs (a send burst, or the transport messages of one receive batch),
 * publishes the run, takes jobs itself beside the pool's threads (pool-jobs.ts: jobs are taken
 * a few at a time with a compare-and-swap), and waits until every job is done. Then it sends
 * or writes the packets in the order it queued them: per-peer order is the engine's own, as
 * with wireguard-go's per-peer sequential queues.
 *
 * Memory is shared, never copied: the engine's slabs (TUN read slab, send and receive slabs,
 * the native bind's receive block) are registered by address the first time a job names them
 * (regions of at least REGION_MIN bytes: off the V8 heap, so they never move) and viewed by
 * the threads through koffi; a source outside any region (a packet that waited for a
 * handshake, node:dgram's buffers) is copied into the queue's staging area.
 *
 * Threads: `AWG_CRYPTO_THREADS` = `auto` (default: one thread fewer than the cores the process
 * may use, at most MAX_THREADS; none on one or two cores), `0` (off: the engine seals and opens
 * inline, as before the pool existed), or a number (forced, also on one core: tests). Two
 * cores get none: there the probe below rejected the one thread every time (its parallel runs
 * cost more per byte than inline ones), and a thread that has run leaves memory behind when
 * it stops (more on Node 24 than on Node 20, even after malloc_trim), which put the engine over
 * its memory bar on the runtime the Debian package carries. Threads start only under load
 * (START_RATE jobs within a second: idle tunnels never pay their memory) and stop after
 * IDLE_STOP_MS without a run that used them. `auto` keeps them only where they pay: once up,
 * and every REPROBE_MS, PROBE_RUNS runs alternate between parallel and inline, and unless
 * parallel runs cost at most KEEP_RATIO of inline ones per byte the threads stop for
 * DECLINE_MS (the other cores are busy, as when a machine's own peer and iperf3 fill them; or a
 * VM's second vCPU is not always there). Measurements: bench/RESULTS.md, section "Step 10
 * (2026-11-24) — the crypto pool". A run smaller than MIN_PARALLEL jobs, or one published
 * before the threads are up, runs on the engine's thread alone. A pool thread that dies or
 * stops answering turns the pool off for the process (the engine goes on inline); a job that
 * fails (EVP error) reports −1 and its packet is dropped.
 *
 * One run at a time, synchronously, on the thread that owns the engine(s): queues must not be
 * shared between threads, and `run()` returns only when the run is complete.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { mallocTrim } from '../../native/libc.js';
import { type EvpAeadContext, evpAeadContext } from '../../native/libcrypto-batch.js';
import { addressOf } from '../../native/rawmem.js';
import { sourceWorker } from '../../util/source-worker.js';
import { PerSecond } from '../rate.js';
import {
  CONTROL_INTS,
  C_GEN,
  C_QUEUE,
  C_READY,
  C_SEQ,
  C_STOP,
  GEN_MASK,
  GEN_SHIFT,
  H_COUNT,
  H_NEXT,
  H_REMAINING,
  RESULT_RETRY,
  runJobs,
  runOne,
} from './pool-jobs.js';
import { PoolQueue, type QueuePool } from './pool-queue.js';
import type { PoolMessage } from './pool-worker.js';

export const MAX_THREADS = 7;
/** jobs within a second that start the threads (≈ 23 Mbit/s of full-size packets) */
export const START_RATE = 2000;
/**
 * a run this small is not worth waking a thread for (a wake-up costs about as much as sealing
 * a few messages)
 */
export const MIN_PARALLEL = 8;
const IDLE_STOP_MS = 30_000;
/** buffers this large are off the V8 heap (typed arrays ≤ 64 bytes can live on it and move) */
const REGION_MIN = 4096;
/** a run whose threads do not finish within this is a broken pool: turned off */
const RUN_TIMEOUT_MS = 2000;

export interface CryptoPoolOptions {
  /** worker threads (0: every run on the calling thread); default from AWG_CRYPTO_THREADS */
  threads?: number;
  /** start the threads at once instead of under load (tests, benchmarks) */
  eager?: boolean;
  /**
   * test hook: false leaves every job of a parallel run to the threads (the calling thread
   * only waits), so a test proves what the threads did whatever the scheduler does
   */
  callerRuns?: boolean;
  /**
   * keep the threads only while they make runs faster (AWG_CRYPTO_THREADS=auto): once up, and
   * every REPROBE_MS, PROBE_RUNS runs alternate between parallel and inline, and the threads
   * stop when parallel runs are not clearly faster per byte (a machine whose other cores are
   * busy, or a VM whose vCPUs are not always there); default false (a set number is a number)
   */
  adaptive?: boolean;
  /** test hook: the cost of a run instead of the clock (ns), to drive the probe */
  runCost?: (parallel: boolean, bytes: number) => number;
}

/** probe runs (half parallel, half inline) that decide whether the threads stay */
export const PROBE_RUNS = 48;
/** parallel runs must cost at most this share of inline ones per byte for the threads to stay */
export const KEEP_RATIO = 0.8;
const REPROBE_MS = 5 * 60_000;
/** after the threads were found not to pay, they are not started again for this long */
const DECLINE_MS = 10 * 60_000;

/** `AWG_CRYPTO_THREADS`: the thread count it asks for, or null for off. */
export function poolThreadsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  cores = availableParallelism(),
): number | null {
  const v = env.AWG_CRYPTO_THREADS ?? 'auto';
  if (v === '0' || v === 'off') return null;
  if (/^\d+$/.test(v)) return Math.min(Number(v), 64);
  return cores > 2 ? Math.min(cores - 1, MAX_THREADS) : null;
}

let shared: CryptoPool | null | undefined;
let poolLog: (level: 'info' | 'warn', message: string) => void = () => {};

/** Where the pools of this process say when their threads start, stop or fail (the engine's log). */
export function setCryptoPoolLog(fn: (level: 'info' | 'warn', message: string) => void): void {
  poolLog = fn;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The process's pool (engines in one process share its threads), or null when off
 * (AWG_CRYPTO_THREADS=0, `auto` on one or two cores, or no usable libcrypto: AWG_AEAD=node).
 */
export function sharedCryptoPool(): CryptoPool | null {
  if (shared !== undefined) return shared;
  const threads = poolThreadsFromEnv();
  const auto = !/^\d+$/.test(process.env.AWG_CRYPTO_THREADS ?? 'auto');
  shared =
    threads === null
      ? null
      : CryptoPool.create({ threads, eager: process.env.AWG_CRYPTO_EAGER === '1', adaptive: auto });
  return shared;
}

interface Region {
  id: number;
  buffer: WeakRef<ArrayBufferLike>;
  msg: PoolMessage;
}

interface Thread {
  worker: Worker;
  port: MessagePort;
}

export interface CryptoPoolStats {
  /** runs, and those the threads took part in (published to them) */
  runs: number;
  parallelRuns: number;
  jobs: number;
  /** jobs of the parallel runs, and those of them the pool's threads ran (the rest: the caller) */
  parallelJobs: number;
  threadJobs: number;
  /** threads running now */
  threads: number;
  /** adaptive pools: probes done, and the last one's parallel/inline cost per byte (0: none yet) */
  probes: number;
  lastProbeRatio: number;
  /** probes after which the threads were stopped (no gain) */
  declined: number;
  /** sources copied into a staging area (not in a registered region) */
  staged: number;
}

export class CryptoPool implements QueuePool {
  readonly stats: CryptoPoolStats = {
    runs: 0,
    parallelRuns: 0,
    jobs: 0,
    parallelJobs: 0,
    threadJobs: 0,
    threads: 0,
    staged: 0,
    probes: 0,
    lastProbeRatio: 0,
    declined: 0,
  };
  /** a new one each start: threads of a stopped generation can only ever see STOP */
  private control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_INTS));
  private readonly threads: Thread[] = [];
  private state: 'off' | 'starting' | 'on' | 'broken' = 'off';
  private failed: string | undefined;
  /** threads of this start whose JavaScript runs (their 'online'): a start's progress, for tests */
  private online = 0;
  private readonly regions = new Map<number, Region>();
  private readonly regionIds = new WeakMap<ArrayBufferLike, number>();
  private readonly forget = new FinalizationRegistry<number>((id) => this.forgetRegion(id));
  private readonly queues = new Map<number, WeakRef<PoolQueue>>();
  private nextId = 1;
  private seq = 0;
  private readonly rate = new PerSecond();
  private lastParallel = 0;
  private idleTimer: NodeJS.Timeout | null = null;

  /** the probe under way: cost per byte of parallel and of inline runs (ns) */
  private probe: { parallel: number[]; inline: number[] } | null = null;
  private probeAt = 0;
  private declinedUntil = 0;

  private constructor(
    readonly size: number,
    readonly ctx: EvpAeadContext,
    private readonly opts: CryptoPoolOptions,
  ) {}

  private get callerRuns(): boolean {
    return this.opts.callerRuns ?? true;
  }

  /** null when libcrypto is unusable (AWG_AEAD=node, or no OpenSSL 3 in the process) */
  static create(opts: CryptoPoolOptions = {}): CryptoPool | null {
    const ctx = evpAeadContext();
    if (!ctx) return null;
    const pool = new CryptoPool(Math.max(0, opts.threads ?? poolThreadsFromEnv() ?? 0), ctx, opts);
    if (opts.eager) pool.start();
    return pool;
  }

  /** A queue for one engine's direction (send or receive); its memory comes with its first job. */
  queue(): PoolQueue {
    return new PoolQueue(this, this.nextId++);
  }

  /** @internal a queue's memory exists: the threads are told of it */
  attach(q: PoolQueue): void {
    this.queues.set(q.id, new WeakRef(q));
    this.post({ kind: 'queue', id: q.id, sab: q.sab! });
  }

  /** Why the threads stopped for good (a thread's error or exit), once they have. */
  get failure(): string | undefined {
    return this.failed;
  }

  /** Threads of the last start whose JavaScript has begun to run (they count in after). */
  get threadsOnline(): number {
    return this.online;
  }

  /** Threads waiting for runs (0 until started under load, or when the pool has none). */
  get running(): number {
    return this.state === 'on' ? Atomics.load(this.control, C_READY) : 0;
  }

  /** Starts the threads now (also done under load). */
  start(): void {
    if (this.state !== 'off' || this.size === 0) return;
    this.state = 'starting';
    this.control = new Int32Array(new SharedArrayBuffer(4 * CONTROL_INTS));
    this.online = 0;
    for (let i = 0; i < this.size; i++) {
      try {
        this.spawn();
      } catch (e) {
        this.broken(`a thread could not start: ${(e as Error).message}`);
        return;
      }
    }
    // runs use the threads that have counted themselves in (C_READY) from now on
    this.state = 'on';
    if (this.opts.adaptive) this.probe = { parallel: [], inline: [] };
    poolLog('info', `crypto pool: ${this.size} thread${this.size === 1 ? '' : 's'} started`);
    this.stats.threads = this.size;
    this.idleTimer = setInterval(() => this.idleCheck(), IDLE_STOP_MS / 3);
    this.idleTimer.unref();
  }

  private spawn(): void {
    const { port1, port2 } = new MessageChannel();
    const workerData = { control: this.control, port: port2 };
    const opts = {
      workerData,
      transferList: [port2],
      stdout: false,
      stderr: false,
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 1 },
    };
    const w = import.meta.url.endsWith('.ts')
      ? sourceWorker(new URL('./pool-worker.ts', import.meta.url), opts) // the sources (tests)
      : new Worker(new URL('./pool-worker.js', import.meta.url), opts);
    w.unref();
    port1.unref();
    const t: Thread = { worker: w, port: port1 };
    this.threads.push(t);
    // every queue and live region so far; later ones are posted as they come
    for (const [id, ref] of this.queues) {
      const q = ref.deref();
      if (q?.sab) port1.postMessage({ kind: 'queue', id, sab: q.sab } satisfies PoolMessage);
      else this.queues.delete(id);
    }
    for (const r of this.regions.values()) port1.postMessage(r.msg);
    const control = this.control;
    w.once('online', () => {
      if (control === this.control) this.online++;
    });
    w.once('error', (e) => {
      if (control === this.control) this.broken(`a thread failed: ${e.message}`);
    });
    w.once('exit', (code) => {
      if (control === this.control && (this.state === 'starting' || this.state === 'on'))
        this.broken(`a thread exited (${code})`);
    });
  }

  private post(msg: PoolMessage): void {
    for (const t of this.threads) t.port.postMessage(msg);
  }

  /** Stops the threads (they start again under load). */
  async stop(): Promise<void> {
    if (this.state === 'off' || this.state === 'broken') return;
    this.state = 'off';
    poolLog(
      'info',
      `crypto pool: threads stopped (${this.stats.parallelRuns} parallel runs, ${this.stats.threadJobs} of ${this.stats.jobs} messages on the threads so far)`,
    );
    await this.halt();
  }

  private async halt(): Promise<void> {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    Atomics.store(this.control, C_STOP, 1);
    Atomics.add(this.control, C_SEQ, 1);
    Atomics.notify(this.control, C_SEQ);
    const ts = this.threads.splice(0);
    this.stats.threads = 0;
    await Promise.all(
      ts.map(async (t) => {
        t.port.close();
        t.worker.ref(); // the caller awaits its exit: keep the event loop alive until then
        // a thread stuck in a job is not waited for
        const timer = setTimeout(() => void t.worker.terminate(), 1000);
        timer.unref();
        await new Promise<void>((res) => {
          t.worker.once('exit', () => res());
          if (t.worker.threadId < 0) res();
        });
        clearTimeout(timer);
      }),
    );
    // an exited thread's V8 heap goes with it, but glibc keeps its arena's free pages: give
    // them back (several MiB per thread; bench/worker-trim.ts measures it)
    if (ts.length) mallocTrim();
  }

  private broken(reason: string): void {
    if (this.state === 'broken') return;
    this.state = 'broken';
    this.failed = reason;
    poolLog('warn', `crypto pool: ${reason}; sealing and opening on the engine thread from now on`);
    void this.halt();
  }

  private idleCheck(): void {
    if (this.state === 'on' && Date.now() - this.lastParallel > IDLE_STOP_MS) void this.stop();
  }

  /** @internal region id of a buffer jobs may name, registering it; -1 when it cannot be one */
  regionOf(buffer: ArrayBufferLike): number {
    const known = this.regionIds.get(buffer);
    if (known !== undefined) return known;
    if (buffer.byteLength < REGION_MIN) return -1;
    const id = this.nextId++;
    let msg: PoolMessage;
    if (typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer)
      msg = { kind: 'region-sab', id, sab: buffer };
    else {
      const address = addressOf(buffer);
      if (!address) return -1;
      msg = { kind: 'region', id, address: String(address), length: buffer.byteLength };
    }
    this.regions.set(id, { id, buffer: new WeakRef(buffer), msg });
    this.regionIds.set(buffer, id);
    this.forget.register(buffer, id);
    this.post(msg);
    return id;
  }

  private forgetRegion(id: number): void {
    if (!this.regions.delete(id)) return;
    this.post({ kind: 'forget', id });
  }

  /** @internal a closed queue: the threads drop their views of it */
  release(q: PoolQueue, stagingRegion: number): void {
    if (!this.queues.delete(q.id)) return; // never had memory, or released already
    this.post({ kind: 'forget-queue', id: q.id });
    this.forgetRegion(stagingRegion);
  }

  /** @internal runs queue `q` (its jobs are in place) and returns when all are done */
  execute(q: PoolQueue): void {
    const count = q.length;
    this.stats.runs++;
    this.stats.jobs += count;
    this.countRate(count);
    const gen = ++this.seq & GEN_MASK;
    const ints = q.ints;
    ints[H_COUNT] = count;
    Atomics.store(ints, H_REMAINING, count);
    Atomics.store(ints, H_NEXT, gen << GEN_SHIFT);
    let ready =
      this.state === 'on' && count >= MIN_PARALLEL ? Atomics.load(this.control, C_READY) : 0;
    const probe = ready > 0 ? this.probeFor() : null;
    // a probe alternates: every other run stays inline, to compare
    if (probe && probe.inline.length < probe.parallel.length) ready = 0;
    const parallel = ready > 0;
    const t0 = probe ? process.hrtime.bigint() : 0n;
    if (parallel) {
      this.stats.parallelRuns++;
      this.stats.parallelJobs += count;
      this.lastParallel = Date.now();
      Atomics.store(this.control, C_QUEUE, q.id);
      // the run's generation (every run has a new one, parallel or not): what threads take by
      Atomics.store(this.control, C_GEN, gen);
      Atomics.add(this.control, C_SEQ, 1);
      Atomics.notify(this.control, C_SEQ, ready);
    }
    const views = q.viewsOfRun;
    const regionView = (id: number) => views.get(id);
    const own =
      parallel && !this.callerRuns ? 0 : runJobs(ints, q.keys, gen, regionView, this.ctx, q.nonce);
    if (!parallel) {
      if (probe) this.sample(probe, false, q.bytes, t0);
      return;
    }
    this.stats.threadJobs += count - own;
    const deadline = Date.now() + RUN_TIMEOUT_MS;
    for (;;) {
      const left = Atomics.load(ints, H_REMAINING);
      if (left <= 0) break;
      if (Atomics.wait(ints, H_REMAINING, left, 50) === 'timed-out' && Date.now() > deadline) {
        // a thread took jobs and never finished them: the pool is off from now on (a late
        // write could land in a slab the engine reuses); those packets are dropped
        this.broken(`a thread took jobs and did not finish them within ${RUN_TIMEOUT_MS} ms`);
        for (let j = 0; j < count; j++) if (q.result(j) === RESULT_RETRY) q.setResult(j, -1);
        return;
      }
    }
    // jobs a thread could not run (it did not know a region yet): here, now
    for (let j = 0; j < count; j++)
      if (q.result(j) === RESULT_RETRY) runOne(ints, j, q.keys, regionView, this.ctx, q.nonce);
    if (probe) this.sample(probe, true, q.bytes, t0);
  }

  /** The probe to feed with this run, starting one when the last is REPROBE_MS old. */
  private probeFor(): { parallel: number[]; inline: number[] } | null {
    if (!this.opts.adaptive) return null;
    if (!this.probe && Date.now() - this.probeAt > REPROBE_MS)
      this.probe = { parallel: [], inline: [] };
    return this.probe;
  }

  private sample(
    probe: { parallel: number[]; inline: number[] },
    parallel: boolean,
    bytes: number,
    t0: bigint,
  ): void {
    const ns = this.opts.runCost
      ? this.opts.runCost(parallel, bytes)
      : Number(process.hrtime.bigint() - t0);
    (parallel ? probe.parallel : probe.inline).push(ns / Math.max(1, bytes));
    if (probe.parallel.length + probe.inline.length < PROBE_RUNS) return;
    this.probe = null;
    this.probeAt = Date.now();
    const ratio = median(probe.parallel) / median(probe.inline);
    this.stats.probes++;
    this.stats.lastProbeRatio = ratio;
    if (ratio <= KEEP_RATIO) {
      poolLog(
        'info',
        `crypto pool: parallel runs take ${ratio.toFixed(2)}× the time of inline ones per byte; the threads stay`,
      );
      return;
    }
    // the threads do not pay here (the other cores are busy, or not always there)
    this.stats.declined++;
    this.declinedUntil = Date.now() + DECLINE_MS;
    poolLog(
      'info',
      `crypto pool: parallel runs took ${ratio.toFixed(2)}× the time of inline ones per byte; the threads stop (tried again under load in ${DECLINE_MS / 60_000} min)`,
    );
    void this.stop();
  }

  private countRate(n: number): void {
    if (this.state !== 'off' || this.size === 0) return;
    const now = Date.now();
    if (now < this.declinedUntil) return;
    if (this.rate.add(n, now) >= START_RATE) {
      this.lastParallel = now;
      this.start();
    }
  }
}
