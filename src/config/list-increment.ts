/**
 * A list edited by inserting lines of addresses, parsed from the parse of its previous bytes:
 * the parse a full parse would give, without reading the 100,000 lines again (what a one-line
 * edit of a large list paid: ≈ 0.17 s of its `awg apply`; bench/RESULTS.md "Step 24 — lists,
 * third round"). Pure.
 *
 * Taken only when that is exactly a full parse: the list reads as plain text (as
 * parseListBytes would read it), the new bytes are the old ones with whole lines inserted at a
 * line start (nothing removed or changed; a byte-order mark only where it was), and those
 * lines, parsed alone, hold addresses, comments and blank lines only, without an issue. A plain
 * list's lines are parsed one by one, independently (parseDestinationBytes), and merging
 * intervals gives the one sorted, disjoint, non-adjacent form of their union whatever the
 * order, so the result is the old parse with the new lines' intervals merged in and their
 * counts added; the domain entries are the old ones. Anything else — a removed or changed
 * line, an inserted name, an error (its line number is the full parse's to give) — is
 * undefined: parse the list.
 */
import { parseDestinationBytes, mergeIntervals, type Interval } from './lists.js';
import { readsAsPlain, type ListParseOptions, type ParsedList } from './list-formats/index.js';

const hasBom = (b: Uint8Array, at: number) =>
  b.length >= at + 3 && b[at] === 0xef && b[at + 1] === 0xbb && b[at + 2] === 0xbf;

/**
 * Where `bytes` is `before` with whole lines inserted: the inserted bytes' start and end in
 * `bytes`; undefined when it is not
 */
export function insertedLines(
  before: Uint8Array,
  bytes: Uint8Array,
): { start: number; end: number } | undefined {
  const added = bytes.length - before.length;
  if (added <= 0) return undefined;
  const a = Buffer.from(before.buffer, before.byteOffset, before.byteLength);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // the common prefix, then back to the start of its last line
  let p = 0;
  const n = a.length;
  // in blocks first (a compare per 4 KiB), then byte by byte
  while (p + 4096 <= n && a.compare(b, p, p + 4096, p, p + 4096) === 0) p += 4096;
  while (p < n && a[p] === b[p]) p++;
  while (p > 0 && a[p - 1] !== 0x0a) p--;
  // the rest of `before` follows the inserted bytes unchanged, which end a line
  if (b[p + added - 1] !== 0x0a) return undefined;
  if (a.compare(b, p + added, b.length, p, n) !== 0) return undefined;
  return { start: p, end: p + added };
}

/** inserted intervals at most merged one by one into a copy (more: one merge of all) */
const MAX_INSERTS = 64;

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
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = out[mid]!.end;
      if (e >= a.start || a.start - e === one) hi = mid;
      else lo = mid + 1;
    }
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
 * `baseBytes` (a snapshot's: no issues), when `bytes` is `baseBytes` with lines of addresses
 * inserted (above); undefined otherwise.
 */
export function parseInserted(
  base: ParsedList,
  baseBytes: Uint8Array,
  bytes: Uint8Array,
  file: string,
  opts: ListParseOptions,
): ParsedList | undefined {
  if (base.format !== 'plain' || base.issues.length) return undefined;
  if (!readsAsPlain(bytes, opts) || !readsAsPlain(baseBytes, opts)) return undefined;
  const at = insertedLines(baseBytes, bytes);
  if (!at) return undefined;
  // a byte-order mark is skipped at the start of a file only: not one inserted before it, nor
  // one that starts the inserted lines
  if (hasBom(bytes, at.start)) return undefined;
  if (at.start === 0 && hasBom(baseBytes, 0)) return undefined;
  const { set, issues } = parseDestinationBytes(bytes.subarray(at.start, at.end), file, {
    path: opts.path,
    maxIssues: opts.maxIssues,
  });
  const c = set.counts;
  if (issues.length || c.entries !== c.cidrs4 + c.cidrs6 || set.domains.size) return undefined;
  const b = base.set;
  return {
    format: 'plain',
    set: {
      domains: b.domains,
      v4: set.v4.length ? insertIntervals(b.v4, set.v4) : b.v4,
      v6: set.v6.length ? insertIntervals(b.v6, set.v6) : b.v6,
      counts: {
        entries: b.counts.entries + c.entries,
        redundant: b.counts.redundant,
        cidrs4: b.counts.cidrs4 + c.cidrs4,
        cidrs6: b.counts.cidrs6 + c.cidrs6,
      },
    },
    issues: [],
  };
}
