/**
 * Step 10 Deliver 1 in isolation: the transport AEAD of bursts as the engine makes them (64
 * messages of 1420 bytes, one key; and receive-sized runs of 180), sealed and opened
 *   - inline: the engine without the pool (AWG_CRYPTO_THREADS=0): libcrypto's EVP through
 *     crypto/aead.ts, one message after the other;
 *   - pool, 0 threads: the same runs through the pool's queue on the engine's thread alone
 *     (the cost of queueing);
 *   - pool, N threads: the pool's threads beside the engine's (fork–join per run).
 * Gbit/s of plaintext on the calling thread's wall clock; medians of alternating rounds, each
 * in this process. Nothing else runs: what the machine's cores can give the AEAD, not what
 * the engine gets on a loaded path (that is bench/dataplane.bench.ts). First, what the cores
 * are: one busy process alone against one per core at once (a VM's vCPUs can be time slices
 * of fewer CPUs; then no thread can gain).
 *
 * Run: `npx tsx bench/crypto-pool.bench.ts [--smoke]` or `npx tsx bench/run.ts --only=crypto-pool`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { machine, median, printSamples, type Sample } from './lib.js';

const SIZE = 1420;

/** the AEAD itself, in a process of its own (node:crypto: no koffi, no pool) */
const SPIN =
  "const c = require('node:crypto'); const k = Buffer.alloc(32, 1), n = Buffer.alloc(12), p = Buffer.alloc(1420); const t0 = process.hrtime.bigint(); for (let i = 0; i < 40000; i++) { const x = c.createCipheriv('chacha20-poly1305', k, n, { authTagLength: 16 }); x.update(p); x.final(); } console.log(Number(process.hrtime.bigint() - t0) / 1e6);";

/** ms the sealing loop takes in a process of its own, alone */
function sealAloneMs(): number {
  return Number.parseFloat(spawnSync(process.execPath, ['-e', SPIN], { encoding: 'utf8' }).stdout);
}

/**
 * What the cores give: one busy process alone against N at once (run concurrently through a
 * shell so they overlap). 1.0 = every core is a core; N = the cores share one CPU's time.
 */
async function coreShare(rounds: number): Promise<Sample> {
  const n = availableParallelism();
  const xs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const alone = sealAloneMs();
    const together = await new Promise<number[]>((resolve) => {
      const out: number[] = [];
      let left = n;
      for (let i = 0; i < n; i++) {
        const c = spawn(process.execPath, ['-e', SPIN]);
        let text = '';
        c.stdout.on('data', (d: Buffer) => (text += d.toString()));
        c.on('close', () => {
          out.push(Number.parseFloat(text));
          if (--left === 0) resolve(out);
        });
      }
    });
    xs.push(median(together) / alone);
  }
  return {
    name: `${n} processes sealing at once: each one's time / one alone`,
    unit: '×',
    runs: xs,
    median: median(xs),
    note: `1.0: ${n} cores that work at once; ${n}: they share one CPU's time`,
  };
}

export async function cryptoPoolBench(smoke: boolean): Promise<Sample[]> {
  const { CryptoPool } = await import('../src/dataplane/crypto/pool.js');
  const { sealInto, openInto, writeNonce } = await import('../src/dataplane/crypto/aead.js');
  const rounds = smoke ? 1 : 7;
  const msPerRound = smoke ? 50 : 600;
  const key = randomBytes(32);
  const src = Buffer.allocUnsafeSlow(1 << 20);
  randomBytes(SIZE * 256).copy(src);
  const dst = Buffer.allocUnsafeSlow(1 << 20);
  const sealedAll = Buffer.allocUnsafeSlow(1 << 20);
  const nonce = Buffer.alloc(12);
  // sealed messages to open (same key, counters 0..255)
  for (let i = 0; i < 256; i++)
    sealInto(
      key,
      writeNonce(nonce, i),
      src.subarray(i * SIZE, (i + 1) * SIZE),
      0,
      sealedAll,
      i * (SIZE + 16),
    );
  const maxThreads = Math.min(3, Math.max(1, availableParallelism() - 1));
  const pools = new Map<number, NonNullable<ReturnType<typeof CryptoPool.create>>>();
  for (let t = 0; t <= maxThreads; t++) {
    const p = CryptoPool.create({ threads: t, eager: t > 0 });
    if (!p) throw new Error('no libcrypto in this process: nothing to measure');
    pools.set(t, p);
  }
  for (const [t, p] of pools)
    for (let i = 0; i < 500 && p.running < t; i++) await new Promise((r) => setTimeout(r, 10));

  type Way = 'seal' | 'open';
  const burst = (way: Way) => (way === 'seal' ? 64 : 180);
  const inline = (way: Way) => {
    const n = burst(way);
    for (let i = 0; i < n; i++) {
      const k = i & 255;
      if (way === 'seal')
        sealInto(
          key,
          writeNonce(nonce, k),
          src.subarray(k * SIZE, (k + 1) * SIZE),
          0,
          dst,
          k * (SIZE + 16),
        );
      else if (
        openInto(
          key,
          writeNonce(nonce, k),
          sealedAll.subarray(k * (SIZE + 16), (k + 1) * (SIZE + 16)),
          dst,
          k * SIZE,
        ) < 0
      )
        throw new Error('open failed');
    }
  };
  const queues = new Map([...pools].map(([t, p]) => [t, p.queue()]));
  const pooled = (t: number, way: Way) => {
    const q = queues.get(t)!;
    const n = burst(way);
    for (let i = 0; i < n; i++) {
      const k = i & 255;
      if (way === 'seal')
        q.seal(key, k, src.subarray(k * SIZE, (k + 1) * SIZE), 0, dst, k * (SIZE + 16));
      else
        q.open(key, k, sealedAll.subarray(k * (SIZE + 16), (k + 1) * (SIZE + 16)), dst, k * SIZE);
    }
    q.run();
    for (let i = 0; i < n; i++) if (q.result(i) < 0) throw new Error(`${way} failed`);
    q.reset();
  };
  /** Gbit/s of plaintext over msPerRound of back-to-back runs */
  const gbps = (fn: () => void, way: Way): number => {
    for (let i = 0; i < 20; i++) fn();
    let bytes = 0;
    const t0 = process.hrtime.bigint();
    let ns = 0n;
    while (ns < BigInt(msPerRound) * 1_000_000n) {
      for (let i = 0; i < 10; i++) fn();
      bytes += 10 * burst(way) * SIZE;
      ns = process.hrtime.bigint() - t0;
    }
    return (bytes * 8) / Number(ns);
  };
  const variants: Array<{ name: string; fn: (w: Way) => void }> = [
    { name: 'inline (no pool)', fn: inline },
    ...[...pools.keys()].map((t) => ({
      name: `pool, ${t} thread${t === 1 ? '' : 's'}`,
      fn: (w: Way) => pooled(t, w),
    })),
  ];
  const runs = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++)
    for (const way of ['seal', 'open'] as const)
      for (const v of variants) {
        const k = `${way} ${burst(way)} × ${SIZE} B, ${v.name}`;
        runs.set(k, [...(runs.get(k) ?? []), gbps(() => v.fn(way), way)]);
      }
  const share = await coreShare(smoke ? 1 : 5);
  const stats = [...pools]
    .map(
      ([t, p]) =>
        `${t}: ${p.stats.parallelRuns}/${p.stats.runs} runs parallel, ${p.stats.threadJobs} of ${p.stats.jobs} jobs on threads`,
    )
    .join('; ');
  await Promise.all([...pools.values()].map((p) => p.stop()));
  return [
    share,
    ...[...runs].map(([name, xs]) => ({
      name,
      unit: 'Gbit/s',
      runs: xs,
      median: median(xs),
      note: name.includes('pool, 1') ? stats : undefined,
    })),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(`machine: ${machine()}`);
  printSamples('crypto-pool', await cryptoPoolBench(process.argv.includes('--smoke')));
}
