/**
 * The daemon's level-triggered loop (controller-runtime's rule): wake-ups only enqueue "a
 * reconcile is needed"; they carry a reason for the log, never state. Each run re-observes
 * the whole system (the `reconcile` actor, provided by the daemon).
 *
 *   idle ──WAKE(config|api|start|confirm-timeout)──▶ running
 *   idle ──WAKE(network|engine|system|…)──▶ debouncing ──(quiet for debounceMs, at most maxWaitMs)──▶ running
 *   idle ──(driftMs)──▶ running
 *   running ──ok──▶ idle (backoff reset; a wake during the run → another run)
 *   running ──retryable──▶ backoff ──(base·2^(n-1), capped)──▶ running
 *   running ──terminal──▶ blocked (invalid config, conflict, permission, unsupported, bug):
 *                         only a config change or an API request runs again
 *   any ──STOP──▶ stopped (the daemon awaits a run in flight before tearing down)
 *
 * Machines declare, actors act: the only side effect is the `reconcile` actor; delays come
 * from the actor clock, so tests drive the loop with a SimulatedClock.
 */
import { assign, createActor, fromPromise, setup, type Actor } from 'xstate';
import { AwgError } from '../errors.js';
import type { WakeReason } from './core.js';

/** How a run ended, as far as the loop cares. */
export type RunResult = 'ok' | 'retryable' | 'terminal';

export interface RunInput {
  reason: WakeReason;
}

export interface LoopInput {
  debounceMs?: number;
  /** a storm of events delays a run by at most this much */
  maxWaitMs?: number;
  /** periodic re-observation; 0 disables */
  driftMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** clock for the debounce cap (the actor clock's `now`) */
  now?: () => number;
}

export interface LoopContext {
  debounceMs: number;
  maxWaitMs: number;
  driftMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  now: () => number;
  /** reason of the run about to start / in flight */
  reason: WakeReason;
  /** a wake arrived while running: run again afterwards */
  pending: boolean;
  pendingReason?: WakeReason | undefined;
  /** consecutive retryable failures */
  failures: number;
  debounceStart: number;
  runs: number;
  lastResult?: RunResult;
}

export type LoopEvent = { type: 'WAKE'; reason: WakeReason } | { type: 'STOP' };

export const DEFAULTS = {
  debounceMs: 250,
  maxWaitMs: 1000,
  driftMs: 30_000,
  backoffBaseMs: 1000,
  backoffMaxMs: 60_000,
} as const;

/** Wakes that mean "the user asked": no debounce, and they end a terminal wait. */
export const IMMEDIATE: ReadonlySet<WakeReason> = new Set([
  'start',
  'config',
  'api',
  'confirm-timeout',
  'retry',
]);

export function backoffDelay(failures: number, baseMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 30));
}

/** Error kind → loop result: retryable kinds back off, everything else waits for the user. */
export function classifyError(e: AwgError | { kind: string } | undefined): RunResult {
  if (!e) return 'ok';
  return e.kind === 'driver' || e.kind === 'verification' ? 'retryable' : 'terminal';
}

const isImmediate = ({ event }: { event: LoopEvent }) =>
  event.type === 'WAKE' && IMMEDIATE.has(event.reason);
const reasonOf = ({ event }: { event: LoopEvent }) =>
  (event as Extract<LoopEvent, { type: 'WAKE' }>).reason;

export const loopMachine = setup({
  types: {
    context: {} as LoopContext,
    input: {} as LoopInput,
    events: {} as LoopEvent,
  },
  actors: {
    reconcile: fromPromise<RunResult, RunInput>(async () => {
      throw new AwgError('bug', 'reconcile actor not provided');
    }),
  },
  delays: {
    debounce: ({ context }) =>
      Math.max(
        0,
        Math.min(context.debounceMs, context.debounceStart + context.maxWaitMs - context.now()),
      ),
    drift: ({ context }) => context.driftMs,
    backoff: ({ context }) =>
      backoffDelay(context.failures, context.backoffBaseMs, context.backoffMaxMs),
  },
  guards: {
    immediate: isImmediate,
    driftEnabled: ({ context }) => context.driftMs > 0,
    pendingImmediate: ({ context }) =>
      context.pending &&
      context.pendingReason !== undefined &&
      IMMEDIATE.has(context.pendingReason),
    pending: ({ context }) => context.pending,
  },
}).createMachine({
  id: 'loop',
  context: ({ input }) => ({
    debounceMs: input.debounceMs ?? DEFAULTS.debounceMs,
    maxWaitMs: input.maxWaitMs ?? DEFAULTS.maxWaitMs,
    driftMs: input.driftMs ?? DEFAULTS.driftMs,
    backoffBaseMs: input.backoffBaseMs ?? DEFAULTS.backoffBaseMs,
    backoffMaxMs: input.backoffMaxMs ?? DEFAULTS.backoffMaxMs,
    now: input.now ?? Date.now,
    reason: 'start',
    pending: false,
    failures: 0,
    debounceStart: 0,
    runs: 0,
  }),
  initial: 'idle',
  on: { STOP: '.stopped' },
  states: {
    idle: {
      after: {
        drift: {
          guard: 'driftEnabled',
          target: 'running',
          actions: assign({ reason: 'drift-timer' as const }),
        },
      },
      on: {
        WAKE: [
          { guard: 'immediate', target: 'running', actions: assign({ reason: reasonOf }) },
          {
            target: 'debouncing',
            actions: assign({ reason: reasonOf, debounceStart: ({ context }) => context.now() }),
          },
        ],
      },
    },
    debouncing: {
      after: { debounce: 'running' },
      on: {
        WAKE: [
          { guard: 'immediate', target: 'running', actions: assign({ reason: reasonOf }) },
          // trailing debounce: every event restarts the quiet period (capped by maxWaitMs);
          // the reason only labels the run: a system service's signal names it over the
          // network change it caused (NetworkManager's reconnect also moves addresses), a
          // network change over an engine event
          {
            target: 'debouncing',
            reenter: true,
            actions: assign({
              reason: ({ context, event }) => {
                const r = reasonOf({ event });
                if (r === 'system' || context.reason === 'system') return 'system';
                return r === 'network' ? 'network' : context.reason;
              },
            }),
          },
        ],
      },
    },
    running: {
      entry: assign({
        pending: false,
        pendingReason: undefined,
        runs: ({ context }) => context.runs + 1,
      }),
      invoke: {
        src: 'reconcile',
        input: ({ context }) => ({ reason: context.reason }),
        onDone: [
          {
            guard: ({ event }) => event.output === 'retryable',
            target: 'backoff',
            actions: assign({
              failures: ({ context }) => context.failures + 1,
              lastResult: 'retryable' as const,
            }),
          },
          {
            guard: ({ event }) => event.output === 'terminal',
            target: 'blocked',
            actions: assign({ failures: 0, lastResult: 'terminal' as const }),
          },
          {
            guard: 'pendingImmediate',
            target: 'running',
            reenter: true,
            actions: assign({
              failures: 0,
              lastResult: 'ok' as const,
              reason: ({ context }) => context.pendingReason!,
            }),
          },
          {
            guard: 'pending',
            target: 'debouncing',
            actions: assign({
              failures: 0,
              lastResult: 'ok' as const,
              reason: ({ context }) => context.pendingReason!,
              debounceStart: ({ context }) => context.now(),
            }),
          },
          { target: 'idle', actions: assign({ failures: 0, lastResult: 'ok' as const }) },
        ],
        onError: {
          target: 'backoff',
          actions: assign({
            failures: ({ context }) => context.failures + 1,
            lastResult: 'retryable' as const,
          }),
        },
      },
      on: {
        WAKE: {
          actions: assign({
            pending: true,
            pendingReason: ({ context, event }) =>
              context.pendingReason && IMMEDIATE.has(context.pendingReason)
                ? context.pendingReason
                : event.reason,
          }),
        },
      },
    },
    backoff: {
      after: { backoff: { target: 'running', actions: assign({ reason: 'retry' as const }) } },
      on: {
        // a retry re-observes anyway: only the user's own requests skip the wait, and a system
        // service that came back (resolved's return ends the failure that put us here)
        WAKE: {
          guard: ({ event }) =>
            event.reason === 'system' ||
            event.reason === 'config' ||
            event.reason === 'api' ||
            event.reason === 'confirm-timeout',
          target: 'running',
          actions: assign({ reason: reasonOf }),
        },
      },
    },
    blocked: {
      on: {
        WAKE: {
          guard: ({ event }) =>
            event.reason === 'config' ||
            event.reason === 'api' ||
            event.reason === 'confirm-timeout',
          target: 'running',
          actions: assign({ reason: reasonOf }),
        },
      },
    },
    stopped: { type: 'final' },
  },
});

/** Start the loop whose `reconcile` actor is `run` (the daemon's run, on its queue). */
export function startLoop(
  input: LoopInput,
  run: (reason: WakeReason) => Promise<RunResult>,
): Actor<typeof loopMachine> {
  const machine = loopMachine.provide({
    actors: {
      reconcile: fromPromise<RunResult, RunInput>(({ input }) => run(input.reason)),
    },
  });
  const loop = createActor(machine, { input });
  loop.start();
  return loop;
}
