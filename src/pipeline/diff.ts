/**
 * Observe + plan: the plan `apply` would execute against the host as it stands, changing
 * nothing. `awg diff` and the daemon's Diff both plan here, so they show the same plan: its
 * "drift or config" causes and its deletions compare with the last applied resources.
 */
import type { Plan } from '../model/change.js';
import type { DesiredState } from '../model/resources.js';
import { observeWith, type ReconcileEnv } from '../reconciler/observe.js';
import { plan } from '../reconciler/plan.js';
import type { AppliedStore } from './applied.js';

export async function observeAndPlan(
  env: ReconcileEnv,
  applied: AppliedStore,
  desired: DesiredState,
): Promise<Plan> {
  const observed = await observeWith(env, desired);
  return plan(desired, observed, { lastApplied: applied.load()?.resources });
}
