/**
 * The elements awg last loaded into the static sets, kept in the state directory
 * (`nft-set-elements`), so that a later process (the next `awg apply` after a list edit) knows
 * what a set holds without dumping it from the kernel: an rbtree set's dump restarts its walk
 * for every reply, so reading 65,000 intervals back costs ≈ 1 s of kernel time (native/nftset.ts
 * dumpSetElements), against a few milliseconds for this file.
 *
 * The file says what the sets held when awg last loaded them, no more: linux.ts takes a set's
 * elements from it only while the nf_tables generation is the one verified after that load or
 * a later count check (nothing in nf_tables changed since), and only when the set's (overlaid)
 * comment names the same digest and count. Otherwise the kernel is asked (the dump). A change
 * in place computed from a stale file fails in the kernel (an element to delete is not there:
 * the transaction is refused whole) and is computed again from a dump (linux.ts).
 *
 * A set is taken from the file only when its elements hash to the digest its line names (the
 * digest of the set's comment, set-elements.ts elementsDigest): a file cut, damaged or edited
 * by hand gives no elements for that set (the kernel is asked). So the file is written without
 * fsync (a copy of what the kernel holds; ≈ 1 MiB for a 100,000-line list): after a crash it is
 * the old one, none, or one whose sets fail their digest.
 *
 * Format (text): `awg-set-elements 1 <table>`, then per set `set <name> <digest> <count>` and
 * its elements, one a line, as the renderer wrote them.
 */
import { stateFile, type StateStore } from '../../util/state.js';
import { elementsDigest } from './set-elements.js';

export const SET_ELEMENTS_FILE = 'nft-set-elements';

export interface StoredSet {
  digest: string;
  elements: readonly string[];
}

/** the last file read or written per state store (a process reads it once) */
const cache = new WeakMap<StateStore, { table: string; sets: Map<string, StoredSet> }>();

/** the stored sets of `table`: name → digest and elements; empty when none or unreadable */
export function storedSets(state: StateStore, table: string): Map<string, StoredSet> {
  const had = cache.get(state);
  if (had) return had.table === table ? had.sets : new Map();
  const sets = new Map<string, StoredSet>();
  let text: string | undefined;
  try {
    text = stateFile.read(state, SET_ELEMENTS_FILE);
  } catch {
    text = undefined;
  }
  const lines = text?.split('\n') ?? [];
  const head = /^awg-set-elements 1 (\S+)$/.exec(lines[0] ?? '');
  if (head?.[1] === table) {
    for (let i = 1; i < lines.length;) {
      const m = /^set (\S+) ([0-9a-f]+) (\d+)$/.exec(lines[i]!);
      if (!m) break;
      const n = Number(m[3]);
      const elements = lines.slice(i + 1, i + 1 + n);
      // a short file (cut): this set and the rest are not known
      if (elements.length !== n || i + 1 + n >= lines.length) break;
      // elements that are not what the digest names (damaged, edited): this set is not known
      if (elementsDigest(elements) === m[2]) sets.set(m[1]!, { digest: m[2]!, elements });
      i += 1 + n;
    }
  }
  cache.set(state, { table: head?.[1] ?? table, sets });
  return sets;
}

/** keep what the static sets of `table` hold now (after a load); none: the file goes */
export function storeSets(
  state: StateStore,
  table: string,
  sets: readonly ({ name: string } & StoredSet)[],
): void {
  const kept = new Map(sets.map((s) => [s.name, { digest: s.digest, elements: s.elements }]));
  // the same sets with the same contents as this process read or wrote: nothing to write
  const had = cache.get(state);
  if (
    had?.table === table &&
    had.sets.size === kept.size &&
    sets.every((s) => had.sets.get(s.name)?.digest === s.digest)
  )
    return;
  cache.set(state, { table, sets: kept });
  try {
    if (sets.length === 0) return stateFile.remove(state, SET_ELEMENTS_FILE);
    const parts = [`awg-set-elements 1 ${table}`];
    for (const s of sets) {
      parts.push(`set ${s.name} ${s.digest} ${s.elements.length}`);
      if (s.elements.length) parts.push(s.elements.join('\n'));
    }
    stateFile.write(state, SET_ELEMENTS_FILE, parts.join('\n') + '\n', { durable: false });
  } catch {
    // not kept: the next change of a set dumps it from the kernel instead
    cache.delete(state);
    try {
      stateFile.remove(state, SET_ELEMENTS_FILE);
    } catch {
      /* a stale file is checked against the generation and the digests before use */
    }
  }
}

/** forget the stored sets (the table is gone) */
export function dropStoredSets(state: StateStore): void {
  cache.delete(state);
  try {
    stateFile.remove(state, SET_ELEMENTS_FILE);
  } catch {
    /* as above */
  }
}
