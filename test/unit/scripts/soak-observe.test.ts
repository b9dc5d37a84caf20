import { describe, expect, it } from 'vitest';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { Observer } from '../../netns/soak-observe.js';

const at = '2026-01-01T00:00:00.000Z';
const started = { type: 'reconcile-started', at, reason: 'config' } as DaemonEvent;
const finished = {
  type: 'reconcile-finished',
  at,
  reason: 'config',
  outcome: 'converged',
  durationMs: 1,
} as DaemonEvent;
const tunnel = (state: string) => ({ type: 'tunnel', at, tunnel: 'vpn', state }) as DaemonEvent;
const run = (o: Observer) => {
  o.onEvent(started);
  o.onEvent(finished);
};

describe('soak Observer.plannedWith (object samples keyed by the health the plan saw)', () => {
  it('a transition before the run before the last finished: the last run planned with it', () => {
    const o = new Observer();
    o.onEvent(tunnel('up'));
    run(o);
    run(o);
    expect(o.plannedWith(new Map([['vpn', 'up']]))).toBe(true);
  });

  it('a transition during the last run: its plan may predate it (skip)', () => {
    const o = new Observer();
    o.onEvent(tunnel('up'));
    run(o);
    o.onEvent(started);
    o.onEvent(tunnel('down'));
    o.onEvent(finished);
    expect(o.plannedWith(new Map([['vpn', 'down']]))).toBe(false);
    // the run it woke plans with it
    run(o);
    expect(o.plannedWith(new Map([['vpn', 'down']]))).toBe(true);
  });

  it('a transition between two runs: the next run may have prepared before it (skip)', () => {
    const o = new Observer();
    run(o);
    o.onEvent(tunnel('down'));
    run(o);
    expect(o.plannedWith(new Map([['vpn', 'down']]))).toBe(false);
    run(o);
    expect(o.plannedWith(new Map([['vpn', 'down']]))).toBe(true);
  });

  it('a transition after the last run: the status is ahead of the table (skip)', () => {
    const o = new Observer();
    o.onEvent(tunnel('up'));
    run(o);
    run(o);
    o.onEvent(tunnel('down'));
    expect(o.plannedWith(new Map([['vpn', 'down']]))).toBe(false);
  });

  it('a status ahead of the events (its transition not seen yet): skip', () => {
    const o = new Observer();
    o.onEvent(tunnel('up'));
    run(o);
    run(o);
    expect(o.plannedWith(new Map([['vpn', 'down']]))).toBe(false);
    // no event yet: a tunnel still connecting
    expect(new Observer().plannedWith(new Map([['vpn', 'connecting']]))).toBe(true);
  });

  it('the health before the stream began comes from a status; an event seen wins', () => {
    const o = new Observer();
    o.seedHealth([['vpn', 'up']]);
    run(o);
    run(o);
    expect(o.plannedWith(new Map([['vpn', 'up']]))).toBe(true);
    const p = new Observer();
    p.onEvent(tunnel('down'));
    p.seedHealth([['vpn', 'up']]);
    expect(p.health.get('vpn')).toBe('down');
  });
});
