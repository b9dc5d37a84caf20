import { AwgError, toAwgError } from '../../errors.js';
import { killSwitchOf } from '../../config/schema.js';
import { executeChanges } from '../../reconciler/execute.js';
import { reconcile } from '../../reconciler/run.js';
import { toPlanDocument } from '../../model/plan-document.js';
import { prepare } from '../app.js';
import { APPLIED_KEY, hostEnv, type AppliedRecord } from '../env.js';
import { JsonReporter, printError, printIssues, TextReporter, type Io } from '../output.js';
import { renderPlan } from '../render-plan.js';
import { hostFacts } from './host.js';

export interface ApplyOptions {
  file: string;
  dryRun?: boolean;
  json?: boolean;
  stateDir?: string;
  verbose?: boolean;
}

/**
 * Converge the host. Everything is validated before anything is touched; the reconcile
 * machine verifies after applying and rolls back (or ends fail-closed) on failure.
 */
export async function applyCommand(io: Io, o: ApplyOptions): Promise<number> {
  const r = await prepare(o.file, { probeFacts: hostFacts });
  if (!r.ok) {
    printIssues(io, r.issues);
    io.err(`${o.file}: invalid configuration; nothing was applied\n`);
    return 1;
  }
  const p = r.prepared;
  printIssues(io, p.issues);
  const reporter = o.json ? new JsonReporter(io) : new TextReporter(io, o.verbose);
  const env = hostEnv({ stateDir: o.stateDir, dryRun: o.dryRun, reporter, claims: p.claims, secrets: p.secrets });
  try {
    const last = env.state.get<AppliedRecord>(APPLIED_KEY);
    const ctx = await reconcile(env, { desired: p.desired, lastApplied: last?.resources, dryRun: Boolean(o.dryRun), failClosed: killSwitchOf(p.config).enabled });
    if (ctx.plan && !o.json && ctx.outcome !== 'unchanged') io.err(renderPlan(ctx.plan, { colour: io.colour }));
    if (ctx.outcome === 'planned' && ctx.plan) await executeChanges(ctx.plan.changes, env.drivers, { exec: env.exec, reporter, state: env.state, dryRun: true, claims: env.claims, secrets: env.secrets });
    if (ctx.outcome === 'converged' || ctx.outcome === 'unchanged') {
      const rec: AppliedRecord = { configFile: o.file, appliedAt: new Date().toISOString(), claims: p.claims, resources: p.desired.resources, outcome: ctx.outcome };
      env.state.set(APPLIED_KEY, rec);
    }
    const summary = { outcome: ctx.outcome, mutations: env.exec.mutations, changed: ctx.changed, error: ctx.error ? { kind: ctx.error.kind, message: ctx.error.message } : undefined, rollbackErrors: ctx.rollbackErrors.map((e) => e.message), plan: ctx.plan ? toPlanDocument(ctx.plan, o.file) : undefined };
    if (o.json) io.out(JSON.stringify(summary, null, 2) + '\n');
    switch (ctx.outcome) {
      case 'unchanged':
        if (!o.json) io.out('No changes. The system matches the configuration.\n');
        return 0;
      case 'planned':
        if (!o.json) io.out('Dry run: nothing was changed.\n');
        return 0;
      case 'converged':
        if (!o.json) io.out(`Applied: ${ctx.changed} change(s), ${env.exec.mutations} mutation(s); verified.\n`);
        return 0;
      default: {
        const err = ctx.error ?? new AwgError('bug', `apply ended ${ctx.outcome}`);
        printError(io, err);
        for (const e of ctx.rollbackErrors) io.err(`awg: rollback error: ${e.message}\n`);
        if (ctx.outcome === 'rolled-back') io.err('awg: the host was returned to its state before this apply.\n');
        if (ctx.outcome === 'failed-closed') io.err('awg: apply failed; traffic is blocked (fail-closed) until a successful apply or `awg down`.\n');
        if (ctx.outcome === 'failed' && ctx.rollbackErrors.length) io.err('awg: apply failed and could not be rolled back; run `awg status` and `awg down`.\n');
        return err.exitCode;
      }
    }
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}
