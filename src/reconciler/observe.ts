/** Observe every kind through its driver and merge the results. */
import type {
  ApplyContext,
  Claims,
  DriverSet,
  ObserveResult,
  ObserveScope,
} from '../resources/driver.js';
import type { DesiredState } from '../model/resources.js';
import type { Exec } from '../util/exec.js';
import type { Reporter } from '../util/reporter.js';
import type { StateStore } from '../util/state.js';
import {
  RESOURCE_KINDS,
  type AnyResource,
  type ForeignObject,
  type ObservedState,
  type ResourceKind,
} from '../model/resources.js';

export async function observeAll(
  drivers: Partial<DriverSet>,
  scope: ObserveScope,
): Promise<ObservedState> {
  const resources: AnyResource[] = [];
  const foreign: ForeignObject[] = [];
  const facts: Record<string, unknown> = {};
  // Concurrent: observations only read, and most of their time is spent waiting for a
  // child process (`nft` alone is ~20-30 ms, walking the cgroup tree to name paths). The
  // results are merged in kind order, so the observed state does not depend on timing; the
  // first failure (in kind order) is the one reported.
  const kinds = RESOURCE_KINDS.filter((k) => drivers[k]);
  const settled = await Promise.allSettled(kinds.map((k) => drivers[k]!.observe(scope)));
  const results: ObserveResult<ResourceKind>[] = [];
  for (const s of settled) {
    if (s.status === 'rejected') throw s.reason;
    results.push(s.value);
  }
  for (const r of results) {
    resources.push(...(r.resources as AnyResource[]));
    foreign.push(...r.foreign);
    Object.assign(facts, r.facts ?? {});
  }
  return { resources, foreign, facts };
}

export interface ReconcileEnv {
  drivers: Partial<DriverSet>;
  claims: Claims;
  state: StateStore;
  exec: Exec;
  reporter: Reporter;
  /** resolved secret values for engine drivers (never logged) */
  secrets?: ReadonlyMap<string, string> | undefined;
  /**
   * The Exec's shared listings (resources/read-pass.ts): `reconcile` runs in one pass, so the
   * drivers' observations, applies and the verify read each listing once until a mutation;
   * `renew` forgets them (a verification retry, a rollback: they look again)
   */
  reads?: { pass<T>(f: () => Promise<T>): Promise<T>; renew(): void } | undefined;
}

/**
 * What the drivers apply with, from the reconcile environment: one conversion for the
 * reconciler, teardown, `awg apply`'s dry-run listing and the daemon's engine adoption. A dry
 * run is the environment's Exec being dry (pipeline/host.ts makes it so for `--dry-run`).
 */
export function applyContextOf(env: ReconcileEnv): ApplyContext {
  return {
    exec: env.exec,
    reporter: env.reporter,
    state: env.state,
    dryRun: env.exec.dryRun,
    claims: env.claims,
    secrets: env.secrets,
  };
}

export function observeWith(env: ReconcileEnv, desired: DesiredState): Promise<ObservedState> {
  return observeAll(env.drivers, { desired, claims: env.claims, state: env.state });
}
