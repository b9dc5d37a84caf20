/**
 * The daemon loop machine with a simulated clock: state × event → next state, debounce,
 * backoff growth and reset, terminal waits, and that wakes carry no state.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import {
  backoffDelay,
  classifyError,
  loopMachine,
  type LoopInput,
  type RunInput,
  type RunResult,
} from '../../../src/daemon/loop.js';
import type { WakeReason } from '../../../src/daemon/core.js';

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

function harness(input: LoopInput = {}) {
  const clock = new SimulatedClock();
  const calls: RunInput[] = [];
  const waiting: ((r: RunResult) => void)[] = [];
  const machine = loopMachine.provide({
    actors: {
      reconcile: fromPromise<RunResult, RunInput>(({ input: i }) => {
        calls.push(i);
        return new Promise((res) => waiting.push(res));
      }),
    },
  });
  const actor = createActor(machine, { input: { now: () => clock.now(), ...input }, clock });
  actor.start();
  return {
    clock,
    actor,
    calls,
    wake: (reason: WakeReason) => actor.send({ type: 'WAKE', reason }),
    async finish(r: RunResult) {
      const w = waiting.shift();
      if (!w) throw new Error('no run in flight');
      w(r);
      await flush();
    },
    async tick(ms: number) {
      clock.increment(ms);
      await flush();
    },
    state: () => actor.getSnapshot().value,
    ctx: () => actor.getSnapshot().context,
  };
}

describe('loop: state × event → next state', () => {
  const table: {
    from: string;
    setup: (h: ReturnType<typeof harness>) => Promise<void>;
    event: WakeReason | 'STOP';
    to: string;
  }[] = [
    { from: 'idle', setup: async () => {}, event: 'config', to: 'running' },
    { from: 'idle', setup: async () => {}, event: 'api', to: 'running' },
    { from: 'idle', setup: async () => {}, event: 'start', to: 'running' },
    { from: 'idle', setup: async () => {}, event: 'network', to: 'debouncing' },
    { from: 'idle', setup: async () => {}, event: 'engine', to: 'debouncing' },
    { from: 'idle', setup: async () => {}, event: 'STOP', to: 'stopped' },
    {
      from: 'debouncing',
      setup: async (h) => h.wake('network'),
      event: 'network',
      to: 'debouncing',
    },
    { from: 'debouncing', setup: async (h) => h.wake('network'), event: 'config', to: 'running' },
    { from: 'running', setup: async (h) => h.wake('api'), event: 'network', to: 'running' },
    { from: 'running', setup: async (h) => h.wake('api'), event: 'STOP', to: 'stopped' },
    {
      from: 'backoff',
      setup: async (h) => (h.wake('api'), await h.finish('retryable')),
      event: 'network',
      to: 'backoff',
    },
    {
      from: 'backoff',
      setup: async (h) => (h.wake('api'), await h.finish('retryable')),
      event: 'drift-timer',
      to: 'backoff',
    },
    {
      from: 'backoff',
      setup: async (h) => (h.wake('api'), await h.finish('retryable')),
      event: 'config',
      to: 'running',
    },
    {
      from: 'backoff',
      setup: async (h) => (h.wake('api'), await h.finish('retryable')),
      event: 'api',
      to: 'running',
    },
    {
      from: 'blocked',
      setup: async (h) => (h.wake('api'), await h.finish('terminal')),
      event: 'network',
      to: 'blocked',
    },
    {
      from: 'blocked',
      setup: async (h) => (h.wake('api'), await h.finish('terminal')),
      event: 'engine',
      to: 'blocked',
    },
    {
      from: 'blocked',
      setup: async (h) => (h.wake('api'), await h.finish('terminal')),
      event: 'config',
      to: 'running',
    },
    {
      from: 'blocked',
      setup: async (h) => (h.wake('api'), await h.finish('terminal')),
      event: 'api',
      to: 'running',
    },
    {
      from: 'blocked',
      setup: async (h) => (h.wake('api'), await h.finish('terminal')),
      event: 'STOP',
      to: 'stopped',
    },
  ];
  it.each(table)('$from + $event → $to', async ({ from, setup, event, to }) => {
    const h = harness();
    await setup(h);
    expect(h.state()).toBe(from);
    if (event === 'STOP') h.actor.send({ type: 'STOP' });
    else h.wake(event);
    await flush();
    expect(h.state()).toBe(to);
  });

  it('run outcomes: ok → idle, retryable → backoff, terminal → blocked', async () => {
    for (const [r, to] of [
      ['ok', 'idle'],
      ['retryable', 'backoff'],
      ['terminal', 'blocked'],
    ] as const) {
      const h = harness();
      h.wake('config');
      await h.finish(r);
      expect(h.state()).toBe(to);
    }
  });

  it('an actor that throws counts as retryable', async () => {
    const clock = new SimulatedClock();
    const m = loopMachine.provide({
      actors: {
        reconcile: fromPromise<RunResult, RunInput>(async () => Promise.reject(new Error('boom'))),
      },
    });
    const a = createActor(m, { input: { now: () => clock.now() }, clock });
    a.start();
    a.send({ type: 'WAKE', reason: 'api' });
    await flush();
    expect(a.getSnapshot().value).toBe('backoff');
    expect(a.getSnapshot().context.failures).toBe(1);
  });
});

describe('loop: debounce', () => {
  it('network events coalesce into one run after a quiet period', async () => {
    const h = harness({ debounceMs: 250, maxWaitMs: 1000 });
    h.wake('network');
    await h.tick(100);
    h.wake('network');
    await h.tick(100);
    h.wake('engine');
    await h.tick(249);
    expect(h.calls).toHaveLength(0);
    await h.tick(1);
    expect(h.calls).toEqual([{ reason: 'network' }]);
  });

  it('a system signal names the run over the network change it caused, and is debounced too', async () => {
    const h = harness({ debounceMs: 250, maxWaitMs: 1000 });
    h.wake('system');
    await h.tick(50);
    h.wake('network');
    h.wake('engine');
    await h.tick(249);
    expect(h.calls).toHaveLength(0);
    await h.tick(1);
    expect(h.calls).toEqual([{ reason: 'system' }]);
    await h.finish('ok');
    h.wake('network');
    h.wake('system');
    await h.tick(250);
    expect(h.calls.at(-1)).toEqual({ reason: 'system' });
  });

  it('a system signal ends a backoff (the service whose absence failed the run is back)', async () => {
    const h = harness({ backoffBaseMs: 60_000, backoffMaxMs: 60_000, driftMs: 0 });
    h.wake('config');
    await h.finish('retryable');
    expect(h.state()).toBe('backoff');
    h.wake('network');
    await h.tick(1000);
    expect(h.calls).toHaveLength(1);
    h.wake('system');
    await h.tick(0);
    expect(h.calls.at(-1)).toEqual({ reason: 'system' });
  });

  it('a storm of events is capped by maxWaitMs', async () => {
    const h = harness({ debounceMs: 250, maxWaitMs: 600 });
    h.wake('network');
    for (let i = 0; i < 5; i++) {
      await h.tick(100);
      h.wake('network');
    }
    expect(h.calls).toHaveLength(0);
    await h.tick(100);
    expect(h.calls).toHaveLength(1);
  });

  it('a wake during a run causes exactly one more run afterwards', async () => {
    const h = harness({ debounceMs: 250 });
    h.wake('config');
    expect(h.calls).toHaveLength(1);
    h.wake('network');
    h.wake('network');
    h.wake('engine');
    await h.finish('ok');
    expect(h.state()).toBe('debouncing');
    await h.tick(250);
    expect(h.calls).toHaveLength(2);
    await h.finish('ok');
    expect(h.state()).toBe('idle');
    await h.tick(250);
    expect(h.calls).toHaveLength(2);
  });

  it('an API request during a run runs again at once, not after the debounce', async () => {
    const h = harness();
    h.wake('network');
    await h.tick(250);
    h.wake('api');
    await h.finish('ok');
    expect(h.state()).toBe('running');
    expect(h.calls.map((c) => c.reason)).toEqual(['network', 'api']);
  });
});

describe('loop: drift timer', () => {
  it('idle re-observes every driftMs; blocked does not', async () => {
    const h = harness({ driftMs: 30_000 });
    await h.tick(29_999);
    expect(h.calls).toHaveLength(0);
    await h.tick(1);
    expect(h.calls).toEqual([{ reason: 'drift-timer' }]);
    await h.finish('ok');
    await h.tick(30_000);
    expect(h.calls).toHaveLength(2);
    await h.finish('terminal');
    await h.tick(300_000);
    expect(h.calls).toHaveLength(2);
    expect(h.state()).toBe('blocked');
  });

  it('driftMs 0 disables the timer', async () => {
    const h = harness({ driftMs: 0 });
    await h.tick(10 * 60_000);
    expect(h.calls).toHaveLength(0);
  });
});

describe('loop: backoff', () => {
  it('backoffDelay doubles from the base and caps', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 50].map((n) => backoffDelay(n, 1000, 60_000))).toEqual([
      0, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000,
    ]);
  });

  it('retries grow exponentially and success resets the count', async () => {
    const h = harness({ backoffBaseMs: 1000, backoffMaxMs: 4000, driftMs: 0 });
    h.wake('config');
    const gaps: number[] = [];
    for (let i = 0; i < 4; i++) {
      await h.finish('retryable');
      const before = h.calls.length;
      let waited = 0;
      while (h.calls.length === before) {
        await h.tick(100);
        waited += 100;
      }
      gaps.push(waited);
      expect(h.calls.at(-1)).toEqual({ reason: 'retry' });
    }
    expect(gaps).toEqual([1000, 2000, 4000, 4000]);
    expect(h.ctx().failures).toBe(4);
    await h.finish('ok');
    expect(h.ctx().failures).toBe(0);
    expect(h.state()).toBe('idle');
    h.wake('api');
    await h.finish('retryable');
    expect(h.ctx().failures).toBe(1);
    await h.tick(999);
    expect(h.calls.at(-1)).toEqual({ reason: 'api' });
    await h.tick(1);
    expect(h.calls.at(-1)).toEqual({ reason: 'retry' });
  });

  it('a terminal error resets the backoff and waits for a config change', async () => {
    const h = harness({ driftMs: 1000 });
    h.wake('config');
    await h.finish('retryable');
    await h.tick(1000);
    await h.finish('terminal');
    expect(h.state()).toBe('blocked');
    expect(h.ctx().failures).toBe(0);
    h.wake('network');
    await h.tick(60_000);
    expect(h.calls).toHaveLength(2);
    h.wake('config');
    expect(h.calls.at(-1)).toEqual({ reason: 'config' });
  });
});

describe('loop: wakes carry no state', () => {
  it('every run gets only its reason; extra event fields are dropped', async () => {
    const h = harness({ debounceMs: 10 });
    h.actor.send({ type: 'WAKE', reason: 'network', routes: ['0.0.0.0/0'] } as never);
    await h.tick(10);
    await h.finish('ok');
    h.actor.send({ type: 'WAKE', reason: 'config', desired: { resources: [] } } as never);
    await h.finish('ok');
    for (const c of h.calls) expect(Object.keys(c)).toEqual(['reason']);
    expect(JSON.stringify(h.ctx())).not.toContain('0.0.0.0/0');
    expect(JSON.stringify(h.ctx())).not.toContain('resources');
  });
});

describe('classifyError', () => {
  it('driver and verification retry; the rest are terminal', () => {
    expect(classifyError(undefined)).toBe('ok');
    expect(classifyError({ kind: 'driver' })).toBe('retryable');
    expect(classifyError({ kind: 'verification' })).toBe('retryable');
    for (const k of ['invalid-config', 'conflict', 'permission', 'unsupported', 'bug'])
      expect(classifyError({ kind: k })).toBe('terminal');
  });
});
