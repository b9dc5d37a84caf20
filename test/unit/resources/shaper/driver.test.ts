/**
 * The Linux shaper driver over canned tc listings (the fixtures of parse.test.ts): what it
 * reads, that a tree as built is `unchanged` with no command, what a rebuild and a delete
 * run, and that a clsact not ours stops it before any command.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { ShaperSpec } from '../../../../src/model/resources.js';
import { classPorts, ifbName } from '../../../../src/model/shaping.js';
import type { ApplyContext, Claims } from '../../../../src/resources/driver.js';
import {
  createLinuxShaperDriver,
  SHAPER_NAMES_KEY,
} from '../../../../src/resources/shaper/linux.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { RecordingExec } from '../../../helpers/exec.js';

const fx = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/shaper/${f}`, import.meta.url), 'utf8');
const T = 'awg-t1';
const [TI, VE, VI] = [ifbName(T, 'ingress'), ifbName('va', 'egress'), ifbName('va', 'ingress')];
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

function reads(over: Record<string, string> = {}): Record<string, string> {
  const r: Record<string, string> = {
    'ip -j -d link show': fx('link.json'),
    'tc -j qdisc show': fx('qdisc.json'),
  };
  for (const d of [T, 'va'])
    for (const s of ['egress', 'ingress'])
      r[`tc -j filter show dev ${d} ${s}`] = fx(`filter-${d}-${s}.json`);
  for (const d of [T, TI, VE, VI]) r[`tc class show dev ${d}`] = fx(`class-${d}.txt`);
  for (const d of [TI, VE, VI]) r[`tc -j filter show dev ${d}`] = fx(`filter-${d}.json`);
  return { ...r, ...over };
}

const cls = (n: number, rate: number) => ({ n, name: `rule/r${n}`, rate, ports: classPorts(n) });
const VA_EGRESS: ShaperSpec = {
  device: 'va',
  direction: 'egress',
  ifb: VE,
  classes: [cls(1, 20_000_000), cls(2, 5_000_000)],
};

function setup(over: Record<string, string> = {}) {
  const exec = new RecordingExec(reads(over));
  const state = new MemoryStateStore();
  state.set(SHAPER_NAMES_KEY, { '1': 'rule/r1', '2': 'rule/r2' });
  const reporter = new MemoryReporter();
  const ctx: ApplyContext = { exec, reporter, state, dryRun: false, claims };
  return { exec, state, ctx, driver: createLinuxShaperDriver({ exec }) };
}
const change = (action: Change<'shaper'>['action'], spec: ShaperSpec): Change<'shaper'> => ({
  kind: 'shaper',
  id: `shaper/${spec.device}/${spec.direction}`,
  action,
  ...(action === 'delete' ? { before: spec } : { after: spec }),
  reason: 'test',
  cause: 'config',
});

describe('Linux shaper driver (canned tc listings)', () => {
  it('observes the four trees, names from the record', async () => {
    const { driver, state } = setup();
    const o = await driver.observe({ desired: { resources: [], warnings: [] }, claims, state });
    expect(o.foreign).toEqual([]);
    expect(o.resources.map((r) => r.id)).toEqual([
      'shaper/awg-t1/egress',
      'shaper/awg-t1/ingress',
      'shaper/va/egress',
      'shaper/va/ingress',
    ]);
    expect(o.resources[2]!.spec).toEqual(VA_EGRESS);
  });

  it('a tree as built is unchanged: no command', async () => {
    const { driver, ctx, exec } = setup();
    expect(await driver.apply(change('update', VA_EGRESS), ctx)).toBe('unchanged');
    expect(exec.log).toEqual([]);
  });

  it('another rate rebuilds the tree of that device and direction in one tc batch', async () => {
    const { driver, ctx, exec } = setup();
    const spec = { ...VA_EGRESS, classes: [cls(1, 30_000_000)] };
    expect(await driver.apply(change('update', spec), ctx)).toBe('changed');
    expect(exec.log).toEqual([
      `tc -batch - (filter del dev va egress pref 42754; filter del dev va egress pref 42755; filter del dev va egress pref 42756; filter del dev va egress pref 42757; qdisc del dev ${VE} root; qdisc add dev ${VE} root handle 1: htb default 0; class add dev ${VE} parent 1: classid 1:11 htb rate 30000000bit ceil 30000000bit burst 3750 cburst 3750 quantum 3750; qdisc add dev ${VE} parent 1:11 handle 11: bfifo limit 71866; filter add dev va egress pref 42754 protocol ip u32 match ip sport 61440 0xff80 action mirred egress redirect dev ${VE} cookie 6177673a6d616e61676564; filter add dev va egress pref 42755 protocol ipv6 u32 match ip6 sport 61440 0xff80 action mirred egress redirect dev ${VE} cookie 6177673a6d616e61676564)`,
    ]);
  });

  it('delete takes the redirects, the HTB, and the clsact once nothing of ours is left on it', async () => {
    const { driver, ctx, exec } = setup();
    expect(await driver.apply(change('delete', VA_EGRESS), ctx)).toBe('changed');
    // the ingress side still has filters of ours: the clsact stays
    expect(exec.log[0]).not.toContain('qdisc del dev va clsact');
    const noIngress = setup({ 'tc -j filter show dev va ingress': '[]' });
    expect(await noIngress.driver.apply(change('delete', VA_EGRESS), noIngress.ctx)).toBe(
      'changed',
    );
    expect(noIngress.exec.log[0]).toContain('qdisc del dev va clsact');
  });

  it('a filter that is not ours on the clsact: a conflict, and apply runs nothing', async () => {
    const foreign = JSON.stringify([
      ...(JSON.parse(fx('filter-va-egress.json')) as unknown[]),
      {
        protocol: 'ip',
        pref: 1,
        kind: 'u32',
        options: { fh: '8ff::800', match: { value: '0', mask: '0', off: 0 } },
      },
    ]);
    const { driver, ctx, exec, state } = setup({ 'tc -j filter show dev va egress': foreign });
    const o = await driver.observe({ desired: { resources: [], warnings: [] }, claims, state });
    expect(o.foreign.map((f) => f.id)).toEqual(['shaper/va/egress', 'shaper/va/ingress']);
    await expect(
      driver.apply(change('update', { ...VA_EGRESS, classes: [cls(1, 1_000_000)] }), ctx),
    ).rejects.toMatchObject({ kind: 'conflict' });
    expect(exec.log).toEqual([]);
  });

  it('tc that cannot be read: no shapers when none is wanted, an error when one is', async () => {
    const exec = new RecordingExec({ 'ip -j -d link show': fx('link.json') });
    const state = new MemoryStateStore();
    const driver = createLinuxShaperDriver({ exec });
    expect(
      await driver.observe({ desired: { resources: [], warnings: [] }, claims, state }),
    ).toEqual({ resources: [], foreign: [] });
    await expect(
      driver.observe({
        desired: {
          resources: [{ kind: 'shaper', id: 'shaper/va/egress', spec: VA_EGRESS, deps: [] }],
          warnings: [],
        },
        claims,
        state,
      }),
    ).rejects.toThrow(/tc -j qdisc show/);
  });
});
