/**
 * The crypto pool's shared job table and the loop that runs its jobs (pool.ts on the engine's
 * thread, pool-worker.ts on the others): plain data in one SharedArrayBuffer per queue, no
 * protocol state. A job seals or opens one transport message between two memory regions that
 * every thread sees (pool.ts registers the engine's slabs by address; koffi views them in the
 * workers), so packets are never copied between threads.
 *
 * Queue memory (one SharedArrayBuffer):
 *   Int32 header   [NEXT, REMAINING, COUNT, 0…]                      HEADER_INTS
 *   Int32 jobs     JOB_INTS per job, MAX_JOBS jobs
 *   keys           KEYS_MAX × 32 bytes: the keys of the current run, zeroed after it
 *   staging        STAGING bytes: sources copied in (not in a registered region)
 *
 * NEXT = generation ‖ index of the next job to take (GEN_SHIFT bits of index): a thread
 * takes jobs with a compare-and-swap that also checks the generation (the run's sequence
 * number), so a thread that wakes late can never take jobs of a later run by mistake.
 * REMAINING counts jobs not yet done; whoever takes it to 0 notifies the waiting engine.
 */
import type { EvpAeadContext } from '../../native/libcrypto-batch.js';

export const HEADER_INTS = 8;
export const H_NEXT = 0;
export const H_REMAINING = 1;
export const H_COUNT = 2;

export const JOB_INTS = 12;
export const J_OP = 0;
export const J_KEY = 1;
export const J_CTR_LO = 2;
export const J_CTR_HI = 3;
export const J_SRC_REGION = 4;
export const J_SRC_OFF = 5;
export const J_SRC_LEN = 6;
export const J_PAD = 7;
export const J_DST_REGION = 8;
export const J_DST_OFF = 9;
export const J_RESULT = 10;

export const OP_SEAL = 1;
export const OP_OPEN = 2;

/** jobs per run at most (a send burst is 64; a receive run is bounded by the 256 KiB slab) */
export const MAX_JOBS = 1024;
export const GEN_SHIFT = 11; // 2^11 = 2048 > MAX_JOBS
export const GEN_MASK = (1 << (32 - GEN_SHIFT)) - 1;
/** distinct keys per run at most (a run is one peer's burst, or one receive batch) */
export const KEYS_MAX = 64;
/** 64 MTU-sized packets (a send burst of packets that waited for a handshake) */
export const STAGING = 128 * 1024;

export const KEYS_AT = 4 * (HEADER_INTS + MAX_JOBS * JOB_INTS);
export const STAGING_AT = KEYS_AT + KEYS_MAX * 32;
export const QUEUE_BYTES = STAGING_AT + STAGING;

/** jobs a thread takes at a time: small enough to share a 64-job burst among a few threads */
export const CHUNK = 4;

/**
 * the pool's control words (one small SharedArrayBuffer per start): threads sleep on C_SEQ;
 * C_READY counts those waiting for runs (a run published before a thread counted itself is
 * not one it will take part in)
 */
export const CONTROL_INTS = 8;
/** bumped for every run published to the threads (they sleep on it) */
export const C_SEQ = 0;
/** the published run: its queue and its generation (what the threads take jobs by) */
export const C_QUEUE = 1;
export const C_GEN = 4;
export const C_STOP = 2;
export const C_READY = 3;

/**
 * A job's result when this thread does not know a region it names (a thread started or
 * told late): the engine's thread runs it again itself after the run.
 */
export const RESULT_RETRY = -2;

/** Memory a job names by region id: a view over the whole region, whichever thread runs it. */
export type RegionViews = (id: number) => Uint8Array | undefined;

const TAG = 16;

/**
 * Takes and runs jobs of `q`'s run number `gen` until none is left to take; returns how many
 * this thread ran. `ctx` is this thread's EVP context, `nonce` a 12-byte scratch.
 */
export function runJobs(
  q: Int32Array,
  keys: Uint8Array,
  gen: number,
  regions: RegionViews,
  ctx: EvpAeadContext,
  nonce: Uint8Array,
): number {
  let ran = 0;
  const want = gen & GEN_MASK;
  for (;;) {
    const v = Atomics.load(q, H_NEXT);
    if (v >>> GEN_SHIFT !== want) return ran;
    const at = v & ((1 << GEN_SHIFT) - 1);
    const count = q[H_COUNT]!;
    if (at >= count) return ran;
    const k = Math.min(CHUNK, count - at);
    if (Atomics.compareExchange(q, H_NEXT, v, v + k) !== v) continue;
    // the first job of a take re-keys the context; later ones only when their key differs
    let lastKey = -1;
    for (let j = at; j < at + k; j++) lastKey = runOne(q, j, keys, regions, ctx, nonce, lastKey);
    ran += k;
    if (Atomics.sub(q, H_REMAINING, k) === k) Atomics.notify(q, H_REMAINING);
  }
}

/**
 * Runs job `j` of `q` and writes its result; returns which key (index × 4 + op) the context of
 * that op now holds (−1: unknown, re-key next time); `lastKey` is what it held before.
 */
export function runOne(
  q: Int32Array,
  j: number,
  keys: Uint8Array,
  regions: RegionViews,
  ctx: EvpAeadContext,
  nonce: Uint8Array,
  lastKey = -1,
): number {
  const o = HEADER_INTS + j * JOB_INTS;
  let r = RESULT_RETRY;
  let held = lastKey;
  try {
    const src = regions(q[o + J_SRC_REGION]!);
    const dst = regions(q[o + J_DST_REGION]!);
    if (src && dst) {
      r = -1;
      const ki = q[o + J_KEY]!;
      const op = q[o + J_OP]!;
      // seal and open have a context each: what one holds says nothing of the other
      const tag = ki * 4 + op;
      const key = tag === held ? null : keys.subarray(ki * 32, ki * 32 + 32);
      const s = q[o + J_SRC_OFF]!;
      const n = q[o + J_SRC_LEN]!;
      const d = q[o + J_DST_OFF]!;
      // too short to open: fails (r = −1), the context untouched
      if (op === OP_SEAL || n >= TAG) {
        held = -1;
        writeNonce(nonce, q[o + J_CTR_LO]! >>> 0, q[o + J_CTR_HI]! >>> 0);
        if (op === OP_SEAL) r = ctx.seal(key, nonce, src.subarray(s, s + n), q[o + J_PAD]!, dst, d);
        else r = ctx.open(key, nonce, src.subarray(s, s + n), dst, d);
        held = tag;
      }
    }
  } catch {
    r = -1; // a job that cannot run fails alone (the engine drops that packet)
    held = -1;
  }
  q[o + J_RESULT] = r;
  return held;
}

function writeNonce(out: Uint8Array, lo: number, hi: number): void {
  out[0] = out[1] = out[2] = out[3] = 0;
  out[4] = lo & 0xff;
  out[5] = (lo >>> 8) & 0xff;
  out[6] = (lo >>> 16) & 0xff;
  out[7] = lo >>> 24;
  out[8] = hi & 0xff;
  out[9] = (hi >>> 8) & 0xff;
  out[10] = (hi >>> 16) & 0xff;
  out[11] = hi >>> 24;
}
