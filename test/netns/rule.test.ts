import { beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/change.js';
import { ids } from '../../src/model/identity.js';
import type { RuleSpec } from '../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../src/resources/driver.js';
import { createLinuxRuleDriver } from '../../src/resources/rule/linux.js';
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
const mk = (
  action: 'create' | 'update' | 'delete',
  r: RuleSpec,
  before?: RuleSpec,
): Change<'rule'> => ({
  kind: 'rule',
  id: ids.rule(r),
  action,
  ...(action === 'delete' ? { before: r } : { after: r, ...(before ? { before } : {}) }),
  reason: '',
  cause: 'initial',
});

describe.skipIf(skip)('rule driver in a network namespace', () => {
  const ns = useNetns('rule');
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
  const driver = () => createLinuxRuleDriver({ exec, networkdRunning: async () => false });
  const desired: RuleSpec[] = [
    {
      family: 4,
      priority: 5200,
      table: 254,
      action: 'lookup',
      suppressPrefixLength: 0,
      protocol: 167,
    },
    {
      family: 4,
      priority: 5201,
      fwmark: 0x1000000,
      fwmask: 0xf000000,
      table: 52000,
      action: 'lookup',
      protocol: 167,
    },
    {
      family: 4,
      priority: 5202,
      fwmark: 0x1000000,
      fwmask: 0xf000000,
      action: 'unreachable',
      protocol: 167,
    },
    {
      family: 6,
      priority: 5201,
      fwmark: 0x1000000,
      fwmask: 0xf000000,
      table: 52000,
      action: 'lookup',
      protocol: 167,
    },
    {
      family: 6,
      priority: 5202,
      fwmark: 0x2000000,
      fwmask: 0xf000000,
      action: 'blackhole',
      invert: true,
      protocol: 167,
    },
  ];

  beforeAll(async () => {
    exec = new NsExec(ns.name);
    const x = (...a: string[]) => nsExec(ns.name, 'ip', a);
    await x('rule', 'add', 'priority', '100', 'fwmark', '0xca6c', 'lookup', '51820');
    await x('rule', 'add', 'priority', '5250', 'fwmark', '0x5', 'lookup', '100');
    await x('-6', 'rule', 'add', 'priority', '32000', 'lookup', '100');
    before = await snapshotNetns(ns.name);
  });

  it('sees the foreign rule in the band as a conflict and the wg-quick-style rule as a competitor', async () => {
    const o = await driver().observe(scope);
    expect(o.resources).toEqual([]);
    expect(o.foreign.map((f) => [f.relation, f.id])).toEqual([
      ['conflict', 'rule/v4/pref-5250'],
      ['competitor', 'rule/v4/pref-100'],
    ]);
    const o2 = await createLinuxRuleDriver({
      exec,
      networkdRunning: async () => true,
      networkdConfDir: '/nonexistent',
    }).observe(scope);
    expect(o2.foreign.map((f) => f.id)).toContain('rule/systemd-networkd');
  });

  it('applies, then a second apply is a no-op', async () => {
    const d = driver();
    const c1 = ctx();
    for (const r of desired) expect(await d.apply(mk('create', r), c1)).toBe('changed');
    expect(c1.exec.mutations).toBe(desired.length);
    const byId = (rs: RuleSpec[]) => Object.fromEntries(rs.map((r) => [ids.rule(r), r]));
    expect(byId((await d.observe(scope)).resources.map((r) => r.spec))).toEqual(byId(desired));
    const c2 = ctx();
    for (const r of desired) expect(await d.apply(mk('create', r), c2)).toBe('unchanged');
    expect(c2.exec.mutations).toBe(0);
  });

  it('update is delete + add; a duplicate of ours at the same priority is removed too', async () => {
    const d = driver();
    await nsExec(ns.name, 'ip', [
      'rule',
      'add',
      'priority',
      '5201',
      'fwmark',
      '0x3000000/0xf000000',
      'lookup',
      '52003',
      'protocol',
      '167',
    ]);
    const c = ctx();
    const next = { ...desired[1]!, table: 52001 };
    expect(await d.apply(mk('update', next, desired[1]), c)).toBe('changed');
    expect(c.exec.mutations).toBe(3);
    const o = await d.observe(scope);
    expect(o.resources.find((r) => r.id === ids.rule(next))?.spec).toEqual(next);
    expect(await d.apply(mk('update', desired[1]!, next), ctx())).toBe('changed');
  });

  it('refuses to take a priority held by a foreign rule', async () => {
    const r: RuleSpec = {
      family: 4,
      priority: 5250,
      table: 52000,
      action: 'lookup',
      protocol: 167,
    };
    await expect(driver().apply(mk('create', r), ctx())).rejects.toMatchObject({
      kind: 'conflict',
    });
  });

  it('delete leaves the namespace as it was', async () => {
    const d = driver();
    const c = ctx();
    for (const r of desired) expect(await d.apply(mk('delete', r), c)).toBe('changed');
    for (const r of desired) expect(await d.apply(mk('delete', r), c)).toBe('unchanged');
    expect(await snapshotNetns(ns.name)).toEqual(before);
  });
});
