/**
 * What handing work to a parked worker thread costs (bench/RESULTS.md, Step 10, the sender
 * thread): an Atomics.notify to a worker waiting in Atomics.wait, which answers at once, until
 * the main thread sees the answer. `npx tsx bench/thread-handoff.ts [trips]`; prints p50/p90/p99.
 */
import { Worker } from 'node:worker_threads';

const trips = Number(process.argv[2] ?? 20_000);
const c = new Int32Array(new SharedArrayBuffer(8));
const w = new Worker(
  `const c = new Int32Array(require('node:worker_threads').workerData); let seen = 0;
   for (;;) { Atomics.wait(c, 0, seen); seen = Atomics.load(c, 0); if (seen < 0) break; Atomics.store(c, 1, seen); Atomics.notify(c, 1); }`,
  { eval: true, workerData: c.buffer },
);
await new Promise((r) => setTimeout(r, 200));
const t: number[] = [];
for (let i = 1; i <= trips; i++) {
  const s = process.hrtime.bigint();
  Atomics.store(c, 0, i);
  Atomics.notify(c, 0);
  while (Atomics.load(c, 1) !== i) Atomics.wait(c, 1, i - 1, 10);
  t.push(Number(process.hrtime.bigint() - s) / 1000);
  // let the worker park again between batches, as between the engine's bursts
  if (i % 100 === 0) await new Promise((r) => setImmediate(r));
}
Atomics.store(c, 0, -1);
Atomics.notify(c, 0);
await w.terminate();
t.sort((a, b) => a - b);
const q = (p: number) => t[Math.floor(t.length * p)]!.toFixed(1);
console.log(
  `handoff round trip over ${trips} trips: p50 ${q(0.5)} µs, p90 ${q(0.9)} µs, p99 ${q(0.99)} µs`,
);
