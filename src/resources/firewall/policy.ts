/**
 * The model's FirewallPolicy (model/policy.ts) in the shape nftables needs: our table's
 * name, the TUN name wildcard, and each process group as the `socket cgroupv2` match names
 * it. Pure types and the conversion; the renderer (render.ts) turns an NftPolicy into the
 * full text of our table.
 */
import type { AppRule, FirewallPolicy, ShapeClass } from '../../model/policy.js';
import { nftCgroupRef, type NftCgroupBase, type NftCgroupRef } from '../cgroup/parse.js';

export type { NftCgroupRef };

/** our table in family inet (claims.nftTable) */
export { DEFAULT_NFT_TABLE as NFT_TABLE } from '../reads.js';

/** Table comment that marks the table as ours. A table with our name but without it is a conflict. */
export const NFT_MARKER = 'managed-by=awg';

/**
 * The daemon's own sockets (engine UDP to peers, TCP to proxies, endpoint DNS) carry this
 * mark via SO_MARK: every bit of the claimed fwmark mask set. Tunnel marks are values inside
 * the mask, so the allocator must never hand this value to a tunnel. Chosen over
 * `meta skuid 0`: any root process would pass a uid match, while SO_MARK needs
 * CAP_NET_ADMIN, so only the daemon can carry it.
 */
export function bypassMarkOf(fwmarkMask: number): number {
  return fwmarkMask >>> 0;
}

export interface NftAppRule extends Omit<AppRule, 'group'> {
  /** a program rule's cgroup; absent for rules that name senders by `who` or not at all */
  cgroup?: NftCgroupRef;
}

export interface NftShapeClass extends Omit<ShapeClass, 'group'> {
  cgroup: NftCgroupRef;
}

export interface NftPolicy extends Omit<FirewallPolicy, 'apps' | 'shaping'> {
  /** nft table name in family inet (claims.nftTable) */
  table: string;
  /** TUN name prefix (claims.linkPrefix); `<prefix>*` passes the kill switch */
  linkPrefix: string;
  /** ordered; the first matching cgroup decides */
  apps: NftAppRule[];
  shaping?: { classes: NftShapeClass[] };
}

export function toNftPolicy(
  p: FirewallPolicy,
  o: { table: string; linkPrefix: string; cgroup: NftCgroupBase },
): NftPolicy {
  const { apps, shaping, sets, ...rest } = p;
  return {
    table: o.table,
    linkPrefix: o.linkPrefix,
    ...rest,
    // a cgroups set names its cgroup as nft does (relative to /sys/fs/cgroup)
    ...(sets
      ? {
          sets: sets.map((s) =>
            s.cgroup !== undefined ? { ...s, cgroup: nftCgroupRef(o.cgroup, s.cgroup).path } : s,
          ),
        }
      : {}),
    apps: apps.map(({ group, ...a }) => ({
      ...a,
      ...(group !== undefined ? { cgroup: nftCgroupRef(o.cgroup, group) } : {}),
    })),
    ...(shaping
      ? {
          shaping: {
            classes: shaping.classes.map(({ group, ...k }) => ({
              ...k,
              cgroup: nftCgroupRef(o.cgroup, group),
            })),
          },
        }
      : {}),
  };
}
