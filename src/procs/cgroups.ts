/**
 * Names inside awg's cgroup subtree `<cgroupRoot>/`, pure:
 * - `<root>/<ruleName>`: one per enabled rule (model/desired.ts), filled by the placer;
 * - `<root>/_exec-<tunnel>` and `<root>/_exec-direct`: explicit placement by `awg exec`.
 *   Rule names must start with a letter or digit, so `_exec-…` never collides with a rule.
 *   The placer never moves a process out of an exec cgroup.
 * - `<root>` itself: processes that no longer match any rule and whose original cgroup is
 *   unknown (it is unmarked, so they follow the default route).
 */
import { posix } from 'node:path';

export const EXEC_CGROUP_PREFIX = '_exec-';

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

/** where a mount-relative cgroup path sits in our subtree; nested cgroups count as their top */
export function classifyCgroup(cgroupRoot: string, rel: string | undefined): CgroupClass {
  if (rel === undefined) return { kind: 'outside' };
  if (rel === cgroupRoot) return { kind: 'root' };
  if (!rel.startsWith(cgroupRoot + '/')) return { kind: 'outside' };
  const name = rel.slice(cgroupRoot.length + 1).split('/')[0]!;
  if (name.startsWith(EXEC_CGROUP_PREFIX))
    return { kind: 'exec', target: name.slice(EXEC_CGROUP_PREFIX.length) };
  return { kind: 'rule', name };
}
