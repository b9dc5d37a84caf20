import { beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/change.js';
import { ids } from '../../src/model/identity.js';
import type { RouteSpec } from '../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../src/resources/driver.js';
import { createLinuxRouteDriver } from '../../src/resources/route/linux.js';
import { MemoryReporter } from '../../src/util/reporter.js';
import { MemoryStateStore } from '../../src/util/state.js';
import {
  nsExec,
  requireNetnsPrereqs,
  snapshotNetns,
  useNetns,
  type NetnsSnapshot,
} from '../helpers/netns.js';
import { NsExec } from '../helpers/exec.js';

const skip = requireNetnsPrereqs();
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
const mk = (action: 'create' | 'delete', r: RouteSpec): Change<'route'> => ({
  kind: 'route',
  id: ids.route(r),
  action,
  ...(action === 'delete' ? { before: r } : { after: r }),
  reason: '',
  cause: 'initial',
});

describe.skipIf(skip)('route driver in a network namespace', () => {
  const ns = useNetns('route');
  let exec: NsExec;
  let before: NetnsSnapshot;
  const ctx = (): ApplyContext => {
    const reporter = new MemoryReporter();
    return {
      exec: new NsExec(ns.name, false, reporter),
      reporter,
      state: new MemoryStateStore(),
      dryRun: false,
      claims,
    };
  };
  const scope = { desired: { resources: [], warnings: [] }, claims, state: new MemoryStateStore() };
  const desired: RouteSpec[] = [
    {
      family: 4,
      table: 52000,
      dst: '0.0.0.0/0',
      type: 'unicast',
      via: '10.200.1.2',
      dev: 'rt0',
      metric: 0,
      protocol: 167,
    },
    { family: 4, table: 52000, dst: '0.0.0.0/0', type: 'unreachable', metric: 4000, protocol: 167 },
    { family: 4, table: 52001, dst: '10.200.9.0/24', type: 'blackhole', metric: 10, protocol: 167 },
    { family: 6, table: 52000, dst: '::/0', type: 'unreachable', metric: 4000, protocol: 167 },
    {
      family: 6,
      table: 52000,
      dst: 'fd00:200::/64',
      type: 'unicast',
      dev: 'rt0',
      metric: 5,
      protocol: 167,
    },
  ];

  beforeAll(async () => {
    exec = new NsExec(ns.name);
    const x = (...a: string[]) => nsExec(ns.name, 'ip', a);
    // link-local addresses and their local routes otherwise appear after DAD, mid-test
    await nsExec(ns.name, 'sysctl', ['-qw', 'net.ipv6.conf.default.accept_dad=0']);
    await x('link', 'add', 'rt0', 'type', 'veth', 'peer', 'name', 'rt1');
    await x('link', 'set', 'rt0', 'up');
    await x('link', 'set', 'rt1', 'up');
    await x('addr', 'add', '10.200.1.1/24', 'dev', 'rt0');
    // foreign: another table, main, and one inside our band without our protocol
    await x('route', 'add', '10.200.5.0/24', 'via', '10.200.1.3', 'table', '100');
    await x('route', 'add', '10.200.6.0/24', 'via', '10.200.1.3', 'proto', 'static');
    await x(
      'route',
      'add',
      '10.200.7.0/24',
      'via',
      '10.200.1.3',
      'table',
      '52002',
      'proto',
      'static',
    );
    before = await snapshotNetns(ns.name);
  });

  it('reports the foreign route in the band as a conflict and nothing as ours', async () => {
    const o = await createLinuxRouteDriver({ exec }).observe(scope);
    expect(o.resources).toEqual([]);
    expect(o.foreign).toEqual([
      expect.objectContaining({
        relation: 'conflict',
        id: 'route/v4/table-52002/10.200.7.0/24/metric-0',
      }),
    ]);
  });

  it('applies, then a second apply is a no-op', async () => {
    const d = createLinuxRouteDriver({ exec });
    const c1 = ctx();
    for (const r of desired) expect(await d.apply(mk('create', r), c1)).toBe('changed');
    expect(c1.exec.mutations).toBe(desired.length);
    const byId = (rs: RouteSpec[]) => Object.fromEntries(rs.map((r) => [ids.route(r), r]));
    expect(byId((await d.observe(scope)).resources.map((r) => r.spec))).toEqual(byId(desired));
    const c2 = ctx();
    for (const r of desired) expect(await d.apply(mk('create', r), c2)).toBe('unchanged');
    expect(c2.exec.mutations).toBe(0);
  });

  it('repairs drift (changed nexthop) with one replace', async () => {
    await nsExec(ns.name, 'ip', [
      'route',
      'replace',
      '0.0.0.0/0',
      'via',
      '10.200.1.9',
      'dev',
      'rt0',
      'table',
      '52000',
      'metric',
      '0',
      'proto',
      '167',
    ]);
    const c = ctx();
    expect(await createLinuxRouteDriver({ exec }).apply(mk('create', desired[0]!), c)).toBe(
      'changed',
    );
    expect(c.exec.mutations).toBe(1);
  });

  it('refuses to overwrite the foreign route', async () => {
    const r: RouteSpec = {
      family: 4,
      table: 52002,
      dst: '10.200.7.0/24',
      type: 'unicast',
      dev: 'rt0',
      metric: 0,
      protocol: 167,
    };
    await expect(
      createLinuxRouteDriver({ exec }).apply(mk('create', r), ctx()),
    ).rejects.toMatchObject({ kind: 'conflict' });
  });

  it('delete leaves the namespace as it was', async () => {
    const d = createLinuxRouteDriver({ exec });
    const c = ctx();
    for (const r of desired) expect(await d.apply(mk('delete', r), c)).toBe('changed');
    for (const r of desired) expect(await d.apply(mk('delete', r), c)).toBe('unchanged');
    expect(await snapshotNetns(ns.name)).toEqual(before);
  });

  it('applyBatch: 10,000 routes in one ip -batch per family, second batch is a no-op', async () => {
    const d = createLinuxRouteDriver({ exec });
    const routes: RouteSpec[] = [];
    for (let i = 0; i < 10_000; i++)
      routes.push({
        family: 4,
        table: 52010 + (i % 4),
        dst: `10.200.${(i >> 8) & 255}.${i & 255}/32`,
        type: 'unicast',
        dev: 'rt0',
        metric: 0,
        protocol: 167,
      });
    const c1 = ctx();
    const t0 = performance.now();
    const res = await d.applyBatch(
      routes.map((r) => mk('create', r)),
      c1,
    );
    const ms = performance.now() - t0;
    expect(res.every((r) => r === 'changed')).toBe(true);
    expect(c1.exec.mutations).toBe(1);
    const t1 = performance.now();
    const observed = await d.observe(scope);
    const obsMs = performance.now() - t1;
    expect(observed.resources).toHaveLength(10_000);
    const c2 = ctx();
    expect(
      (
        await d.applyBatch(
          routes.map((r) => mk('create', r)),
          c2,
        )
      ).every((r) => r === 'unchanged'),
    ).toBe(true);
    expect(c2.exec.mutations).toBe(0);
    const t2 = performance.now();
    await d.applyBatch(
      routes.map((r) => mk('delete', r)),
      ctx(),
    );
    const delMs = performance.now() - t2;
    console.log(
      `route batch: apply 10000 in ${ms.toFixed(0)} ms, observe in ${obsMs.toFixed(0)} ms, delete in ${delMs.toFixed(0)} ms`,
    );
    expect(await snapshotNetns(ns.name)).toEqual(before);
  });
});
