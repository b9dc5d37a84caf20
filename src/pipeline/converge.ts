/**
 * The second half: reconcile the host toward a prepared config (observe → plan → apply →
 * verify, rollback or fail-closed; reconciler/) and record what was applied. Used by
 * `awg apply` and every run of the daemon.
 */
import { killSwitchOf } from '../config/schema.js';
import type { ReconcileContext } from '../reconciler/machine.js';
import { reconcile } from '../reconciler/run.js';
import type { ReconcileEnv } from '../reconciler/observe.js';
import type { AppliedStore } from './applied.js';
import type { Prepared } from './prepare.js';

export interface ConvergeOptions {
  /** plan only (`apply --dry-run`): nothing changes, nothing is recorded */
  dryRun?: boolean;
  /** the file to record (the daemon records the path it follows); default `p.file` */
  configFile?: string;
}

export async function converge(env: ReconcileEnv, applied: AppliedStore, p: Prepared, o: ConvergeOptions = {}): Promise<ReconcileContext> {
  const dryRun = o.dryRun ?? false;
  const ctx = await reconcile(env, { desired: p.desired, lastApplied: applied.load()?.resources, dryRun, failClosed: !dryRun && killSwitchOf(p.config).enabled });
  if (!dryRun && (ctx.outcome === 'converged' || ctx.outcome === 'unchanged')) {
    applied.save({ configFile: o.configFile ?? p.file, appliedAt: new Date().toISOString(), claims: p.claims, resources: p.desired.resources, outcome: ctx.outcome, ...(p.selection ? { selection: p.selection } : {}) });
  }
  return ctx;
}
