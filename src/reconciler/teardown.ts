/**
 * "Remove everything we own": the one implementation behind `awg down`, the daemon's stop
 * and down, and the confirm-timeout revert to nothing. Ownership comes from the drivers'
 * markers, so no config is needed; what to keep is the caller's choice: with the kill switch
 * kept, the firewall and the cgroups its rules name stay (nft needs them to reload the
 * table, and traffic stays blocked).
 */
import { AwgError } from '../errors.js';
import type { AnyResource, DesiredState } from '../model/resources.js';
import { executeBestEffort } from './execute.js';
import { applyContextOf, observeWith, type ReconcileEnv } from './observe.js';
import { plan } from './plan.js';
import { verify } from './verify.js';
import { blocking, conflictError } from './machine.js';

/** The kill switch: the firewall and the cgroups its rules name (every cgroup of ours). */
export function killSwitchIds(resources: readonly AnyResource[]): Set<string> {
  if (!resources.some((r) => r.kind === 'firewall')) return new Set();
  return new Set(
    resources.filter((r) => r.kind === 'firewall' || r.kind === 'cgroup').map((r) => r.id),
  );
}

export interface RemoveResult {
  /** ids of the objects removed (or that would be, under dry-run) */
  removed: string[];
  /** ids kept on purpose (the kill switch) */
  kept: string[];
  /** every failure; removal continues past them */
  errors: AwgError[];
  /** owned objects still there afterwards that were not to be kept (not checked under dry-run) */
  left: string[];
  /** what is observed afterwards (the kept objects) */
  after: AnyResource[];
}

/**
 * Remove every owned object but those `keepKillSwitch` keeps, continuing past failures, then
 * observe again. Under a dry-run Exec it only reports what it would run.
 */
export async function removeOwned(
  env: ReconcileEnv,
  o: { keepKillSwitch?: boolean } = {},
): Promise<RemoveResult> {
  const empty: DesiredState = { resources: [], warnings: [] };
  const observed = await observeWith(env, empty);
  // another state directory's objects: its routes and rules look like ours (they carry no tag)
  const theirs = blocking(empty, observed);
  if (theirs.length) throw conflictError(theirs);
  const keep = o.keepKillSwitch ? killSwitchIds(observed.resources) : new Set<string>();
  const changes = plan(empty, observed).changes.filter(
    (c) => c.action !== 'noop' && !keep.has(c.id),
  );
  const r = await executeBestEffort(changes, env.drivers, applyContextOf(env));
  const kept = observed.resources.filter((x) => keep.has(x.id));
  let left: string[] = [];
  let after = kept;
  if (!env.exec.dryRun) {
    const now = await observeWith(env, empty);
    left = verify({ resources: kept, warnings: [] }, now).mismatches.map((m) => m.id);
    after = now.resources;
  }
  return {
    removed: changes.map((c) => c.id),
    kept: kept.map((x) => x.id),
    errors: r.errors,
    left,
    after,
  };
}
