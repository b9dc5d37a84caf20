/**
 * One reconcile run as an XState v5 machine: observe → plan → apply → verify (bounded
 * retries) → converged | rolled-back | failed-closed | failed.
 *
 * The machine declares; actors act. Every side effect is a `fromPromise` actor (observe,
 * apply, rollback) that tests replace with `.provide()`; delays use the actor clock so a
 * SimulatedClock drives verification retries in tests.
 */
import { assign, fromPromise, setup } from 'xstate';
import { AwgError, toAwgError } from '../errors.js';
import { hasChanges, type Plan } from '../model/change.js';
import type {
  AnyResource,
  DesiredState,
  ForeignObject,
  ObservedState,
} from '../model/resources.js';
import { plan as makePlan } from './plan.js';
import { verify } from './verify.js';

export type Outcome =
  'unchanged' | 'planned' | 'converged' | 'rolled-back' | 'failed-closed' | 'failed';

/** what the observe actor is given; `again`: a verification retry (shared listings are read afresh) */
export interface ObserveInput {
  desired: DesiredState;
  again?: boolean;
}

export interface ReconcileInput {
  desired: DesiredState;
  lastApplied?: AnyResource[] | undefined;
  dryRun: boolean;
  /** kill switch on: a failure must end fail-closed, never open */
  failClosed: boolean;
  verifyRetries?: number;
  verifyDelayMs?: number;
}

export interface ApplyOutput {
  changed: number;
  error?: AwgError;
}

export interface RollbackInput {
  before: ObservedState;
  desired: DesiredState;
  failClosed: boolean;
}

export interface RollbackOutput {
  /** `failed`: neither the prior state nor the kill switch could be restored (traffic may flow) */
  outcome: 'rolled-back' | 'failed-closed' | 'failed';
  errors: AwgError[];
}

export interface ReconcileContext extends ReconcileInput {
  before?: ObservedState;
  after?: ObservedState;
  plan?: Plan;
  changed: number;
  verifyAttempts: number;
  error?: AwgError;
  rollbackErrors: AwgError[];
  outcome?: Outcome;
}

/**
 * The conflicts that stop a run before its first mutation: objects with a desired identity
 * that are not ours, and anything another awg state directory made (ForeignObject.owner).
 */
export function blocking(desired: DesiredState, observed: ObservedState | undefined) {
  const ids = new Set(desired.resources.map((r) => r.id));
  return (observed?.foreign ?? []).filter(
    (f) => f.relation === 'conflict' && (ids.has(f.id) || f.owner !== undefined),
  );
}

export function conflictError(c: readonly ForeignObject[]): AwgError {
  const other = c.some((f) => f.owner !== undefined);
  return new AwgError(
    'conflict',
    `refusing to ${other ? 'act on objects another awg state directory made' : 'adopt objects awg does not own'}: ${c.map((f) => `${f.id} (${f.description})`).join('; ')}`,
    {
      hint: other
        ? 'run awg with that state directory (--state-dir), or remove its objects with `awg down --state-dir DIR` first'
        : 'remove or rename them, or change the tunnel name / routing band',
    },
  );
}

export const reconcileMachine = setup({
  types: {
    context: {} as ReconcileContext,
    input: {} as ReconcileInput,
    output: {} as ReconcileContext,
  },
  actors: {
    observe: fromPromise<ObservedState, ObserveInput>(async () => {
      throw new AwgError('bug', 'observe actor not provided');
    }),
    apply: fromPromise<ApplyOutput, { plan: Plan }>(async () => {
      throw new AwgError('bug', 'apply actor not provided');
    }),
    rollback: fromPromise<RollbackOutput, RollbackInput>(async () => {
      throw new AwgError('bug', 'rollback actor not provided');
    }),
  },
  delays: {
    verifyDelay: ({ context }) => context.verifyDelayMs ?? 200,
  },
  guards: {
    hasConflict: ({ context }) => blocking(context.desired, context.before).length > 0,
    noChanges: ({ context }) => !hasChanges(context.plan!),
    isDryRun: ({ context }) => context.dryRun,
    verified: ({ context }) => verify(context.desired, context.after!).ok,
    canRetryVerify: ({ context }) => context.verifyAttempts < (context.verifyRetries ?? 3),
  },
}).createMachine({
  id: 'reconcile',
  context: ({ input }) => ({ ...input, changed: 0, verifyAttempts: 0, rollbackErrors: [] }),
  initial: 'observing',
  output: ({ context }) => context,
  states: {
    observing: {
      invoke: {
        src: 'observe',
        input: ({ context }) => ({ desired: context.desired }),
        onDone: { target: 'planning', actions: assign({ before: ({ event }) => event.output }) },
        onError: {
          target: 'failed',
          actions: assign({ error: ({ event }) => toAwgError(event.error, 'driver') }),
        },
      },
    },
    planning: {
      entry: assign({
        plan: ({ context }) =>
          makePlan(context.desired, context.before!, { lastApplied: context.lastApplied }),
      }),
      always: [
        {
          guard: 'hasConflict',
          target: 'failed',
          actions: assign({
            error: ({ context }) => conflictError(blocking(context.desired, context.before)),
          }),
        },
        { guard: 'noChanges', target: 'done', actions: assign({ outcome: 'unchanged' as const }) },
        { guard: 'isDryRun', target: 'done', actions: assign({ outcome: 'planned' as const }) },
        { target: 'applying' },
      ],
    },
    applying: {
      invoke: {
        src: 'apply',
        input: ({ context }) => ({ plan: context.plan! }),
        onDone: [
          {
            guard: ({ event }) => event.output.error !== undefined,
            target: 'rollingBack',
            actions: assign({
              changed: ({ event }) => event.output.changed,
              error: ({ event }) => event.output.error,
            }),
          },
          {
            target: 'verifying',
            actions: assign({ changed: ({ event }) => event.output.changed }),
          },
        ],
        onError: {
          target: 'rollingBack',
          actions: assign({ error: ({ event }) => toAwgError(event.error, 'driver') }),
        },
      },
    },
    verifying: {
      invoke: {
        src: 'observe',
        // a retry looks again: what it waits for may have changed without a mutation of ours
        input: ({ context }) => ({ desired: context.desired, again: context.verifyAttempts > 0 }),
        onDone: {
          target: 'checking',
          actions: assign({
            after: ({ event }) => event.output,
            verifyAttempts: ({ context }) => context.verifyAttempts + 1,
          }),
        },
        onError: {
          target: 'rollingBack',
          actions: assign({ error: ({ event }) => toAwgError(event.error, 'driver') }),
        },
      },
    },
    checking: {
      always: [
        { guard: 'verified', target: 'done', actions: assign({ outcome: 'converged' as const }) },
        { guard: 'canRetryVerify', target: 'waitingToVerify' },
        {
          target: 'rollingBack',
          actions: assign({
            error: ({ context }) => {
              const m = verify(context.desired, context.after!).mismatches;
              return new AwgError(
                'verification',
                `after apply the system still differs: ${m.map((c) => `${c.id} (${c.reason})`).join('; ')}`,
              );
            },
          }),
        },
      ],
    },
    waitingToVerify: { after: { verifyDelay: 'verifying' } },
    rollingBack: {
      invoke: {
        src: 'rollback',
        input: ({ context }) => ({
          before: context.before!,
          desired: context.desired,
          failClosed: context.failClosed,
        }),
        onDone: {
          target: 'done',
          actions: assign({
            outcome: ({ event }) => event.output.outcome,
            rollbackErrors: ({ event }) => event.output.errors,
          }),
        },
        onError: {
          target: 'done',
          actions: assign({
            outcome: 'failed-closed' as const,
            rollbackErrors: ({ event }) => [toAwgError(event.error, 'driver')],
          }),
        },
      },
    },
    failed: { type: 'final', entry: assign({ outcome: 'failed' as const }) },
    done: { type: 'final' },
  },
});
