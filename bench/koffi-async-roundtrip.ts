/**
 * What the pool sender's handoff costs at least: a koffi async call (a thread of libuv's pool
 * runs it, the callback comes back on the loop) of a call that fails at once (`sendmmsg` on
 * fd -1), 2,000 in a row, one out at a time as the pool sender does (bench/RESULTS.md, "The
 * pool sender"). Linux; `npx tsx bench/koffi-async-roundtrip.ts [runs]`.
 */
import { rawLibcFunc } from '../src/native/libc.js';

type Async = {
  async: (
    fd: number,
    vec: null,
    vlen: number,
    flags: number,
    cb: (e: unknown, r: number) => void,
  ) => void;
};
const fn = rawLibcFunc<Async>('int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)');
if (!fn || typeof fn.async !== 'function') throw new Error('no koffi async calls here');
const N = 2000;
const one = () =>
  new Promise<number>((resolve) => {
    let n = 0;
    const t0 = process.hrtime.bigint();
    const go = (): void =>
      fn.async(-1, null, 0, 0, () =>
        ++n < N ? go() : resolve(Number(process.hrtime.bigint() - t0) / 1e3 / N),
      );
    go();
  });
const runs = Number(process.argv[2] ?? 5);
const got: number[] = [];
for (let r = 0; r < runs; r++) got.push(await one());
got.sort((a, b) => a - b);
console.log(
  `koffi async round trip: median ${got[Math.floor(runs / 2)]!.toFixed(1)} µs over ${runs} runs of ${N} (${got.map((x) => x.toFixed(1)).join(', ')})`,
);
