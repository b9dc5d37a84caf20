import { describe, expect, it } from 'vitest';
import type { RouteSpec } from '../../../../src/model/resources.js';
import { ids } from '../../../../src/model/identity.js';
import { FakeRouteDriver } from '../../../../src/resources/route/driver.fake.js';
import type { ApplyContext, Claims } from '../../../../src/resources/driver.js';
import { ProcessExec } from '../../../../src/util/exec.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';

const claims: Claims = {
  routeProtocol: 167,
  tableBase: 52000,
  bandSize: 100,
  rulePriority: 5200,
  fwmarkMask: 0x0f000000,
  nftTable: 'awg',
  linkPrefix: 'awg-',
  cgroupRoot: 'awg',
};
function ctx(dryRun = false): ApplyContext {
  const reporter = new MemoryReporter();
  return {
    exec: new ProcessExec(reporter, dryRun),
    reporter,
    state: new MemoryStateStore(),
    dryRun,
    claims,
  };
}
const r: RouteSpec = {
  family: 4,
  table: 52000,
  dst: '0.0.0.0/0',
  type: 'unicast',
  dev: 'awg-a',
  metric: 0,
  protocol: 167,
};
const scope = { desired: { resources: [], warnings: [] }, claims, state: new MemoryStateStore() };

describe('FakeRouteDriver', () => {
  it('is idempotent and counts mutations', async () => {
    const d = new FakeRouteDriver();
    const c = ctx();
    const ch = {
      kind: 'route' as const,
      id: ids.route(r),
      action: 'create' as const,
      after: r,
      reason: '',
      cause: 'initial' as const,
    };
    expect(await d.apply(ch, c)).toBe('changed');
    expect(await d.apply(ch, c)).toBe('unchanged');
    expect(c.exec.mutations).toBe(1);
    expect((await d.observe(scope)).resources.map((x) => x.id)).toEqual([ids.route(r)]);
    const { after: _after, ...rest } = ch;
    const del = { ...rest, action: 'delete' as const, before: r };
    expect(await d.apply(del, c)).toBe('changed');
    expect(await d.apply(del, c)).toBe('unchanged');
    expect((await d.observe(scope)).resources).toEqual([]);
  });

  it('fails on the n-th apply and changes nothing then', async () => {
    const d = new FakeRouteDriver().failOn(2);
    const c = ctx();
    const ch = {
      kind: 'route' as const,
      id: ids.route(r),
      action: 'create' as const,
      after: r,
      reason: '',
      cause: 'initial' as const,
    };
    await d.apply(ch, c);
    const r2 = { ...r, table: 52001 };
    await expect(d.apply({ ...ch, id: ids.route(r2), after: r2 }, c)).rejects.toMatchObject({
      kind: 'driver',
    });
    expect(d.objects.size).toBe(1);
    expect(await d.applyBatch([{ ...ch, id: ids.route(r2), after: r2 }], c)).toEqual(['changed']);
  });

  it('dry-run records but does not change', async () => {
    const d = new FakeRouteDriver();
    const c = ctx(true);
    await d.apply(
      { kind: 'route', id: ids.route(r), action: 'create', after: r, reason: '', cause: 'initial' },
      c,
    );
    expect(c.exec.mutations).toBe(1);
    expect(d.objects.size).toBe(0);
  });
});
