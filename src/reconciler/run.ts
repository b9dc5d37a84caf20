/**
 * Wires the reconcile machine to real drivers: the production implementations of the
 * observe / apply / rollback actors.
 */
import { createActor, fromPromise, toPromise, type SimulatedClock } from 'xstate';
import { AwgError, toAwgError } from '../errors.js';
import type { AnyChange, Plan } from '../model/change.js';
import type { ObservedState } from '../model/resources.js';
import { CommittedReadBackError } from '../resources/driver.js';
import { executeBestEffort, executeChanges } from './execute.js';
import {
  reconcileMachine,
  type ApplyOutput,
  type ObserveInput,
  type ReconcileContext,
  type ReconcileInput,
  type RollbackInput,
  type RollbackOutput,
} from './machine.js';
import { revert } from './revert.js';
import { killSwitchIds } from './teardown.js';
import { plan as makePlan } from './plan.js';
import { verify } from './verify.js';

export { observeWith, type ReconcileEnv } from './observe.js';
import { applyContextOf, observeWith, type ReconcileEnv } from './observe.js';

/** Execute every change, continuing past failures; returns the errors. */
async function bestEffort(changes: AnyChange[], env: ReconcileEnv): Promise<AwgError[]> {
  return (await executeBestEffort(changes, env.drivers, applyContextOf(env))).errors;
}

export async function rollback(env: ReconcileEnv, input: RollbackInput): Promise<RollbackOutput> {
  env.reporter.report({
    type: 'phase',
    phase: 'rollback',
    detail: input.failClosed
      ? 'kill switch on: ending fail-closed'
      : 'restoring the state observed before apply',
  });
  // what failed may have changed the host without a mutation the shared listings saw
  env.reads?.renew();
  const now = await observeWith(env, input.desired);
  let back: Plan = revert(input.before, now);
  // Fail-closed keeps (or installs) the desired firewall and what it references (the cgroups
  // its rules name): the kill switch must hold while the tunnels are torn down.
  const keep = input.failClosed ? killSwitchIds(input.desired.resources) : new Set<string>();
  const closing = keep.size > 0;
  if (closing) back = { ...back, changes: back.changes.filter((c) => !keep.has(c.id)) };
  const errors = await bestEffort(back.changes, env);
  if (!closing) return { outcome: errors.length ? 'failed' : 'rolled-back', errors };
  const kept = input.desired.resources.filter((r) => keep.has(r.id));
  const after = await observeWith(env, input.desired);
  const fwPlan = makePlan(
    { resources: kept, warnings: [] },
    { resources: after.resources.filter((r) => keep.has(r.id)), foreign: [] },
  );
  const fwErrors = await bestEffort(fwPlan.changes, env);
  errors.push(...fwErrors);
  const final = await observeWith(env, input.desired);
  const left = verify(
    { resources: kept, warnings: [] },
    { resources: final.resources.filter((r) => keep.has(r.id)), foreign: [] },
  ).mismatches;
  // An object this rollback loaded whole that is there but reads back differently holds as
  // loaded (CommittedReadBackError): taking it away, or calling traffic open, would be the
  // fail-open this path exists to prevent.
  const loaded = new Set(
    fwErrors.filter((e) => e instanceof CommittedReadBackError).map((e) => e.id),
  );
  const holds = left.every((m) => m.action !== 'create' && loaded.has(m.id));
  if (!holds) {
    errors.push(
      new AwgError('driver', 'the kill switch could not be installed: traffic is NOT blocked'),
    );
    return { outcome: 'failed', errors };
  }
  return { outcome: 'failed-closed', errors };
}

export function productionMachine(env: ReconcileEnv) {
  return reconcileMachine.provide({
    actors: {
      observe: fromPromise<ObservedState, ObserveInput>(({ input }) => {
        if (input.again) env.reads?.renew();
        return observeWith(env, input.desired);
      }),
      apply: fromPromise<ApplyOutput, { plan: Plan }>(async ({ input, signal }) => {
        env.reporter.report({ type: 'phase', phase: 'apply' });
        const r = await executeChanges(
          input.plan.changes,
          env.drivers,
          applyContextOf(env),
          signal,
        );
        return r.failed
          ? {
              changed: r.changed,
              error: new AwgError(
                r.failed.error.kind,
                `${r.failed.change.id}: ${r.failed.error.message}`,
                { cause: r.failed.error },
              ),
            }
          : { changed: r.changed };
      }),
      rollback: fromPromise<RollbackOutput, RollbackInput>(({ input }) => rollback(env, input)),
    },
  });
}

export async function reconcile(
  env: ReconcileEnv,
  input: ReconcileInput,
  opts: { clock?: SimulatedClock } = {},
): Promise<ReconcileContext> {
  const actor = createActor(productionMachine(env), {
    input,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  const run = async () => {
    actor.start();
    try {
      return await toPromise(actor);
    } catch (e) {
      throw toAwgError(e);
    }
  };
  return env.reads ? env.reads.pass(run) : run();
}
