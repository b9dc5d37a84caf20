/**
 * cgroup v2 mount detection from /proc/self/mountinfo and the nft view of a cgroup. Pure.
 *
 * nft resolves `socket cgroupv2` paths relative to /sys/fs/cgroup (it stat()s
 * `/sys/fs/cgroup/<path>` and sends the inode), so the path depends on where v2 is mounted:
 * `unified/awg/x` on hybrid hosts, `awg/x` on pure v2. `level` is the absolute depth in the
 * hierarchy, which the kernel compares; when the mount shows a subtree (a container without a
 * cgroup namespace), that subtree's depth is added.
 */
import { posix } from 'node:path';
import { AwgError } from '../../errors.js';
import { parseMountinfo } from '../../util/mountinfo.js';

export const NFT_CGROUP_BASE = '/sys/fs/cgroup';

export interface CgroupMount {
  /** where cgroup2 is mounted, e.g. /sys/fs/cgroup/unified */
  mountPoint: string;
  /** the hierarchy path shown at the mount point (`/` unless inside a container) */
  root: string;
  /** mountPoint relative to /sys/fs/cgroup (`unified`, or `` for pure v2); undefined if outside it */
  nftPrefix: string | undefined;
}

/** A cgroup as nft names it: path relative to /sys/fs/cgroup and depth below the v2 root. */
export interface NftCgroupRef {
  /** e.g. `unified/awg/work` on hybrid hosts, `awg/work` on pure v2 */
  path: string;
  level: number;
}

/** What naming a cgroup for nft needs to know of the mount (CgroupMount, or the probed HostFacts). */
export interface NftCgroupBase {
  /** the v2 mount relative to /sys/fs/cgroup (`unified`, or `` for pure v2); undefined if outside it */
  nftPrefix: string | undefined;
  /** depth of the mount's root inside the hierarchy (containers without a cgroup namespace) */
  rootDepth: number;
  /** for the error when the mount is outside /sys/fs/cgroup */
  mountPoint?: string;
}

/** Facts the cgroup driver reports under `facts.cgroup`. */
export interface CgroupFacts {
  mount: CgroupMount;
  /** inode (= cgroup id) per owned path; a recreated directory has a new one, and nft rules that named the old one stop matching */
  inodes: Record<string, number>;
}

export function parseCgroup2Mount(mountinfo: string): CgroupMount | undefined {
  const m = parseMountinfo(mountinfo).find((x) => x.fsType === 'cgroup2');
  if (!m) return undefined;
  const rel = posix.relative(NFT_CGROUP_BASE, m.mountPoint);
  const nftPrefix = rel.startsWith('..') || posix.isAbsolute(rel) ? undefined : rel;
  return { mountPoint: m.mountPoint, root: m.root, nftPrefix };
}

function segments(p: string): string[] {
  return p.split('/').filter((s) => s !== '');
}

export function nftBaseOf(mount: CgroupMount): NftCgroupBase {
  return {
    nftPrefix: mount.nftPrefix,
    rootDepth: segments(mount.root).length,
    mountPoint: mount.mountPoint,
  };
}

/** path below the v2 mount point → what nft needs */
export function nftCgroupRef(mount: CgroupMount | NftCgroupBase, path: string): NftCgroupRef {
  const base = 'root' in mount ? nftBaseOf(mount) : mount;
  if (base.nftPrefix === undefined) {
    throw new AwgError(
      'unsupported',
      `cgroup2 is mounted at ${base.mountPoint ?? 'a place'} outside ${NFT_CGROUP_BASE}; nft socket cgroupv2 cannot name cgroups there`,
    );
  }
  const segs = segments(path);
  if (segs.length === 0) throw new AwgError('bug', 'nftCgroupRef of the cgroup root');
  return { path: posix.join(base.nftPrefix, ...segs), level: base.rootDepth + segs.length };
}

/** `awg` or `awg/...` (no `..`, no empty segments) */
export function isOwnedPath(path: string, cgroupRoot: string): boolean {
  const segs = path.split('/');
  if (segs.some((s) => s === '' || s === '.' || s === '..')) return false;
  return path === cgroupRoot || path.startsWith(cgroupRoot + '/');
}
