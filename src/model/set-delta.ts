/**
 * The elements that differ between two contents of a static set: what a list edit deletes
 * and adds in place (resources/firewall/set-contents.ts, load.ts) and what a plan's `+N −M`
 * per set counts (firewall-sets.ts setChanges). Pure (a cache keyed by the arrays' identity).
 *
 * Defined on canonical strings (canonicalElement below: `a.b.c.d/32` and `a.b.c.d` alike): an
 * element is deleted when no element of the new content has its canonical form, added when
 * none of the old one has it; each list keeps its order. Computed without a set of every element: both
 * contents are lists of the same formatter in address order (a list's merged intervals, the
 * state directory's copy of what was loaded, a dump), so a walk of both in step pairs almost
 * every element with an identical string; only the elements it cannot pair (each found by
 * comparing the two elements' start addresses) are candidates, and one scan of the other
 * content's canonical forms against the few candidates decides which of them really differ.
 * The walk only proposes: an element it pairs is in both contents, and every candidate is
 * checked against the whole other content, so the result is the definition's for any input
 * (unsorted, duplicated, unparseable elements included) — an unsorted input only makes more
 * candidates. For a one-line edit of a 73,000-interval list: one string comparison per element
 * and one scan, against two 73,000-string sets before (bench/RESULTS.md "Step 24 — lists,
 * third round").
 */
import { parseV4 } from '../config/cidr.js';
import { parseV6 } from '../config/list-grammar.js';

/** nft prints a one-address prefix without its length: compare both spellings alike */
export function canonicalElement(e: string): string {
  // most elements carry no such length: no regular expression for them (a list's 100,000)
  if (!e.endsWith('/32') && !e.endsWith('/128')) return e;
  return e.replace(/\/(32|128)$/, (m, len: string) =>
    e.includes(':') === (len === '128') ? '' : m,
  );
}

export interface ElementDelta {
  /** elements of the old content (as it spells them) that the new one does not hold */
  readonly removed: readonly string[];
  /** elements of the new content the old one does not hold */
  readonly added: readonly string[];
}

/**
 * The address an element starts at, as an order key: IPv4 before IPv6, an element that is
 * neither first (the walk only proposes: any total order gives the same result)
 */
function startKey(e: string): bigint {
  const dash = e.indexOf('-');
  const slash = e.indexOf('/');
  const end = dash >= 0 ? dash : slash >= 0 ? slash : e.length;
  const a = e.slice(0, end);
  const v4 = parseV4(a);
  if (v4 !== undefined) return BigInt(v4);
  const v6 = a.includes(':') ? parseV6(a) : undefined;
  return v6 !== undefined ? (1n << 32n) + v6 : -1n;
}

/** the candidates whose canonical form no element of `other` has (candidates in their order) */
function notIn(candidates: readonly string[], other: readonly string[]): string[] {
  if (candidates.length === 0) return [];
  const want = new Set(candidates.map(canonicalElement));
  // a canonical form's length first: most elements of `other` are not looked up at all
  let longest = 0;
  for (const c of want) longest = Math.max(longest, c.length);
  const lengths = new Uint8Array(longest + 1);
  for (const c of want) lengths[c.length] = 1;
  const found = new Set<string>();
  for (const e of other) {
    const c = canonicalElement(e);
    if (c.length <= longest && lengths[c.length] === 1 && want.has(c)) found.add(c);
  }
  return found.size === 0
    ? [...candidates]
    : candidates.filter((e) => !found.has(canonicalElement(e)));
}

/** the walk: elements of each content it could not pair with an identical one of the other */
function unpaired(
  from: readonly string[],
  to: readonly string[],
): { from: string[]; to: string[] } {
  const fromLeft: string[] = [];
  const toLeft: string[] = [];
  let i = 0;
  let j = 0;
  while (i < from.length && j < to.length) {
    const a = from[i]!;
    const b = to[j]!;
    if (a === b) {
      i++;
      j++;
      continue;
    }
    const ka = startKey(a);
    const kb = startKey(b);
    if (ka <= kb) fromLeft.push(from[i++]!);
    if (kb <= ka) toLeft.push(to[j++]!);
  }
  while (i < from.length) fromLeft.push(from[i++]!);
  while (j < to.length) toLeft.push(to[j++]!);
  return { from: fromLeft, to: toLeft };
}

/** the last deltas computed, by the arrays compared (a plan's counts, then the load's delta) */
const cache = new WeakMap<readonly string[], WeakMap<readonly string[], ElementDelta>>();

/**
 * The elements to delete and to add to turn `from` into `to` (see above). The arrays must not
 * change after the call (the result is kept for the same two arrays); the result is shared.
 */
export function elementDelta(from: readonly string[], to: readonly string[]): ElementDelta {
  const had = cache.get(from)?.get(to);
  if (had) return had;
  const left = unpaired(from, to);
  const d: ElementDelta = { removed: notIn(left.from, to), added: notIn(left.to, from) };
  let byTo = cache.get(from);
  if (!byTo) cache.set(from, (byTo = new WeakMap()));
  byTo.set(to, d);
  return d;
}

/** how many distinct elements (canonical forms) a delta adds and removes: a plan's `+N −M` */
export function deltaCounts(d: ElementDelta): { added: number; removed: number } {
  const distinct = (xs: readonly string[]) => new Set(xs.map(canonicalElement)).size;
  return { added: distinct(d.added), removed: distinct(d.removed) };
}
