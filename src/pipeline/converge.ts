/**
 * The second half: reconcile the host toward a prepared config (observe → plan → apply →
 * verify, rollback or fail-closed; reconciler/) and record what was applied. Used by
 * `awg apply` and every run of the daemon.
 */
import { killSwitchOf } from '../config/schema.js';
import type { ReconcileContext } from '../reconciler/machine.js';
import { reconcile } from '../reconciler/run.js';
import type { ReconcileEnv } from '../reconciler/observe.js';
import type { AppliedRecord, AppliedStore } from './applied.js';
import type { Prepared } from './prepare.js';

export interface ConvergeOptions {
  /** plan only (`apply --dry-run`): nothing changes, nothing is recorded */
  dryRun?: boolean;
  /** the file to record (the daemon records the path it follows); default `p.file` */
  configFile?: string;
}

export async function converge(
  env: ReconcileEnv,
  applied: AppliedStore,
  p: Prepared,
  o: ConvergeOptions = {},
): Promise<ReconcileContext> {
  const dryRun = o.dryRun ?? false;
  const ctx = await reconcile(env, {
    desired: p.desired,
    lastApplied: applied.load()?.resources,
    dryRun,
    failClosed: !dryRun && killSwitchOf(p.config).enabled,
  });
  if (!dryRun && (ctx.outcome === 'converged' || ctx.outcome === 'unchanged')) {
    const owned = await ownedRecords(env);
    applied.save({
      configFile: o.configFile ?? p.file,
      appliedAt: new Date().toISOString(),
      claims: p.claims,
      resources: p.desired.resources,
      outcome: ctx.outcome,
      ...(p.selection ? { selection: p.selection } : {}),
      ...(owned ? { owned } : {}),
    });
  }
  return ctx;
}

/**
 * The drivers' ownership records (Driver.owned) as they stand now that the apply converged. One
 * that cannot be read is left out with a warning: the apply stands, only that fallback is lost.
 */
async function ownedRecords(env: ReconcileEnv): Promise<AppliedRecord['owned']> {
  const out: NonNullable<AppliedRecord['owned']> = {};
  for (const d of Object.values(env.drivers)) {
    if (!d?.owned) continue;
    try {
      const v = await d.owned(env.state);
      if (v !== undefined) out[d.kind] = v;
    } catch (e) {
      env.reporter.report({
        type: 'warning',
        message: `the ${d.kind} driver's ownership record was not copied into the applied record: ${(e as Error).message}`,
      });
    }
  }
  return Object.keys(out).length ? out : undefined;
}
