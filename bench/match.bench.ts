/**
 * Step 8: per-app matching cannot stall the SCHED_FIFO placer on a hostile executable path.
 * `match.regex` runs in awg's linear-time engine (src/util/linear-regex.ts); V8's
 * backtracking RegExp on the same pattern and input is measured in the same run as the
 * peer. `match.path` globs stay with picomatch (backtracking) but the schema allows at most
 * 3 wildcards per segment: the worst accepted glob is measured beside the refused one with
 * one more star (its cost grows as Lᵏ).
 */
import picomatch from 'picomatch';
import { compileLinearRegex } from '../src/util/linear-regex.js';
import { measure, type Sample } from './lib.js';

export async function matchBench(smoke: boolean): Promise<Sample[]> {
  const runs = smoke ? 1 : 5;
  const out: Sample[] = [];
  const evil = '(a+)+$';
  for (const n of smoke ? [16] : [20, 22, 24]) {
    const s = 'a'.repeat(n) + '!';
    const v8 = new RegExp(evil);
    const lin = compileLinearRegex(evil);
    out.push(
      await measure(
        `regex ${evil} on ${n + 1} characters: V8 RegExp (backtracking, the peer)`,
        runs,
        () => v8.test(s),
        { warmup: 0 },
      ),
    );
    out.push(
      await measure(`regex ${evil} on ${n + 1} characters: awg linear engine`, runs, () =>
        lin.test(s),
      ),
    );
  }
  const longPath = '/' + 'a'.repeat(4095);
  const lin = compileLinearRegex(evil);
  out.push(
    await measure(`regex ${evil} on a 4,096-character path: awg linear engine`, runs, () =>
      lin.test(longPath),
    ),
  );

  // globs on a hostile path of real segments (NAME_MAX: 255 bytes each, ~3,840 characters in
  // all): the worst shape the schema accepts (3 wildcards in a segment) beside the same glob
  // with one more star, which the schema refuses; each star multiplies the cost by ~L
  const hostile = ('/' + 'a'.repeat(254) + 'c').repeat(smoke ? 2 : 15);
  for (const [glob, verdict] of [
    ['/**/*a*a*b', 'accepted: 3 wildcards'],
    ['/**/*a*a*a*b', 'refused: 4 wildcards'],
  ] as const) {
    const m = picomatch(glob, { dot: true });
    out.push(
      await measure(
        `glob ${glob} (${verdict}) on a ${hostile.length.toLocaleString('en')}-character path of 255-byte names, no match`,
        runs,
        () => m(hostile),
        { warmup: 0 },
      ),
    );
  }
  return out;
}
