/**
 * The real Daemon on the macOS host model, as the model tests run it: no wake sources (the
 * tests wake it), no placer, no drift timer, a long backoff, no health or traffic timers;
 * `o` adds or overrides (its config, platform, drivers or engines, state).
 */
import { Daemon, type DaemonOptions } from '../../../src/daemon/daemon.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';

export function modelDaemon(o: DaemonOptions) {
  const d = new Daemon({
    wakes: false,
    placement: false,
    loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
    healthIntervalMs: 0,
    trafficIntervalMs: 0,
    ...o,
  });
  const events: DaemonEvent[] = [];
  d.subscribe((e) => events.push(e));
  /** the `n`th reconcile-finished event, once it came (undefined after ~10 s) */
  const finished = async (n: number) => {
    for (let i = 0; i < 5000 && events.filter((e) => e.type === 'reconcile-finished').length < n; i++) await new Promise((r) => setTimeout(r, 2));
    return events.filter((e) => e.type === 'reconcile-finished')[n - 1];
  };
  return { d, events, finished };
}
