/**
 * revert(before, after): the plan that takes the system from the state observed after a
 * (partial) apply back to the state observed before it. Pure. Only owned objects are in
 * either observation, so a revert never touches anything foreign; objects that existed
 * before are recreated with their old spec, new ones are deleted.
 */
import type { Plan } from '../model/change.js';
import type { ObservedState } from '../model/resources.js';
import { plan } from './plan.js';

export function revert(before: ObservedState, after: ObservedState): Plan {
  return plan(
    { resources: before.resources, warnings: [] },
    { resources: after.resources, foreign: [] },
  );
}
