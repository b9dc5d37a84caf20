/** verify(desired, observed): what still differs after an apply. Pure. */
import type { AnyChange } from '../model/change.js';
import type { DesiredState, ObservedState } from '../model/resources.js';
import { plan } from './plan.js';

export interface VerifyResult {
  ok: boolean;
  mismatches: AnyChange[];
}

export function verify(desired: DesiredState, observed: ObservedState): VerifyResult {
  const mismatches = plan(desired, observed).changes.filter((c) => c.action !== 'noop');
  return { ok: mismatches.length === 0, mismatches };
}
