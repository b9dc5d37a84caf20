/**
 * Names inside awg's cgroup subtree `<cgroupRoot>/`, pure:
 * - `<root>/<ruleName>`: one per enabled rule (model/desired.ts), filled by the placer;
 * - `<root>/_exec-<tunnel>` and `<root>/_exec-direct`: explicit placement by `awg exec`.
 *   Rule names must start with a letter or digit, so `_exec-…` never collides with a rule.
 *   The placer never moves a process out of an exec cgroup.
 * - `<root>` itself: processes that no longer match any rule and whose original cgroup is
 *   unknown (it is unmarked, so they follow the default route).
 * - `<cgroup>/_limit-<pid>` below any of these (or below `<root>`): a process limited at run
 *   time (`awg limit PID`, daemon/limit-book.ts) and the children it starts. It routes as the
 *   cgroup it sits in (the firewall matches a rule's cgroup at its own level, descendants
 *   included); the placer counts a process anywhere below its rule's cgroup as placed.
 */
import { posix } from 'node:path';

export const EXEC_CGROUP_PREFIX = '_exec-';
export const LIMIT_CGROUP_PREFIX = '_limit-';

/** cgroup (relative to the v2 mount) of `awg exec --tunnel T` / `--direct` */
export function execCgroupPath(cgroupRoot: string, target: string): string {
  return `${cgroupRoot}/${EXEC_CGROUP_PREFIX}${target}`;
}

export type CgroupClass =
  | { kind: 'rule'; name: string }
  | { kind: 'exec'; target: string }
  | { kind: 'root' }
  | { kind: 'outside' };

/**
 * /proc/PID/cgroup path (hierarchy path, `/a/b`) → path relative to the v2 mount point.
 * Inside a container without a cgroup namespace the mount shows a subtree (`mountRoot`).
 */
export function relativeCgroup(procPath: string, mountRoot = '/'): string | undefined {
  const root = mountRoot === '/' ? '' : mountRoot.replace(/\/+$/, '');
  if (root && procPath !== root && !procPath.startsWith(root + '/')) return undefined;
  return posix.normalize(procPath.slice(root.length)).replace(/^\/+/, '');
}

/** cgroup of `awg limit PID`, below the cgroup `parent` the process sits in */
export function limitCgroupPath(parent: string, pid: number): string {
  return `${parent}/${LIMIT_CGROUP_PREFIX}${pid}`;
}

/** the pid a `_limit-<pid>` cgroup name was made for; undefined for any other name */
export function limitPidOf(name: string): number | undefined {
  if (!name.startsWith(LIMIT_CGROUP_PREFIX)) return undefined;
  const n = name.slice(LIMIT_CGROUP_PREFIX.length);
  return /^[1-9]\d{0,9}$/.test(n) ? Number(n) : undefined;
}

/**
 * A mount-relative cgroup path split into the cgroup a limit sits in and the innermost
 * runtime limit on the way (`awg/web/_limit-42` → `{ base: 'awg/web', limit: 42 }`).
 */
export function splitLimit(rel: string): { base: string; limit?: number } {
  const parts = rel.split('/');
  let limit: number | undefined;
  const i = parts.findIndex((p) => limitPidOf(p) !== undefined);
  if (i < 0) return { base: rel };
  for (const p of parts.slice(i)) limit = limitPidOf(p) ?? limit;
  return { base: parts.slice(0, i).join('/'), ...(limit !== undefined ? { limit } : {}) };
}

/** `rel` is `path` or a cgroup below it */
export function withinCgroup(rel: string | undefined, path: string): boolean {
  return rel !== undefined && (rel === path || rel.startsWith(path + '/'));
}

/**
 * Where a mount-relative cgroup path sits in our subtree; nested cgroups count as their top,
 * and a runtime limit's cgroup directly below the root as the root.
 */
export function classifyCgroup(cgroupRoot: string, rel: string | undefined): CgroupClass {
  if (rel === undefined) return { kind: 'outside' };
  if (rel === cgroupRoot) return { kind: 'root' };
  if (!rel.startsWith(cgroupRoot + '/')) return { kind: 'outside' };
  const name = rel.slice(cgroupRoot.length + 1).split('/')[0]!;
  if (name.startsWith(LIMIT_CGROUP_PREFIX)) return { kind: 'root' };
  if (name.startsWith(EXEC_CGROUP_PREFIX))
    return { kind: 'exec', target: name.slice(EXEC_CGROUP_PREFIX.length) };
  return { kind: 'rule', name };
}
