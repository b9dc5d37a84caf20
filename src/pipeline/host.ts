/** The reconcile environment for this host: its platform's drivers, the state directory, the Exec and reporter. */
import type { ReconcileEnv } from '../reconciler/observe.js';
import type { Claims } from '../resources/driver.js';
import { observeListings, type Platform } from '../resources/registry.js';
import { ReadPassExec } from '../resources/read-pass.js';
import { DryExec, ProcessExec, type Exec } from '../util/exec.js';
import type { Reporter } from '../util/reporter.js';
import {
  DEFAULT_STATE_DIR,
  describeCorrupt,
  FileStateStore,
  type StateStore,
} from '../util/state.js';
import { AppliedStore } from './applied.js';

/** `--state-dir`, else $AWG_STATE_DIR, else /var/lib/awg */
export function stateDirFrom(opt?: string, env: NodeJS.ProcessEnv = process.env): string {
  return opt ?? env.AWG_STATE_DIR ?? DEFAULT_STATE_DIR;
}

export interface HostEnvOptions {
  platform: Platform;
  reporter: Reporter;
  claims: Claims;
  stateDir?: string | undefined;
  state?: StateStore;
  dryRun?: boolean | undefined;
  secrets?: ReadonlyMap<string, string>;
  exec?: Exec | undefined;
  env?: NodeJS.ProcessEnv;
}

export interface HostEnv extends ReconcileEnv {
  applied: AppliedStore;
}

export async function hostEnv(o: HostEnvOptions): Promise<HostEnv> {
  const base = o.exec
    ? o.dryRun && !o.exec.dryRun
      ? new DryExec(o.exec, o.reporter)
      : o.exec
    : new ProcessExec(o.reporter, o.dryRun ?? false);
  // the observation's listings, one run per reconcile pass (reconciler/run.ts opens it)
  const exec = new ReadPassExec(base, observeListings(o.platform.os));
  // an unusable record is moved aside and becomes a warning, never a crash (util/state.ts)
  const state =
    o.state ??
    new FileStateStore(stateDirFrom(o.stateDir, o.env), {
      onCorrupt: (c) => o.reporter.report({ type: 'warning', message: describeCorrupt(c) }),
    });
  return {
    drivers: await o.platform.drivers({ exec, ...(o.env ? { env: o.env } : {}) }),
    claims: o.claims,
    state,
    applied: new AppliedStore(state),
    exec,
    reads: exec,
    reporter: o.reporter,
    secrets: o.secrets,
  };
}
