/**
 * A crypto pool queue (pool.ts): one engine direction's transport messages to seal or open,
 * laid out in shared memory as pool-jobs.ts describes, for the pool's threads and the engine's
 * own to run together. Sources outside a registered region are copied into the queue's
 * staging area; keys are copied in for the run and zeroed after it.
 */
import {
  HEADER_INTS,
  JOB_INTS,
  J_CTR_HI,
  J_CTR_LO,
  J_DST_OFF,
  J_DST_REGION,
  J_KEY,
  J_OP,
  J_PAD,
  J_RESULT,
  J_SRC_LEN,
  J_SRC_OFF,
  J_SRC_REGION,
  KEYS_AT,
  KEYS_MAX,
  MAX_JOBS,
  OP_OPEN,
  OP_SEAL,
  QUEUE_BYTES,
  STAGING,
  STAGING_AT,
} from './pool-jobs.js';

/** What a queue needs of its pool (CryptoPool, pool.ts). */
export interface QueuePool {
  /** region id of a buffer jobs may name, registering it; -1 when it cannot be one */
  regionOf(buffer: ArrayBufferLike): number;
  /** a queue's memory exists: the threads are told of it */
  attach(q: PoolQueue): void;
  /** runs queue `q` (its jobs are in place) and returns when all are done */
  execute(q: PoolQueue): void;
  /** a closed queue: the threads drop their views of it */
  release(q: PoolQueue, stagingRegion: number): void;
  readonly stats: { staged: number };
}

const EMPTY_INTS: Int32Array = new Int32Array(0);
const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/**
 * One engine direction's jobs: `seal`/`open` queue a job (copying the source into the staging
 * area when it is not in a region) and return its index, or −1 when the queue is full (run it
 * and queue again); `run()` does them all; `result(i)` is then the job's byte count (−1: it
 * failed: drop the packet). Keys are copied into the queue for the run and zeroed after it.
 */
export class PoolQueue {
  /**
   * @internal the queue's shared memory, allocated by the first job: an idle engine (the
   * daemon's idle tunnels) holds none
   */
  sab: SharedArrayBuffer | null = null;
  /** @internal */ ints: Int32Array = EMPTY_INTS;
  /** @internal */ keys: Uint8Array = EMPTY_BYTES;
  /** @internal */ readonly nonce = new Uint8Array(12);
  /** @internal region views of the jobs queued (the engine's thread runs its share through them) */
  readonly viewsOfRun = new Map<number, Uint8Array>();
  private staging: Uint8Array = EMPTY_BYTES;
  private stagingRegion = -1;
  private count = 0;
  /** plaintext (and padding) bytes of the queued jobs: the probe's measure of a run's size */
  bytes = 0;
  private stagingOff = 0;
  private readonly keyOf = new Map<Uint8Array, number>();

  constructor(
    private readonly pool: QueuePool,
    readonly id: number,
  ) {}

  private allocate(): void {
    const sab = new SharedArrayBuffer(QUEUE_BYTES);
    this.sab = sab;
    this.ints = new Int32Array(sab, 0, KEYS_AT / 4);
    this.keys = new Uint8Array(sab, KEYS_AT, KEYS_MAX * 32);
    this.staging = new Uint8Array(sab, STAGING_AT, STAGING);
    this.stagingRegion = this.pool.regionOf(sab);
    this.pool.attach(this);
  }

  get length(): number {
    return this.count;
  }

  /** Queues sealing `src ‖ zeros(pad)` into dst at dstOff (ciphertext ‖ tag). */
  seal(
    key: Uint8Array,
    counter: number,
    src: Uint8Array,
    pad: number,
    dst: Uint8Array,
    dstOff: number,
  ): number {
    return this.add(OP_SEAL, key, counter, src, pad, dst, dstOff);
  }

  /** Queues opening `sealed` (ciphertext ‖ tag) into dst at dstOff (room: sealed.length − 16). */
  open(
    key: Uint8Array,
    counter: number,
    sealed: Uint8Array,
    dst: Uint8Array,
    dstOff: number,
  ): number {
    return this.add(OP_OPEN, key, counter, sealed, 0, dst, dstOff);
  }

  private add(
    op: number,
    key: Uint8Array,
    counter: number,
    src: Uint8Array,
    pad: number,
    dst: Uint8Array,
    dstOff: number,
  ): number {
    if (this.count >= MAX_JOBS) return -1;
    if (!this.sab) this.allocate();
    const dstRegion = this.pool.regionOf(dst.buffer);
    if (dstRegion < 0) return -1;
    let ki = this.keyOf.get(key);
    if (ki === undefined) {
      if (this.keyOf.size >= KEYS_MAX) return -1;
      ki = this.keyOf.size;
      this.keys.set(key, ki * 32);
      this.keyOf.set(key, ki);
    }
    let srcRegion = this.pool.regionOf(src.buffer);
    let srcOff = src.byteOffset;
    if (srcRegion < 0) {
      if (this.stagingOff + src.length > STAGING) return -1;
      this.staging.set(src, this.stagingOff);
      srcRegion = this.stagingRegion;
      srcOff = STAGING_AT + this.stagingOff;
      this.stagingOff += (src.length + 7) & ~7;
      this.pool.stats.staged++;
    }
    const views = this.viewsOfRun;
    if (!views.has(srcRegion))
      views.set(
        srcRegion,
        srcRegion === this.stagingRegion ? new Uint8Array(this.sab!) : new Uint8Array(src.buffer),
      );
    if (!views.has(dstRegion)) views.set(dstRegion, new Uint8Array(dst.buffer));
    const i = this.count++;
    this.bytes += src.length + pad;
    const o = HEADER_INTS + i * JOB_INTS;
    const q = this.ints;
    q[o + J_OP] = op;
    q[o + J_KEY] = ki;
    q[o + J_CTR_LO] = counter >>> 0;
    q[o + J_CTR_HI] = Math.floor(counter / 0x1_0000_0000) >>> 0;
    q[o + J_SRC_REGION] = srcRegion;
    q[o + J_SRC_OFF] = srcOff;
    q[o + J_SRC_LEN] = src.length;
    q[o + J_PAD] = pad;
    q[o + J_DST_REGION] = dstRegion;
    q[o + J_DST_OFF] = dst.byteOffset + dstOff;
    q[o + J_RESULT] = -1;
    return i;
  }

  /** Runs every queued job (the pool's threads and this one); results until the next `reset`. */
  run(): void {
    if (this.count === 0) return;
    try {
      this.pool.execute(this);
    } finally {
      this.keys.fill(0, 0, this.keyOf.size * 32);
      this.keyOf.clear();
      this.viewsOfRun.clear();
    }
  }

  /** bytes the job wrote (sealed: ciphertext ‖ tag; opened: plaintext), or −1 */
  result(i: number): number {
    return this.ints[HEADER_INTS + i * JOB_INTS + J_RESULT]!;
  }

  /** @internal */
  setResult(i: number, r: number): void {
    this.ints[HEADER_INTS + i * JOB_INTS + J_RESULT] = r;
  }

  /** Forgets the run's jobs (after reading their results). */
  reset(): void {
    this.count = 0;
    this.bytes = 0;
    this.stagingOff = 0;
  }

  /** The engine is closing: the pool's threads let go of this queue's memory. */
  close(): void {
    this.reset();
    this.pool.release(this, this.stagingRegion);
    this.sab = null;
  }
}
