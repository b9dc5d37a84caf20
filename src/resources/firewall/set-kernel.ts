/**
 * The static sets on the kernel's side (Linux): nf_tables over netlink for one namespace
 * (`SetKernel`), the generation at which awg last knew what its sets hold (`verifiedStamp`),
 * and where the elements of a set about to change or go come from — this process, the state
 * directory's copy (set-store.ts), or a dump — and its change in place.
 */
import { AwgError } from '../../errors.js';
import type { DumpedElement } from '../../native/nftset.js';
import { stateFile, type StateStore } from '../../util/state.js';
import type { SetDelta } from './load.js';
import { elementDelta } from './set-contents.js';
import {
  dumpedIntervals,
  intervalCount,
  keepElements,
  knownElements,
  staticSets,
} from './set-elements.js';
import { storedSets } from './set-store.js';

/** The kernel's nf_tables, over netlink (native/nftset.ts), for one network namespace. */
export interface SetKernel {
  /** nftGenerationStamp: equal stamps, nothing changed in between */
  stamp(): string | undefined;
  /** the elements of a set (dumpSetElements) */
  dump(table: string, set: string): DumpedElement[];
  /** add interval elements (nft syntax: intervalElements) to an interval set, one transaction */
  fill(table: string, set: string, elements: readonly string[]): void;
  /** delete some interval elements and add others, one transaction (a set changed in place) */
  update(table: string, set: string, removed: readonly string[], added: readonly string[]): void;
}

/** The kernel of namespace `netns` (default: this process's). */
export async function nativeSetKernel(netns?: string): Promise<SetKernel> {
  const n = await import('../../native/nftset.js');
  const { withoutOwnNftNotifications: quiet } = await import('../../native/nftnl.js');
  return {
    stamp: () => n.nftGenerationStamp(netns),
    dump: (table, set) => n.dumpSetElements({ table, set, netns }),
    // this process's own nf_tables listeners leave their group during a load (nftnl.ts
    // withoutOwnNftNotifications: no notification built per element, no overrun)
    fill: (table, set, elements) =>
      quiet(() => {
        const w = n.openSetWriter({ table, netns });
        try {
          w.write(n.NFT_MSG_NEWSETELEM, set, n.intervalRun(elements));
        } finally {
          w.close();
        }
      }),
    update: (table, set, removed, added) =>
      quiet(() => {
        const w = n.openSetWriter({ table, netns });
        try {
          w.update(set, n.intervalRun(removed), n.intervalRun(added));
        } finally {
          w.close();
        }
      }),
  };
}

const VERIFIED_FILE = 'nft-sets-verified';
/** table → the generation stamp at which its static sets last held what their comments say */
const verified = new Map<string, string>();

export const verifiedStamp = {
  get(state: StateStore, table: string): string | undefined {
    const had = verified.get(table);
    if (had !== undefined) return had;
    try {
      const m = /^(\S+) (\S+)\n$/.exec(stateFile.read(state, VERIFIED_FILE) ?? '');
      return m?.[1] === table ? m[2] : undefined;
    } catch {
      return undefined;
    }
  },
  set(state: StateStore, table: string, stamp: string | undefined): void {
    if (stamp === undefined) return this.clear(state, table);
    verified.set(table, stamp);
    try {
      stateFile.write(state, VERIFIED_FILE, `${table} ${stamp}\n`);
    } catch {
      /* a stamp not kept only costs a count at the next observation */
    }
  },
  clear(state: StateStore, table: string): void {
    verified.delete(table);
    try {
      stateFile.remove(state, VERIFIED_FILE);
    } catch {
      /* as above */
    }
  },
};

/**
 * Before a load deletes static sets of the live table: their elements, kept by digest when
 * this process does not know them (a rollback to the live table loads them again). Taken from
 * the state directory's copy when nothing changed nf_tables since awg verified the sets
 * (set-store.ts), else read over netlink; kept only when their count is the comment's (a set
 * edited by hand is not kept under a digest that is not its own).
 */
export function keepDeletedSets(
  kernel: SetKernel,
  state: StateStore,
  table: string,
  cur: string,
  skip: (name: string) => boolean,
): void {
  let trusted: boolean | undefined;
  for (const s of staticSets(cur)) {
    if (skip(s.name) || knownElements(s.digest)) continue;
    trusted ??= verifiedStamp.get(state, table) === kernel.stamp();
    const stored = trusted ? storedSets(state, table).get(s.name) : undefined;
    if (stored?.digest === s.digest && stored.elements.length === s.count) {
      keepElements(s.digest, stored.elements);
      continue;
    }
    try {
      const d = kernel.dump(table, s.name);
      if (intervalCount(d) === s.count) keepElements(s.digest, dumpedIntervals(d));
    } catch {
      /* unknown: a rollback to it fails loudly (set-elements.ts) */
    }
  }
}

/**
 * The elements of the live static sets the desired table changes (same name, another digest),
 * when this process does not know them: what a plan's `+N −M` per set compares (model/
 * firewall-sets.ts), and what a rollback of the change loads again.
 */
export function keepChangingSets(
  kernel: SetKernel,
  state: StateStore,
  table: string,
  live: string,
  wanted: string,
): void {
  const want = new Map(staticSets(wanted).map((s) => [s.name, s.digest] as const));
  const names = staticSets(live)
    .filter((s) => want.has(s.name) && want.get(s.name) !== s.digest)
    .map((s) => s.name);
  if (names.length) keepDeletedSets(kernel, state, table, live, (n) => !names.includes(n));
}

/**
 * A set's change in place (load.ts SetDelta); refused by the kernel (its start was not what
 * the set holds: a copy older than a hand edit), computed again from the set's dump. Returns
 * the nf_tables transactions it committed: one (a delta with no element: none, nothing is
 * sent; `SetKernel.update` is one batch, and each committed batch moves the generation by
 * exactly one), or undefined after a refusal (not counted: a caller that compares
 * generations then assumes another change).
 */
export function updateInPlace(kernel: SetKernel, table: string, u: SetDelta): number | undefined {
  try {
    kernel.update(table, u.name, u.elements.removed, u.elements.added);
    return u.elements.removed.length + u.elements.added.length > 0 ? 1 : 0;
  } catch (e) {
    const to = knownElements(u.to.digest);
    if (!(e instanceof AwgError) || !to) throw e;
    const d = elementDelta(dumpedIntervals(kernel.dump(table, u.name)), to);
    kernel.update(table, u.name, d.removed, d.added);
    return undefined;
  }
}

/** the nf_tables generation of a stamp (nftGenerationStamp: `<boot>/<cookie>/<generation>`) */
const genOf = (stamp: string): number => Number(stamp.slice(stamp.lastIndexOf('/') + 1));

/**
 * Stamp `to` is `from` moved by exactly `commits` transactions of the same namespace (no
 * other change in between); false when either is unknown, `commits` too.
 */
export function stampMovedBy(
  from: string | undefined,
  to: string | undefined,
  commits: number | undefined,
): boolean {
  if (from === undefined || to === undefined || commits === undefined) return false;
  const at = from.lastIndexOf('/');
  return (
    at >= 0 &&
    to.slice(0, to.lastIndexOf('/')) === from.slice(0, at) &&
    genOf(to) === genOf(from) + commits
  );
}
