/** Build the reconcile environment for this host (drivers, state, exec, reporter). */
import { ProcessExec, type Exec } from '../util/exec.js';
import type { Reporter } from '../util/reporter.js';
import { DEFAULT_STATE_DIR, FileStateStore, type StateStore } from '../util/state.js';
import { createDrivers } from '../resources/registry.js';
import type { Claims } from '../resources/driver.js';
import type { ReconcileEnv } from '../reconciler/run.js';

export function stateDirFrom(opt?: string): string {
  return opt ?? process.env.AWG_STATE_DIR ?? DEFAULT_STATE_DIR;
}

export function hostEnv(opts: { stateDir?: string; dryRun?: boolean; reporter: Reporter; claims: Claims; state?: StateStore; secrets?: ReadonlyMap<string, string>; exec?: Exec }): ReconcileEnv {
  const exec = opts.exec ?? new ProcessExec(opts.reporter, opts.dryRun ?? false);
  return {
    drivers: createDrivers({ exec }),
    claims: opts.claims,
    state: opts.state ?? new FileStateStore(stateDirFrom(opts.stateDir)),
    exec,
    reporter: opts.reporter,
    secrets: opts.secrets,
  };
}

/** What `apply` records for later runs (`diff` drift detection, `down`, `status`). */
export interface AppliedRecord {
  configFile: string;
  appliedAt: string;
  claims: Claims;
  resources: import('../model/resources.js').AnyResource[];
  outcome: string;
}

export const APPLIED_KEY = 'applied';
