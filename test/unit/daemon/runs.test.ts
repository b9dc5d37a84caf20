/**
 * Run bookkeeping without a daemon: what a run says (reconcile-started, drift, restored
 * objects, reconcile-finished, error), what it leaves for status (last run, last converged,
 * plan changes, what was observed), the echo window after a run or teardown, and the settling
 * of memory once runs stop.
 */
import { describe, expect, it, vi } from 'vitest';
import { AwgError } from '../../../src/errors.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { applyResponse, ECHO_MS, RunBook } from '../../../src/daemon/runs.js';
import type { Action, AnyChange, Cause, Plan } from '../../../src/model/change.js';
import type { ObservedState } from '../../../src/model/resources.js';
import { MemoryReporter } from '../../../src/util/reporter.js';

const change = (id: string, action: Action, cause: Cause): AnyChange =>
  ({ kind: 'route', id, action, cause, reason: 'differs' }) as AnyChange;
const planOf = (...changes: AnyChange[]): Plan => ({ changes, foreign: [], warnings: [] });
const observed = (...ids: string[]): ObservedState => ({
  resources: ids.map((id) => ({ kind: 'route', id, spec: {} }) as never),
  foreign: [],
});

function book(o: { settle?: () => void; settleAfterMs?: number } = {}) {
  const events: DaemonEvent[] = [];
  const reporter = new MemoryReporter();
  const runs = new RunBook({
    emit: (e) => events.push(e),
    reporter,
    settle: o.settle ?? (() => {}),
    settleAfterMs: o.settleAfterMs ?? 60_000,
  });
  return { runs, events, reporter };
}

describe('run bookkeeping', () => {
  it('a run under way: started event, running for its reason, our changes echo', () => {
    const { runs, events } = book();
    expect(runs.running).toBe(false);
    expect(runs.runningFor).toBeUndefined();
    expect(runs.isEcho()).toBe(false);
    runs.begin('network');
    expect(events).toEqual([
      { type: 'reconcile-started', at: expect.any(String), reason: 'network' },
    ]);
    expect(runs.running).toBe(true);
    expect(runs.runningFor).toBe('network');
    expect(runs.isEcho()).toBe(true);
    runs.end();
    expect(runs.running).toBe(false);
    expect(runs.runningFor).toBeUndefined();
    // the echo window stays open a while after the run
    expect(runs.isEcho()).toBe(true);
    runs.close();
  });

  it('a converged run that repaired drift: drift event, restored objects logged, the last run recorded', () => {
    const { runs, events, reporter } = book();
    runs.begin('drift-timer');
    const r = runs.finished(
      {
        outcome: 'converged',
        plan: planOf(
          change('route/a', 'create', 'drift'),
          change('route/b', 'create', 'drift'),
          change('route/c', 'update', 'config'),
          change('route/d', 'noop', 'config'),
        ),
        before: observed('route/x'),
        after: observed('route/a', 'route/b', 'route/c'),
      },
      new Set(['route/b']),
      '/etc/awg/awg.yaml',
    );
    runs.end();
    runs.close();
    expect(r).toMatchObject({ outcome: 'converged', error: undefined });
    expect(events.map((e) => e.type)).toEqual(['reconcile-started', 'drift', 'reconcile-finished']);
    // route/b was removed by the last stop on purpose: restored, not drift
    expect(events[1]).toEqual({
      type: 'drift',
      at: expect.any(String),
      ids: ['route/a'],
      repaired: true,
    });
    expect(
      reporter.events.some((e) => e.type === 'info' && /restored 1 object/.test(e.message)),
    ).toBe(true);
    expect(events[2]).toMatchObject({
      reason: 'drift-timer',
      outcome: 'converged',
      summary: { create: 2, update: 1, replace: 0, delete: 0, drift: 2, config: 1 },
    });
    expect(events[2]).not.toHaveProperty('error');
    expect(runs.lastRun).toMatchObject({ outcome: 'converged', reason: 'drift-timer' });
    expect(runs.lastRun).not.toHaveProperty('error');
    expect(runs.lastConverged).toEqual(expect.any(String));
    expect(runs.lastPlanChanges).toBe(3);
    expect(runs.observed?.resources.map((x) => x.id)).toEqual(['route/a', 'route/b', 'route/c']);
  });

  it('a run that did not converge without an error of its own gets one; the last converged stays', () => {
    const { runs, events } = book();
    runs.begin('api');
    runs.finished({ outcome: 'unchanged', plan: planOf() }, new Set(), 'f');
    const converged = runs.lastConverged;
    runs.end();
    runs.begin('retry');
    const r = runs.finished(
      {
        outcome: 'rolled-back',
        plan: planOf(change('route/a', 'delete', 'drift')),
        before: observed(),
      },
      new Set(),
      'f',
    );
    runs.end();
    runs.close();
    expect(r.error).toMatchObject({ kind: 'driver', message: 'reconcile ended rolled-back' });
    expect(events.filter((e) => e.type === 'drift')).toEqual([
      { type: 'drift', at: expect.any(String), ids: ['route/a'], repaired: false },
    ]);
    expect(events.at(-1)).toMatchObject({ type: 'error', kind: 'driver' });
    expect(runs.lastRun).toMatchObject({
      outcome: 'rolled-back',
      reason: 'retry',
      error: { kind: 'driver', message: 'reconcile ended rolled-back' },
    });
    expect(runs.lastConverged).toBe(converged);
    // without `after`, what the run saw before it
    expect(runs.observed).toEqual(observed());
  });

  it('a run that threw: failed, with no changes counted', () => {
    const { runs, events } = book();
    runs.begin('start');
    const r = runs.failed(new AwgError('permission', 'no root'));
    runs.end();
    runs.close();
    expect(r).toMatchObject({ outcome: 'failed', error: { kind: 'permission' } });
    expect(events.slice(1)).toEqual([
      {
        type: 'reconcile-finished',
        at: expect.any(String),
        reason: 'start',
        outcome: 'failed',
        durationMs: expect.any(Number),
        summary: { create: 0, update: 0, replace: 0, delete: 0, drift: 0, config: 0 },
        error: { kind: 'permission', message: 'no root' },
      },
      { type: 'error', at: expect.any(String), kind: 'permission', message: 'no root' },
    ]);
    expect(runs.lastRun).toMatchObject({ outcome: 'failed', reason: 'start' });
  });

  it('a config that cannot be read before any good one: a failed last run, no events', () => {
    const { runs, events } = book();
    runs.refused('config', new AwgError('invalid-config', 'awg.yaml: invalid'));
    expect(events).toEqual([]);
    expect(runs.lastRun).toEqual({
      at: expect.any(String),
      outcome: 'failed',
      durationMs: 0,
      reason: 'config',
      error: { kind: 'invalid-config', message: 'awg.yaml: invalid' },
    });
  });

  it('a teardown: running (status says reconciling for the API), no events, what it left observed', async () => {
    const { runs, events } = book();
    let during: unknown;
    const r = await runs.teardown(async () => {
      during = { running: runs.running, for: runs.runningFor, echo: runs.isEcho() };
      return { after: observed('firewall/awg').resources, removed: ['route/a'] };
    });
    expect(during).toEqual({ running: true, for: 'api', echo: true });
    expect(r.removed).toEqual(['route/a']);
    expect(runs.running).toBe(false);
    expect(runs.isEcho()).toBe(true);
    expect(runs.observed).toEqual(observed('firewall/awg'));
    expect(events).toEqual([]);
    // a teardown that throws ends all the same
    await expect(
      runs.teardown(() => Promise.reject(new AwgError('driver', 'nft failed'))),
    ).rejects.toThrow('nft failed');
    expect(runs.running).toBe(false);
  });

  it('the echo window closes ECHO_MS after the run', () => {
    // on a fake Date: the window is measured by Date.now(), and on the real one a loaded
    // machine could let ECHO_MS pass between the run's end and the first look
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const { runs } = book();
      runs.begin('api');
      runs.end();
      runs.close();
      expect(runs.isEcho()).toBe(true);
      vi.advanceTimersByTime(ECHO_MS - 1);
      expect(runs.isEcho()).toBe(true);
      vi.advanceTimersByTime(1);
      expect(runs.isEcho()).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('memory settles once after runs stop; not after close', async () => {
    let settled = 0;
    const { runs } = book({ settle: () => settled++, settleAfterMs: 5 });
    runs.begin('api');
    runs.end();
    runs.begin('api');
    runs.end();
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).toBe(1);
    runs.begin('api');
    runs.end();
    runs.close();
    await new Promise((r) => setTimeout(r, 30));
    expect(settled).toBe(1);
  });

  it("an API apply's answer: outcome, plan document, mutations, error", () => {
    expect(
      applyResponse('/c.yaml', { outcome: 'failed', error: new AwgError('bug', 'x') }, 0),
    ).toEqual({
      outcome: 'failed',
      plan: expect.objectContaining({ config: '/c.yaml', changes: [] }),
      mutations: 0,
      error: { kind: 'bug', message: 'x' },
    });
    const ok = applyResponse(
      '/c.yaml',
      { outcome: 'converged', plan: planOf(change('route/a', 'create', 'initial')) },
      3,
    );
    expect(ok).toMatchObject({ outcome: 'converged', mutations: 3, error: undefined });
    expect(ok.plan.summary.create).toBe(1);
  });
});
