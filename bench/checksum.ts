/**
 * The TCP checksum sum (src/dataplane/tun/offload.ts `sumLE`) over 1,420-byte packets: a
 * range that starts on an even address takes the word path (a Uint32Array over the buffer,
 * four words to an iteration), one on an odd address the byte loads every range took before
 * (bench/RESULTS.md, "Less work per packet"). Both through the public function, 512 packets
 * of a 1-MiB slab, in alternation. `npx tsx bench/checksum.ts [runs]`.
 */
import { sumLE } from '../src/dataplane/tun/offload.js';
import { machine, median } from './lib.js';

const RUNS = Number(process.argv[2] ?? 7);
const N = 400_000;
const slab = new Uint8Array(1 << 20);
for (let i = 0; i < slab.length; i++) slab[i] = (i * 2654435761) >>> 24;
const at = (odd: boolean) =>
  Array.from({ length: 512 }, (_, k) =>
    slab.subarray(k * 1536 + 16 + (odd ? 1 : 0)).subarray(0, 1420),
  );
const even = at(false);
const odd = at(true);

function perPacket(pkts: Uint8Array[]): number {
  let acc = 0;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < N; r++) {
    const p = pkts[r & 511]!;
    acc += sumLE(p, 20, p.length);
  }
  if (acc === -1) console.log(acc); // keep the sums
  return Number(process.hrtime.bigint() - t0) / N;
}

const words: number[] = [];
const bytes: number[] = [];
for (let i = 0; i < RUNS; i++) {
  words.push(perPacket(even));
  bytes.push(perPacket(odd));
}
console.log(machine());
console.log(
  `sumLE over 1,400 bytes, ns per packet (median of ${RUNS}): word path ${median(words).toFixed(0)}, byte loads ${median(bytes).toFixed(0)}`,
);
