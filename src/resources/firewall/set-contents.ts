/**
 * A static set changed in place (Linux): a list edit adds and deletes the elements that
 * differ, in the load's transaction, instead of deleting the set and loading it whole again
 * (load.ts planLoad's `updated`). The set keeps its handle, its other elements and the sets
 * after it stay as they are, and the learned sets behind it keep what DNS taught them.
 *
 * The kernel keeps a set's comment as it was made (an `add set` of an existing set leaves its
 * user data alone), so after a delta the comment `awg n=<count> sha256=<digest>` still names
 * the content the set was created with. What it holds now is kept in the state directory
 * (`nft-set-contents`: per set, the digest its kernel comment says, `base`, and the count and
 * digest of its content now); a listing reads through it (overlayContents), so observation,
 * drift and the load's read-back compare the content as before. A record that does not match
 * the kernel's comment (another table, a set made anew) is ignored: the comment stands, and
 * the element count check of linux.ts still catches a set edited by hand.
 */
import { STATIC_SET_COMMENT_RE } from '../../model/firewall-sets.js';
import { isObject } from '../../util/shape.js';
import { stateFile, type StateStore } from '../../util/state.js';
import type { TableListing } from './parse.js';

export const SET_CONTENTS_FILE = 'nft-set-contents';

export interface SetContent {
  /** the digest of the set's kernel comment (what it was made with) */
  base: string;
  count: number;
  digest: string;
}

export interface SetContents {
  table: string;
  sets: Record<string, SetContent>;
}

const isContent = (v: unknown): v is SetContent =>
  isObject(v) &&
  typeof v.base === 'string' &&
  typeof v.digest === 'string' &&
  Number.isSafeInteger(v.count) &&
  (v.count as number) >= 0;

/** the record of `table`; empty when there is none or it is unusable */
export function readContents(state: StateStore, table: string): SetContents {
  const empty = { table, sets: {} };
  try {
    const v = JSON.parse(stateFile.read(state, SET_CONTENTS_FILE) ?? 'null') as unknown;
    if (!isObject(v) || v.table !== table || !isObject(v.sets)) return empty;
    const sets: Record<string, SetContent> = {};
    for (const [k, c] of Object.entries(v.sets)) if (isContent(c)) sets[k] = c;
    return { table, sets };
  } catch {
    return empty;
  }
}

export function writeContents(state: StateStore, c: SetContents): void {
  if (Object.keys(c.sets).length === 0) return stateFile.remove(state, SET_CONTENTS_FILE);
  stateFile.write(state, SET_CONTENTS_FILE, JSON.stringify(c) + '\n');
}

/**
 * The listing with each static set whose kernel comment is a record's `base` telling the
 * record's count and digest instead; `overlaid`: the sets it rewrote.
 */
export function overlayContents(
  t: TableListing,
  c: SetContents,
): { listing: TableListing; overlaid: Set<string> } {
  const overlaid = new Set<string>();
  if (Object.keys(c.sets).length === 0) return { listing: t, overlaid };
  let set: string | undefined;
  const lines = t.ruleset.split('\n').map((l) => {
    const s = /^set (\S+) \{$/.exec(l);
    if (s) set = s[1];
    else if (l === '}') set = undefined;
    const m = set !== undefined ? STATIC_SET_COMMENT_RE.exec(l) : null;
    const r = set !== undefined ? c.sets[set] : undefined;
    if (!m || !r || m[2] !== r.base) return l;
    overlaid.add(set!);
    return `comment "awg n=${r.count} sha256=${r.digest}"`;
  });
  return overlaid.size
    ? { listing: { ...t, ruleset: lines.join('\n') }, overlaid }
    : { listing: t, overlaid };
}

/** the set blocks differ only in their static comment (the content), both have one */
export function onlyContentDiffers(a: string, b: string): boolean {
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length !== y.length) return false;
  let comment = false;
  for (let i = 0; i < x.length; i++) {
    if (x[i] === y[i]) continue;
    if (!STATIC_SET_COMMENT_RE.test(x[i]!) || !STATIC_SET_COMMENT_RE.test(y[i]!)) return false;
    comment = true;
  }
  return comment;
}

/**
 * The elements to delete and to add to turn one content into another (model/set-delta.ts:
 * canonical forms compared; the deleted ones as the set holds them). Applied over netlink in
 * one transaction, deletions first (linux.ts), so an interval that grows into a neighbour's
 * place never overlaps it: an `nft -f` text of the same is slow on large sets (nft reads the
 * whole set to delete interval elements; measured on 100,000 intervals: more than 120 s).
 */
export { elementDelta } from '../../model/set-delta.js';

/** the record with one set changed in place (before the load's transaction: what it holds now) */
export function withUpdate(
  c: SetContents,
  overlaid: ReadonlySet<string>,
  d: { name: string; from: { digest: string }; to: { digest: string; count: number } },
): SetContents {
  return nextContents(c, overlaid, Object.keys(c.sets), [d]);
}

/**
 * The record after a load: `kept` sets keep their entry (when their comment was read through
 * it), `updated` ones say their new content over the base their kernel comment still names;
 * every other set was made by the load with its true comment (no entry).
 */
export function nextContents(
  c: SetContents,
  overlaid: ReadonlySet<string>,
  kept: readonly string[],
  updated: readonly {
    name: string;
    from: { digest: string };
    to: { digest: string; count: number };
  }[],
): SetContents {
  const sets: Record<string, SetContent> = {};
  for (const name of kept) if (overlaid.has(name) && c.sets[name]) sets[name] = c.sets[name];
  for (const d of updated) {
    const base = overlaid.has(d.name) && c.sets[d.name] ? c.sets[d.name]!.base : d.from.digest;
    if (base === d.to.digest) delete sets[d.name];
    else sets[d.name] = { base, count: d.to.count, digest: d.to.digest };
  }
  return { table: c.table, sets };
}

/** the count a static set holds by the record, when its kernel comment's digest is the base */
export function contentCount(c: SetContents): (set: string, digest: string) => number | undefined {
  return (set, digest) => (c.sets[set]?.base === digest ? c.sets[set].count : undefined);
}
