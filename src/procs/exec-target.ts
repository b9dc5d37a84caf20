/**
 * Which cgroup `awg exec` places itself into, from the last apply record. Pure.
 *
 * - `--rule NAME` → `<root>/NAME`, the rule's own cgroup (its target and fallback apply);
 * - `--tunnel T`  → `<root>/_exec-T`: a cgroup per tunnel that the model marks like a rule
 *   with target T and fallback `block` (fail-closed: while T is down the command's traffic
 *   is dropped, never sent direct);
 * - `--direct`    → `<root>/_exec-direct`: unmarked even in full-tunnel mode.
 * The placer never moves a process out of an `_exec-*` cgroup, so rules cannot override
 * the explicit choice (see procs/placer.ts).
 */
import { AwgError } from '../errors.js';
import type { ExecChoice } from '../model/match.js';
import type { AnyResource } from '../model/resources.js';
import { execCgroupPath } from './cgroups.js';

export type { ExecChoice };

export interface AppliedView {
  claims: { cgroupRoot: string };
  resources: AnyResource[];
}

export function resolveExecCgroup(applied: AppliedView | undefined, choice: ExecChoice): string {
  if (!applied)
    throw new AwgError(
      'invalid-config',
      'awg is not applied: there is no apply record (run `awg apply -f CONFIG` first, or pass the same --state-dir)',
    );
  const root = applied.claims.cgroupRoot;
  const cgroups = new Set(
    applied.resources
      .filter((r) => r.kind === 'cgroup')
      .map((r) => (r.spec as { path: string }).path),
  );
  const ruleNames = [...cgroups]
    .filter((p) => p.startsWith(root + '/') && !p.slice(root.length + 1).startsWith('_exec-'))
    .map((p) => p.slice(root.length + 1));
  if ('rule' in choice) {
    const path = `${root}/${choice.rule}`;
    if (!cgroups.has(path))
      throw new AwgError(
        'invalid-config',
        `no enabled rule named ${JSON.stringify(choice.rule)} in the applied configuration${ruleNames.length ? ` (rules: ${ruleNames.join(', ')})` : ' (it has no rules)'}`,
      );
    return path;
  }
  let path: string;
  if ('tunnel' in choice) {
    const tunnels = applied.resources
      .filter((r) => r.kind === 'engine')
      .map((r) => (r.spec as { tunnel: string }).tunnel);
    if (!tunnels.includes(choice.tunnel))
      throw new AwgError(
        'invalid-config',
        `unknown tunnel ${JSON.stringify(choice.tunnel)}${tunnels.length ? ` (applied tunnels: ${tunnels.join(', ')})` : ' (the applied configuration has no tunnels)'}`,
      );
    path = execCgroupPath(root, choice.tunnel);
  } else {
    path = execCgroupPath(root, 'direct');
  }
  if (!cgroups.has(path))
    throw new AwgError(
      'unsupported',
      `the applied state has no cgroup ${path} for awg exec (is the tunnel in the applied config?); --rule NAME runs in a rule's cgroup`,
    );
  return path;
}
