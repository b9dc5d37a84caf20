/**
 * The elements of the `w_<rule>` sets of unit/cgroup rules (model/who.ts): `cgroupsv2` sets
 * whose elements are cgroup ids, the inode numbers of the cgroups' directories. nft stores
 * the id, not the path: a cgroup created after the load, or removed and created again (a unit
 * restart), is not in the set until it is written again, and a removed cgroup's id stays
 * (matching nothing, or a later cgroup that reuses the inode). So the sets are rewritten
 * whole, flush and add in one transaction (native/nftset.ts `replace`), to the ids of the
 * cgroups that exist now:
 * - by the firewall driver after every table load (a replace empties every set) and on every
 *   apply that finds the table unchanged (a one-shot `awg apply` refreshes them);
 * - by the daemon when the cgroups appear or disappear (daemon/cgroup-sets.ts).
 *
 * Which cgroup a set holds is in the set's comment, `awg-cgroup=<path>` (the path nft names
 * cgroups by: relative to /sys/fs/cgroup, `unified/…` on hybrid hosts), so the table itself
 * says what to fill. nft limits a comment to 128 characters (`cgroupSetComment` refuses
 * longer paths).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { AwgError } from '../../errors.js';
import type { NftSetWriter } from '../../native/nftset.js';
import { cgroupIdKey } from '../../util/cgroup-id.js';
import { NFT_CGROUP_BASE } from '../cgroup/parse.js';

export const CGROUP_SET_PREFIX = 'w_';
const COMMENT_KEY = 'awg-cgroup=';
/** nft's limit on a comment */
const COMMENT_MAX = 128;

/** A `w_<rule>` set and the cgroups it should hold (nft paths, relative to /sys/fs/cgroup). */
export interface CgroupSetSpec {
  set: string;
  paths: string[];
}

/** The comment that names a set's cgroup (rendered in the set's declaration). */
export function cgroupSetComment(nftPath: string): string {
  const c = `${COMMENT_KEY}${nftPath}`;
  if (c.length > COMMENT_MAX || c.includes('"'))
    throw new AwgError(
      'unsupported',
      `the cgroup path ${JSON.stringify(nftPath)} is too long for an nft set comment (${COMMENT_MAX} characters with "${COMMENT_KEY}")`,
    );
  return c;
}

/** The `w_…` sets of a ruleset (as rendered or listed) with the cgroup of their comment. */
export function cgroupSetsOfRuleset(ruleset: string): CgroupSetSpec[] {
  const out: CgroupSetSpec[] = [];
  let current: string | undefined;
  for (const raw of ruleset.split('\n')) {
    const line = raw.trim();
    const head = /^set (\S+) \{/.exec(line);
    if (head) {
      current = head[1]!.startsWith(CGROUP_SET_PREFIX) ? head[1] : undefined;
      // a one-line declaration: `set w_x { type cgroupsv2; comment "…"; }`
      if (current === undefined) continue;
    }
    if (current === undefined) continue;
    const c = /comment "awg-cgroup=([^"]+)"/.exec(line);
    if (c) out.push({ set: current, paths: [c[1]!] });
    if (line.endsWith('}')) current = undefined;
  }
  return out;
}

/** inode of a directory below /sys/fs/cgroup, or undefined when it does not exist */
export type StatIno = (nftPath: string) => bigint | undefined;

export const statCgroupIno: StatIno = (nftPath) => {
  try {
    const st = statSync(join(NFT_CGROUP_BASE, nftPath), { bigint: true });
    return st.isDirectory() ? st.ino : undefined;
  } catch {
    return undefined;
  }
};

export interface FilledSet {
  set: string;
  /** the cgroup ids written (the cgroups that exist now) */
  ids: bigint[];
}

/** Rewrite each set to the ids of its cgroups that exist now (one transaction per set). */
export function fillCgroupSets(
  writer: Pick<NftSetWriter, 'replace'>,
  sets: readonly CgroupSetSpec[],
  stat: StatIno = statCgroupIno,
): FilledSet[] {
  return sets.map(({ set, paths }) => {
    const ids = [...new Set(paths.map(stat).filter((i): i is bigint => i !== undefined))].sort(
      (a, b) => (a < b ? -1 : a > b ? 1 : 0),
    );
    writer.replace(
      set,
      ids.map((id) => ({ key: cgroupIdKey(id) })),
    );
    return { set, ids };
  });
}
