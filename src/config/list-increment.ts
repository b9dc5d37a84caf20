/**
 * A list edited in one place — whole lines of addresses inserted, removed or replaced — parsed
 * from the parse of its previous bytes: the parse a full parse would give, without reading the
 * 100,000 lines again (what a one-line edit of a large list paid: ≈ 0.17 s of its `awg apply`;
 * bench/RESULTS.md "Step 24 — lists, third round"). Pure.
 *
 * Taken only when that is exactly a full parse: the list reads as plain text (as
 * parseListBytes would read it), the new bytes are the old ones with one run of whole lines
 * replaced by another (either may be empty; a byte-order mark only where it was), and both
 * runs, parsed alone, hold addresses, comments and blank lines only, without an issue. A plain
 * list's lines are parsed one by one, independently (parseDestinationBytes), and merging
 * intervals gives the one sorted, disjoint, non-adjacent form of their union whatever the
 * order. So inserted lines are merged in. A removed entry is taken out of the merged interval
 * that holds it only when the old list's address entries share no address (lists.ts
 * `addressesDisjoint`): then the other entries of that interval cover exactly the rest of it.
 * Where an entry shared addresses with another, a removal cannot be undone from the merged
 * form and the list is parsed. Counts are the old ones less the removed run's plus the
 * inserted run's; the domain entries are the old ones. Anything else — an inserted or removed
 * name, an error (its line number is the full parse's to give) — is undefined: parse the list.
 */
import {
  parseDestinationBytes,
  mergeIntervals,
  addressesDisjoint,
  markDisjoint,
  type DestinationSet,
  type Interval,
} from './lists.js';
import { readsAsPlain, type ListParseOptions, type ParsedList } from './list-formats/index.js';

const hasBom = (b: Uint8Array, at: number) =>
  b.length >= at + 3 && b[at] === 0xef && b[at + 1] === 0xbb && b[at + 2] === 0xbf;

/**
 * Where `bytes` is `before` with one run of whole lines replaced: the run's start (the same in
 * both), its end in `before` and its end in `bytes`; undefined when the two are the same. A run
 * starts at a line start and ends after a newline or at the end of its file.
 */
export function changedLines(
  before: Uint8Array,
  bytes: Uint8Array,
): { start: number; endBefore: number; endAfter: number } | undefined {
  const a = Buffer.from(before.buffer, before.byteOffset, before.byteLength);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = a.length;
  const m = b.length;
  if (n === m && a.equals(b)) return undefined;
  // the common prefix (in blocks first: a compare per 4 KiB), then back to its last line start
  const lim = Math.min(n, m);
  let p = 0;
  while (p + 4096 <= lim && a.compare(b, p, p + 4096, p, p + 4096) === 0) p += 4096;
  while (p < lim && a[p] === b[p]) p++;
  while (p > 0 && a[p - 1] !== 0x0a) p--;
  // the common suffix after it, the same way from the end
  const room = lim - p;
  let s = 0;
  while (s + 4096 <= room && a.compare(b, m - s - 4096, m - s, n - s - 4096, n - s) === 0)
    s += 4096;
  while (s < room && a[n - s - 1] === b[m - s - 1]) s++;
  // … shortened until both runs end a line: after a newline, at the file's end, or empty
  const ends = (x: Buffer, len: number) => s === 0 || len - s === p || x[len - s - 1] === 0x0a;
  while (s > 0 && !(ends(a, n) && ends(b, m))) s--;
  return { start: p, endBefore: n - s, endAfter: m - s };
}

/** intervals at most merged in or taken out one by one (more: parse the list, or one merge) */
const MAX_INSERTS = 64;

/** the first interval of `xs` (merged) that ends at or after `at` */
function firstEndingFrom<T extends number | bigint>(xs: readonly Interval<T>[], at: T): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]!.end >= at) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** the address `by` (±1) after `v`, in its own type */
const step = <T extends number | bigint>(v: T, by: 1 | -1): T =>
  (typeof v === 'bigint' ? v + BigInt(by) : (v as number) + by) as T;

/**
 * `xs` (merged) with `gone` taken out, where each interval of `gone` lies inside one of `xs`
 * (its entries' own merged interval); undefined when one does not. A merged interval less a
 * part of it is one or two intervals, neither adjacent to the other: merged again.
 */
function removeIntervals<T extends number | bigint>(
  xs: readonly Interval<T>[],
  gone: readonly Interval<T>[],
): Interval<T>[] | undefined {
  const out = xs.slice();
  for (const g of gone) {
    const i = firstEndingFrom(out, g.start);
    const x = out[i];
    if (!x || x.start > g.start || x.end < g.end) return undefined;
    const pieces: Interval<T>[] = [];
    if (x.start < g.start) pieces.push({ start: x.start, end: step(g.start, -1) });
    if (g.end < x.end) pieces.push({ start: step(g.end, 1), end: x.end });
    out.splice(i, 1, ...pieces);
  }
  return out;
}

/** whether an interval of `add` shares an address with one of `xs` (merged) */
function overlapsAny<T extends number | bigint>(
  xs: readonly Interval<T>[],
  add: readonly Interval<T>[],
): boolean {
  for (const a of add) {
    const x = xs[firstEndingFrom(xs, a.start)];
    if (x && x.start <= a.end) return true;
  }
  return false;
}

/**
 * `xs` (merged: sorted, disjoint, non-adjacent) with `add` merged in: each interval replaces
 * the ones it overlaps or touches by their union (a binary search and a splice each), so the
 * result is merged again — what mergeIntervals gives for both together. The objects of `xs` are
 * shared (intervals are never changed once made).
 */
function insertIntervals<T extends number | bigint>(
  xs: readonly Interval<T>[],
  add: readonly Interval<T>[],
): Interval<T>[] {
  if (add.length > MAX_INSERTS) return mergeIntervals(mergeRuns(xs, add));
  const out = xs.slice();
  for (const a of add) {
    const one = (typeof a.start === 'bigint' ? 1n : 1) as T;
    // the first interval ending at or after the address before a.start (overlaps, touches, past)
    const lo = firstEndingFrom(out, step(a.start, -1));
    // then every one that starts at or before the one after a.end
    let end = lo;
    while (end < out.length) {
      const s = out[end]!.start;
      if (s > a.end && s - a.end !== one) break;
      end++;
    }
    const start = end > lo && out[lo]!.start < a.start ? out[lo]!.start : a.start;
    const last = end > lo && out[end - 1]!.end > a.end ? out[end - 1]!.end : a.end;
    out.splice(lo, end - lo, { start, end: last });
  }
  return out;
}

/** two runs sorted by start as one (stable: `a` first among equal starts) */
function mergeRuns<T extends number | bigint>(
  a: readonly Interval<T>[],
  b: readonly Interval<T>[],
): Interval<T>[] {
  if (b.length === 0) return [...a];
  const out = new Array<Interval<T>>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = b[j]!.start < a[i]!.start ? b[j++]! : a[i++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

/**
 * The parse of `bytes` (the list `file`, read with `opts`) from `base`, the parse of
 * `baseBytes` (a snapshot's: no issues), when `bytes` is `baseBytes` with one run of address
 * lines replaced by another (above); undefined otherwise.
 */
export function parseEdited(
  base: ParsedList,
  baseBytes: Uint8Array,
  bytes: Uint8Array,
  file: string,
  opts: ListParseOptions,
): ParsedList | undefined {
  if (base.format !== 'plain' || base.issues.length) return undefined;
  if (!readsAsPlain(bytes, opts) || !readsAsPlain(baseBytes, opts)) return undefined;
  const at = changedLines(baseBytes, bytes);
  if (!at) return undefined;
  // a byte-order mark is skipped at the start of a file only: not one before or at the start
  // of a run (a run parsed alone would skip it)
  if (hasBom(bytes, at.start) || hasBom(baseBytes, at.start)) return undefined;
  const run = (b: Uint8Array, end: number): DestinationSet | undefined => {
    const { set, issues } = parseDestinationBytes(b.subarray(at.start, end), file, {
      path: opts.path,
      maxIssues: opts.maxIssues,
    });
    const c = set.counts;
    return issues.length || c.entries !== c.cidrs4 + c.cidrs6 || set.domains.size ? undefined : set;
  };
  const gone = run(baseBytes, at.endBefore);
  const added = run(bytes, at.endAfter);
  if (!gone || !added) return undefined;
  const b = base.set;
  let v4 = b.v4;
  let v6 = b.v6;
  let disjoint = addressesDisjoint(b);
  if (gone.counts.entries) {
    if (!disjoint || gone.v4.length + gone.v6.length > MAX_INSERTS) return undefined;
    const r4 = gone.v4.length ? removeIntervals(v4, gone.v4) : v4;
    const r6 = gone.v6.length ? removeIntervals(v6, gone.v6) : v6;
    if (!r4 || !r6) return undefined;
    v4 = r4;
    v6 = r6;
  }
  disjoint &&= addressesDisjoint(added) && !overlapsAny(v4, added.v4) && !overlapsAny(v6, added.v6);
  const g = gone.counts;
  const c = added.counts;
  const set: DestinationSet = {
    domains: b.domains,
    v4: added.v4.length ? insertIntervals(v4, added.v4) : v4,
    v6: added.v6.length ? insertIntervals(v6, added.v6) : v6,
    counts: {
      entries: b.counts.entries - g.entries + c.entries,
      redundant: b.counts.redundant,
      cidrs4: b.counts.cidrs4 - g.cidrs4 + c.cidrs4,
      cidrs6: b.counts.cidrs6 - g.cidrs6 + c.cidrs6,
    },
  };
  return { format: 'plain', set: markDisjoint(set, disjoint), issues: [] };
}
