import { describe, expect, it } from 'vitest';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { executeBestEffort } from '../../../src/reconciler/execute.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import { ProcessExec } from '../../../src/util/exec.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import type { AnyChange } from '../../../src/model/change.js';
import type { RouteSpec } from '../../../src/model/resources.js';
import { ids } from '../../../src/model/identity.js';

const route = (i: number): RouteSpec => ({
  family: 4,
  table: 52001,
  dst: `10.0.${i}.0/24`,
  type: 'unicast',
  dev: 'awg-x',
  metric: 0,
  protocol: 167,
});

describe('executeBestEffort', () => {
  it('keeps batching, and retries a failed batch change by change', async () => {
    const d = createFakeDriverSet();
    const calls: number[] = [];
    const batch = d.route.applyBatch.bind(d.route);
    d.route.applyBatch = async (cs, ctx) => {
      calls.push(cs.length);
      if (cs.length > 1) throw new Error('ip -batch failed');
      return batch(cs, ctx);
    };
    const reporter = new MemoryReporter();
    const changes: AnyChange[] = Array.from({ length: 5 }, (_, i) => ({
      kind: 'route',
      id: ids.route(route(i)),
      action: 'create',
      after: route(i),
      reason: 't',
      cause: 'initial',
    }));
    const r = await executeBestEffort(changes, d, {
      exec: new ProcessExec(reporter),
      reporter,
      state: new MemoryStateStore(),
      dryRun: false,
      claims: DEFAULT_CLAIMS,
    });
    expect(calls[0]).toBe(5);
    expect(r.errors).toEqual([]);
    expect(d.route.objects.size).toBe(5);
  });
  it('continues past a failing change and reports it', async () => {
    const d = createFakeDriverSet();
    d.link.failOn(1);
    const reporter = new MemoryReporter();
    const link = { name: 'awg-x', kind: 'tun' as const, mtu: 1420, up: true };
    const changes: AnyChange[] = [
      {
        kind: 'link',
        id: 'link/awg-x',
        action: 'create',
        after: link,
        reason: 't',
        cause: 'initial',
      },
      {
        kind: 'route',
        id: ids.route(route(1)),
        action: 'create',
        after: route(1),
        reason: 't',
        cause: 'initial',
      },
    ];
    const r = await executeBestEffort(changes, d, {
      exec: new ProcessExec(reporter),
      reporter,
      state: new MemoryStateStore(),
      dryRun: false,
      claims: DEFAULT_CLAIMS,
    });
    expect(r.errors.map((e) => e.message).join()).toContain('injected failure');
    expect(d.route.objects.size).toBe(1);
  });
});
