/**
 * What a worker thread leaves in the process after it exits, and what glibc's malloc_trim
 * gives back (src/dataplane/crypto/pool.ts halt(); bench/RESULTS.md Step 10): VmRSS before a
 * thread, with it busy (20,000 ChaCha20-Poly1305 seals of 1420 B through node:crypto), after
 * it exited, and after mallocTrim(). `npx tsx bench/worker-trim.ts [rounds]`, each round a
 * fresh process (run with the service units' Node flags).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { mallocTrim } from '../src/native/libc.js';
import { LONG_RUNNING_NODE_FLAGS } from '../src/util/node-flags.js';

const rss = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (process.argv[2] === '--child') {
  await sleep(300);
  mallocTrim(); // what start-up (and tsx's loader) freed is not the thread's
  await sleep(100);
  const start = rss();
  const w = new Worker(
    "const c = require('node:crypto'); const k = Buffer.alloc(32); let n = 0; for (let i = 0; i < 20000; i++) { const s = c.createCipheriv('chacha20-poly1305', k, Buffer.alloc(12), { authTagLength: 16 }); n += s.update(Buffer.alloc(1420)).length; s.final(); } require('node:worker_threads').parentPort.postMessage(n);",
    { eval: true },
  );
  await new Promise((r) => w.once('message', r));
  const busy = rss();
  await w.terminate();
  await sleep(1000);
  const exited = rss();
  mallocTrim();
  await sleep(100);
  console.log(JSON.stringify({ start, busy, exited, trimmed: rss() }));
} else {
  const rounds = Number(process.argv[2] ?? 5);
  const rows: { start: number; busy: number; exited: number; trimmed: number }[] = [];
  for (let i = 0; i < rounds; i++) {
    const out = execFileSync(
      process.execPath,
      [...LONG_RUNNING_NODE_FLAGS, '--import', 'tsx', fileURLToPath(import.meta.url), '--child'],
      { encoding: 'utf8' },
    );
    rows.push(JSON.parse(out.trim().split('\n').at(-1)!));
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const f = (k: keyof (typeof rows)[0]) => `${med(rows.map((r) => r[k])).toFixed(1)} MiB`;
  console.log(
    `worker-trim, ${rounds} processes (medians): before ${f('start')}, thread busy ${f('busy')}, thread exited ${f('exited')}, after malloc_trim ${f('trimmed')}`,
  );
  console.log(
    `added by the thread ${med(rows.map((r) => r.busy - r.start)).toFixed(1)} MiB, left after exit ${med(rows.map((r) => r.exited - r.start)).toFixed(1)}, after the trim ${med(rows.map((r) => r.trimmed - r.start)).toFixed(1)}`,
  );
}
