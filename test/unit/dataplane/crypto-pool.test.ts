import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CryptoPool,
  KEEP_RATIO,
  MIN_PARALLEL,
  PROBE_RUNS,
  poolThreadsFromEnv,
} from '../../../src/dataplane/crypto/pool.js';
import { openWithNonce, seal, writeNonce } from '../../../src/dataplane/crypto/aead.js';
import { makeBatchedPair, ipv4 } from './harness.js';
import { eventually } from '../../helpers/eventually.js';

const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');
const pools: CryptoPool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.stop()));
});

/**
 * Until the pool's threads have counted themselves in; at once, with its reason, when a thread
 * failed (the pool then never starts them). A bound on a hang, not a timing: past THREAD_START_MS
 * it says how far the start got (a thread online runs its JavaScript; counted in, it waits for
 * runs), where a wait would only end at the test's timeout without a word, as it did in CI.
 */
const THREAD_START_MS = 300_000;
const threadsUp = async (pool: CryptoPool, n: number) => {
  const until = Date.now() + THREAD_START_MS;
  while (pool.running !== n) {
    if (pool.failure) throw new Error(`the pool's threads did not start: ${pool.failure}`);
    if (Date.now() > until)
      throw new Error(
        `the pool's threads did not start within ${THREAD_START_MS / 1000} s: ${pool.threadsOnline} of ${n} online, ${pool.running} counted in`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
};

/**
 * The tests that start threads: a bound on a hang, not a timing. CI's unit runs (120 s a test)
 * go in an idle CPU cgroup beside the netns tests, where a thread's start through tsx took past
 * 120 s on Node 24 (local CI runs 10 and 11). Threads now start from a bundled entry, as the
 * product's do (src/util/source-worker.ts).
 */
const THREADS = { timeout: 600_000 };

/**
 * A pool with its threads up (they come online asynchronously). callerRuns false: the threads
 * run every job of a parallel run, so what they did is tested whatever the scheduler does.
 */
async function runningPool(threads: number, callerRuns = false): Promise<CryptoPool> {
  const pool = CryptoPool.create({ threads, eager: true, callerRuns });
  if (!pool) throw new Error('no libcrypto: the pool cannot exist');
  pools.push(pool);
  await threadsUp(pool, threads);
  return pool;
}

describe('AWG_CRYPTO_THREADS', () => {
  it('auto: one thread fewer than the cores, none on one or two cores, at most 7; 0 is off; a number is forced', () => {
    expect(poolThreadsFromEnv({}, 1)).toBeNull();
    expect(poolThreadsFromEnv({}, 2)).toBeNull(); // never kept there by the probe (pool.ts)
    expect(poolThreadsFromEnv({}, 3)).toBe(2);
    expect(poolThreadsFromEnv({ AWG_CRYPTO_THREADS: '1' }, 2)).toBe(1);
    expect(poolThreadsFromEnv({ AWG_CRYPTO_THREADS: 'auto' }, 4)).toBe(3);
    expect(poolThreadsFromEnv({}, 64)).toBe(7);
    expect(poolThreadsFromEnv({ AWG_CRYPTO_THREADS: '0' }, 8)).toBeNull();
    expect(poolThreadsFromEnv({ AWG_CRYPTO_THREADS: '2' }, 1)).toBe(2);
  });
});

describe('the crypto pool seals and opens as node:crypto does', THREADS, () => {
  it.each([0, 1, 2])(
    '%i thread(s): a run of many keys, slab and staged sources, tampered messages fail alone',
    async (threads) => {
      const pool = threads ? await runningPool(threads) : CryptoPool.create({ threads: 0 })!;
      const seals = pool.queue();
      const opens = pool.queue();
      const region = Buffer.allocUnsafeSlow(1 << 20); // a slab: shared by address
      const out = Buffer.allocUnsafeSlow(1 << 20);
      const keys = Array.from({ length: 5 }, () => randomBytes(32));
      const jobs: Array<{
        key: Buffer;
        counter: number;
        plain: Uint8Array;
        pad: number;
        at: number;
      }> = [];
      let srcAt = 0;
      let dstAt = 0;
      for (let i = 0; i < 200; i++) {
        const len = i % 7 === 0 ? 0 : 1 + ((i * 37) % 1420);
        let plain: Uint8Array;
        if (i % 5 === 0)
          plain = Uint8Array.from(randomBytes(len)); // outside any region: staged
        else {
          plain = region.subarray(srcAt, srcAt + len);
          plain.set(randomBytes(len));
          srcAt += len + 3;
        }
        const key = keys[Math.floor(i / 9) % keys.length]!;
        const counter = i === 3 ? 2 ** 40 + 5 : i * 1000;
        const pad = (16 - (len % 16)) % 16;
        const job = seals.seal(key, counter, plain, pad, out, dstAt);
        expect(job).toBe(i);
        jobs.push({ key, counter, plain, pad, at: dstAt });
        dstAt += len + pad + 16 + 5;
      }
      seals.run();
      const sealed: Uint8Array[] = [];
      jobs.forEach((j, i) => {
        const n = j.plain.length + j.pad + 16;
        expect(seals.result(i)).toBe(n);
        const padded = new Uint8Array(j.plain.length + j.pad);
        padded.set(j.plain);
        const want = seal(j.key, j.counter, padded);
        expect(hexOf(out.subarray(j.at, j.at + n))).toBe(hexOf(want));
        sealed.push(Uint8Array.from(out.subarray(j.at, j.at + n)));
      });
      seals.reset();
      // open them again (every third one tampered), from the region into another part of it
      const into = Buffer.allocUnsafeSlow(1 << 20);
      let at = 0;
      const where: number[] = [];
      sealed.forEach((s, i) => {
        if (i % 3 === 1) s[s.length - 1]! ^= 1;
        expect(opens.open(jobs[i]!.key, jobs[i]!.counter, s, into, at)).toBe(i);
        where.push(at);
        at += s.length;
      });
      opens.run();
      sealed.forEach((s, i) => {
        const j = jobs[i]!;
        if (i % 3 === 1) {
          expect(opens.result(i)).toBe(-1);
          expect(openWithNonce(j.key, writeNonce(Buffer.alloc(12), j.counter), s)).toBeNull();
        } else {
          expect(opens.result(i)).toBe(j.plain.length + j.pad);
          expect(hexOf(into.subarray(where[i]!, where[i]! + j.plain.length))).toBe(hexOf(j.plain));
        }
      });
      opens.reset();
      if (threads) {
        expect(pool.stats.parallelRuns).toBe(2);
        expect(pool.stats.threadJobs).toBe(400);
        expect(pool.stats.staged).toBe(240); // 40 seals and every open (their sources are copies)
      }
    },
  );

  it('runs smaller than MIN_PARALLEL stay on the calling thread; keys are zeroed after every run', async () => {
    const pool = await runningPool(1);
    const q = pool.queue();
    const dst = Buffer.allocUnsafeSlow(64 * 1024);
    const before = pool.stats.parallelRuns;
    for (let i = 0; i < MIN_PARALLEL - 1; i++)
      q.seal(Buffer.alloc(32, 7), i, Buffer.alloc(100, i), 0, dst, i * 200);
    q.run();
    expect(pool.stats.parallelRuns).toBe(before);
    for (let i = 0; i < MIN_PARALLEL - 1; i++) expect(q.result(i)).toBe(116);
    q.reset();
    const keyArea = new Uint8Array(q.sab!).subarray(
      4 * (8 + 1024 * 12),
      4 * (8 + 1024 * 12) + 64 * 32,
    );
    expect(keyArea.every((b) => b === 0)).toBe(true);
  });

  it('a queue has no shared memory until its first job (idle engines hold none); closing it is safe either way', async () => {
    const pool = await runningPool(1);
    const idle = pool.queue();
    expect(idle.sab).toBeNull();
    idle.run();
    idle.close();
    const used = pool.queue();
    used.seal(Buffer.alloc(32, 2), 0, Buffer.alloc(10), 0, Buffer.allocUnsafeSlow(8192), 0);
    expect(used.sab).not.toBeNull();
    used.run();
    expect(used.result(0)).toBe(26);
    used.close();
    expect(used.sab).toBeNull();
  });

  it('a run of one queue leaves the results of another in place (one engine’s send and receive)', async () => {
    const pool = await runningPool(1);
    const a = pool.queue();
    const b = pool.queue();
    const dst = Buffer.allocUnsafeSlow(256 * 1024);
    const key = randomBytes(32);
    for (let i = 0; i < 32; i++) a.seal(key, i, Buffer.alloc(1000, i), 0, dst, i * 1100);
    a.run();
    for (let i = 0; i < 32; i++)
      b.seal(key, 100 + i, Buffer.alloc(500, i), 0, dst, 64 * 1024 + i * 600);
    b.run();
    for (let i = 0; i < 32; i++) expect(a.result(i)).toBe(1016);
    for (let i = 0; i < 32; i++) expect(b.result(i)).toBe(516);
    expect(hexOf(dst.subarray(0, 1016))).toBe(hexOf(seal(key, 0, Buffer.alloc(1000, 0))));
  });
});

describe('auto: the threads stay only where they make runs faster', THREADS, () => {
  async function probed(parallelCost: number): Promise<CryptoPool> {
    const pool = CryptoPool.create({
      threads: 1,
      eager: true,
      adaptive: true,
      runCost: (parallel, bytes) => bytes * (parallel ? parallelCost : 1),
    })!;
    pools.push(pool);
    await threadsUp(pool, 1);
    const q = pool.queue();
    const dst = Buffer.allocUnsafeSlow(128 * 1024);
    const key = randomBytes(32);
    for (let r = 0; r < PROBE_RUNS; r++) {
      for (let i = 0; i < 16; i++) q.seal(key, r * 16 + i, Buffer.alloc(1000, i), 0, dst, i * 1100);
      q.run();
      for (let i = 0; i < 16; i++) expect(q.result(i)).toBe(1016); // probing changes nothing a run does
      q.reset();
    }
    return pool;
  }

  it('parallel runs no cheaper per byte (vCPUs sharing one CPU, busy cores): the threads stop and stay off under load', async () => {
    const pool = await probed(1.02);
    expect(pool.stats).toMatchObject({ probes: 1, declined: 1, parallelRuns: PROBE_RUNS / 2 });
    expect(pool.stats.lastProbeRatio).toBeCloseTo(1.02, 5);
    // until the threads have left (they end asynchronously); no deadline of its own either
    await eventually(() => expect(pool.running).toBe(0));
    // load goes on: no restart while the decline holds
    const q = pool.queue();
    const dst = Buffer.allocUnsafeSlow(128 * 1024);
    for (let r = 0; r < 200; r++) {
      for (let i = 0; i < 16; i++)
        q.seal(Buffer.alloc(32, 1), i, Buffer.alloc(100, i), 0, dst, i * 200);
      q.run();
      q.reset();
    }
    expect(pool.running).toBe(0);
    expect(pool.stats.parallelRuns).toBe(PROBE_RUNS / 2);
  });

  it(`parallel runs at most ${KEEP_RATIO}× the cost: the threads stay`, async () => {
    const pool = await probed(0.55);
    expect(pool.stats).toMatchObject({ probes: 1, declined: 0 });
    expect(pool.running).toBe(1);
  });
});

describe('two devices with the crypto pool', THREADS, () => {
  it('batches of 300 packets arrive whole and in order both ways, sealed and opened on the threads', async () => {
    const pool = await runningPool(2);
    // B receives as the native bind does: every datagram of a network flush in one batch
    const { a, b, deliver } = await makeBatchedPair({ device: { cryptoPool: pool } });
    const ping = ipv4('192.168.0.1', '192.168.0.2');
    a.tun.inject(ping);
    deliver();
    expect(b.tun.written.map(hexOf)).toEqual([hexOf(ping)]);
    const before = pool.stats.parallelRuns;
    // the TUN hands over views of one read slab, as TunFile does
    const slab = Buffer.allocUnsafeSlow(1 << 20);
    let off = 0;
    const big = Array.from({ length: 300 }, (_, i) => {
      const p = ipv4('192.168.0.1', '192.168.0.2', `${i}`.padEnd(1300, '.'));
      const v = slab.subarray(off, off + p.length);
      v.set(p);
      off += p.length + 8;
      return v;
    });
    const want = big.map(hexOf);
    a.tun.inject(...big);
    deliver();
    expect(b.tun.written.slice(1).map(hexOf)).toEqual(want);
    // and back: B's replies go out through its pool queue too
    const back = Array.from({ length: 300 }, (_, i) =>
      ipv4('192.168.0.2', '192.168.0.1', `r${i}`.padEnd(900, '-')),
    );
    b.tun.inject(...back);
    deliver();
    expect(a.tun.written.map(hexOf)).toEqual(back.map(hexOf));
    expect(pool.stats.parallelRuns - before).toBeGreaterThanOrEqual(10);
    expect(pool.stats.threadJobs).toBe(pool.stats.parallelJobs);
  });
});

describe('a thread that ends', THREADS, () => {
  it('the pool stops its threads for good and says why; runs go on, on the caller', async () => {
    const pool = await runningPool(1);
    expect(pool.failure).toBeUndefined();
    const { threads } = pool as unknown as {
      threads: { worker: { terminate(): Promise<number> } }[];
    };
    await threads[0]!.worker.terminate();
    await eventually(() => expect(pool.failure).toBeDefined());
    expect(pool.failure).toMatch(/^a thread exited \(\d+\)$/);
    expect(pool.running).toBe(0);
    const q = pool.queue();
    const dst = Buffer.allocUnsafeSlow(4096);
    for (let i = 0; i < 4; i++)
      q.seal(Buffer.alloc(32, 1), i, Buffer.alloc(100, i), 0, dst, i * 200);
    q.run();
    for (let i = 0; i < 4; i++) expect(q.result(i)).toBe(116);
  });
});
