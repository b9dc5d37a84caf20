/** Observe every kind through its driver and merge the results. */
import type { Claims, DriverSet, ObserveScope } from '../resources/driver.js';
import type { DesiredState } from '../model/resources.js';
import type { Exec } from '../util/exec.js';
import type { Reporter } from '../util/reporter.js';
import type { StateStore } from '../util/state.js';
import { RESOURCE_KINDS, type AnyResource, type ForeignObject, type ObservedState } from '../model/resources.js';

export async function observeAll(drivers: Partial<DriverSet>, scope: ObserveScope): Promise<ObservedState> {
  const resources: AnyResource[] = [];
  const foreign: ForeignObject[] = [];
  const facts: Record<string, unknown> = {};
  // Sequential on purpose: drivers spawn tools and the host has 2 cores; order is stable.
  for (const kind of RESOURCE_KINDS) {
    const d = drivers[kind];
    if (!d) continue;
    const r = await d.observe(scope);
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
  secrets?: ReadonlyMap<string, string>;
}

export function observeWith(env: ReconcileEnv, desired: DesiredState): Promise<ObservedState> {
  return observeAll(env.drivers, { desired, claims: env.claims, state: env.state });
}

