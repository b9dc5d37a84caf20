/**
 * How a table is loaded over what the kernel holds (Linux). Pure.
 *
 * `classic`: one `nft -f` transaction that deletes the table and defines it again, every
 * static set's elements in its text (`add element`, set-elements.ts): what runs when the
 * elements cannot be written over netlink (no kernel at hand: tests; a dry run) or the live
 * table holds something other than our comment, sets and chains.
 *
 * `incremental`: the table is never deleted. Sets are created and filled before the
 * transaction while no chain refers to them (`stage`: declared by `nft -f`, static elements
 * written over netlink, native/nftset.ts), then one `nft -f` transaction flushes every rule,
 * deletes every chain and each set that is neither kept nor staged, and defines the table
 * again: re-adding a set that exists with the same declaration changes nothing, so a kept
 * set keeps its elements (the kernel does not compare comments: a set is kept only when its
 * whole declaration, comment included, is unchanged). Packets meet the old table or the new
 * one, never a set half filled: a staged set is unreferenced until the transaction commits.
 *
 * A static set whose content changed (a list edit: same declaration, another count and digest
 * in its comment) is `updated` in place when the elements of both contents are known: the
 * elements that differ are deleted and added over netlink before the transaction, in one
 * transaction of their own (set-contents.ts), so the set keeps its handle, the sets after it
 * are kept too, and the transaction re-adds the set unchanged.
 *
 * The kernel lists sets in the order they were created, and drift is a comparison of text:
 * the sets are kept while they come in the wanted order, staged while they are new names,
 * and the rest (from the first set that breaks the order on) is created by the transaction.
 */
import { STATIC_SET_COMMENT_RE } from '../../model/firewall-sets.js';
import { NFT_MARKER } from './policy.js';
import { elementCommands, staticSets } from './set-elements.js';
import type { ElementDelta } from '../../model/set-delta.js';
import { elementDelta, onlyContentDiffers } from './set-contents.js';

export interface TableShape {
  /** top-level lines other than set and chain blocks (the table's comment, flags, …) */
  other: string[];
  /** set name → its block (declaration lines joined), in listing order */
  sets: Map<string, string>;
  chains: string[];
  /** blocks of another kind (map, flowtable, counter, …) */
  foreign: string[];
}

/** the top level of a normalised table (`table F N {` … `}`) */
export function tableShape(ruleset: string): TableShape {
  const shape: TableShape = { other: [], sets: new Map(), chains: [], foreign: [] };
  let block: { kind: string; name: string; lines: string[] } | undefined;
  let depth = 0;
  for (const l of ruleset.split('\n')) {
    if (!l) continue;
    if (depth === 0) {
      if (/^table \S+ \S+ \{$/.test(l)) depth = 1;
      continue;
    }
    if (depth === 1) {
      if (l === '}') {
        depth = 0;
        continue;
      }
      const m = /^(\S+) (\S+) \{$/.exec(l);
      if (m) {
        block = { kind: m[1]!, name: m[2]!, lines: [l] };
        depth = 2;
      } else shape.other.push(l);
      continue;
    }
    block!.lines.push(l);
    if (l.endsWith('{')) depth++;
    else if (l === '}' && --depth === 1) {
      if (block!.kind === 'set') shape.sets.set(block!.name, block!.lines.join('\n'));
      else if (block!.kind === 'chain') shape.chains.push(block!.name);
      else shape.foreign.push(`${block!.kind} ${block!.name}`);
      block = undefined;
    }
  }
  return shape;
}

export interface StagedSet {
  name: string;
  /** static: the elements' digest (filled after the declaration); learned and cgroup: none */
  digest?: string;
}

/** a static set changed in place: its content before and after, and the elements that differ */
export interface SetDelta {
  name: string;
  /** digest and count of the content the set holds now (its comment, read through the record) */
  from: { digest: string; count: number };
  to: { digest: string; count: number };
  added: number;
  removed: number;
  /** the elements to delete and to add (nft element syntax; shared: not to be changed) */
  elements: ElementDelta;
}

export interface LoadPlan {
  mode: 'classic' | 'incremental';
  /** incremental: static sets kept and changed by element deltas (also in `kept`) */
  updated: SetDelta[];
  /** incremental: `nft -f` text that creates the table if absent and declares the staged sets */
  stage?: string;
  /** incremental: the sets that text declares, in order (static ones filled after it) */
  staged: StagedSet[];
  /** sets the transaction leaves as they are */
  kept: string[];
  /** the transaction, without the counters carried (the caller's `ruleset` goes in as given) */
  transaction: string;
}

/** one set block as a single `add set` command */
function addSet(family: string, table: string, block: string): string {
  const lines = block.split('\n');
  const name = /^set (\S+) \{$/.exec(lines[0]!)![1]!;
  return `add set ${family} ${table} ${name} { ${lines.slice(1, -1).join('; ')}; }`;
}

/**
 * The load of `want` (normalised) over `cur` (the live table's normalised ruleset, undefined:
 * none). `ruleset`: what the transaction defines (`want` with counters carried). `netlink`:
 * the static elements can be written over netlink here; `known(digest)`: this process holds
 * a digest's elements.
 */
export function planLoad(o: {
  family: string;
  table: string;
  cur: string | undefined;
  want: string;
  ruleset: string;
  netlink: boolean;
  known: (digest: string) => boolean;
  /** a digest's elements when this process holds them: a changed set is updated in place */
  elements?: (digest: string) => readonly string[] | undefined;
  /** the table's comment statement as a new table gets it (default the bare marker) */
  marker?: string;
}): LoadPlan {
  const { family, table } = o;
  const classic = (): LoadPlan => ({
    mode: 'classic',
    updated: [],
    staged: [],
    kept: [],
    transaction: `add table ${family} ${table}\ndelete table ${family} ${table}\n${o.ruleset}${elementCommands(family, table, o.ruleset)}`,
  });
  const cur = o.cur !== undefined ? tableShape(o.cur) : undefined;
  if (!o.netlink) return classic();
  if (cur && (cur.foreign.length > 0 || cur.other.some((l) => l !== `comment "${NFT_MARKER}"`)))
    return classic();
  const want = tableShape(o.want);
  const digests = new Map(staticSets(o.want).map((s) => [s.name, s.digest]));
  const kept: string[] = [];
  const staged: StagedSet[] = [];
  const updated: SetDelta[] = [];
  let phase: 'keep' | 'stage' | 'create' = 'keep';
  let lastKept = -1;
  const order = cur ? [...cur.sets.keys()] : [];
  for (const [name, block] of want.sets) {
    if (phase === 'keep') {
      const at = order.indexOf(name);
      const had = cur?.sets.get(name);
      const delta =
        at > lastKept && had !== undefined && had !== block ? deltaOf(had, block) : undefined;
      if (at > lastKept && (had === block || delta)) {
        kept.push(name);
        if (delta) updated.push({ name, ...delta });
        lastKept = at;
        continue;
      }
      phase = 'stage';
    }
    if (phase === 'stage') {
      const digest = digests.get(name);
      if (!cur?.sets.has(name) && (digest === undefined || o.known(digest))) {
        staged.push(digest !== undefined ? { name, digest } : { name });
        continue;
      }
      phase = 'create';
    }
  }
  if (!cur && staged.length === 0) return classic();
  const left = new Set([...kept, ...staged.map((s) => s.name)]);
  const stage = staged.length
    ? [
        `add table ${family} ${table} { ${o.marker ?? `comment "${NFT_MARKER}"`}; }`,
        ...staged.map((s) => addSet(family, table, want.sets.get(s.name)!)),
      ].join('\n') + '\n'
    : undefined;
  const head = [
    `add table ${family} ${table}`,
    `flush table ${family} ${table}`,
    ...(cur?.chains ?? []).map((c) => `delete chain ${family} ${table} ${c}`),
    ...order.filter((s) => !left.has(s)).map((s) => `delete set ${family} ${table} ${s}`),
  ];
  return {
    mode: 'incremental',
    ...(stage !== undefined ? { stage } : {}),
    updated,
    staged,
    kept,
    transaction: `${head.join('\n')}\n${o.ruleset}${elementCommands(family, table, o.ruleset, left)}`,
  };

  /** the delta of a set whose content alone changed, when both contents' elements are known */
  function deltaOf(had: string, block: string): Omit<SetDelta, 'name'> | undefined {
    if (!o.elements || !onlyContentDiffers(had, block)) return undefined;
    const content = (b: string) => {
      for (const l of b.split('\n')) {
        const m = STATIC_SET_COMMENT_RE.exec(l);
        if (m) return { count: Number(m[1]), digest: m[2]! };
      }
      return undefined;
    };
    const from = content(had);
    const to = content(block);
    if (!from || !to) return undefined;
    const a = o.elements(from.digest);
    const b = o.elements(to.digest);
    // the set must hold what the known elements say (a count edited by hand: loaded again)
    if (!a || !b || a.length !== from.count || b.length !== to.count) return undefined;
    const d = elementDelta(a, b);
    return { from, to, added: d.added.length, removed: d.removed.length, elements: d };
  }
}
