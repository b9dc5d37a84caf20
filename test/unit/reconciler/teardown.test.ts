/** The one "remove everything we own" (reconciler/teardown.ts) and its pipeline wrapper. */
import { describe, expect, it } from 'vitest';
import { createFakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { killSwitchIds, removeOwned } from '../../../src/reconciler/teardown.js';
import type { ReconcileEnv } from '../../../src/reconciler/observe.js';
import { AppliedStore } from '../../../src/pipeline/applied.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import { teardown } from '../../../src/pipeline/teardown.js';
import { ProcessExec } from '../../../src/util/exec.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../src/util/state.js';

function host(dryRun = false) {
  const d = createFakeDriverSet();
  d.link.seed({ name: 'awg-x', kind: 'tun', mtu: 1420, up: true });
  d.cgroup.seed({ path: 'awg' }, { path: 'awg/web' });
  d.firewall.seed({ family: 'inet', table: 'awg', ruleset: 'table inet awg {}\n' });
  d.sysctl.seed({ key: 'net.ipv4.conf.all.src_valid_mark', value: '1' });
  const reporter = new MemoryReporter();
  const state = new MemoryStateStore();
  const env: ReconcileEnv = {
    drivers: d,
    claims: DEFAULT_CLAIMS,
    state,
    exec: new ProcessExec(reporter, dryRun),
    reporter,
  };
  return { d, env, applied: new AppliedStore(state) };
}

describe('teardown', () => {
  it('removes every owned object and forgets the applied record', async () => {
    const h = host();
    h.applied.save({
      configFile: '/etc/awg.yaml',
      appliedAt: 'now',
      claims: DEFAULT_CLAIMS,
      resources: [],
      outcome: 'converged',
    });
    const r = await teardown(h.env, h.applied);
    expect(r.errors).toEqual([]);
    expect(r.left).toEqual([]);
    expect(r.removed.sort()).toEqual([
      'cgroup/awg',
      'cgroup/awg/web',
      'firewall/inet/awg',
      'link/awg-x',
      'sysctl/net.ipv4.conf.all.src_valid_mark',
    ]);
    expect(h.d.firewall.objects.size + h.d.cgroup.objects.size + h.d.link.objects.size).toBe(0);
    expect(h.applied.load()).toBeUndefined();
  });

  it('keeping the kill switch keeps the firewall and every cgroup it names, and the record', async () => {
    const h = host();
    h.applied.save({
      configFile: '/etc/awg.yaml',
      appliedAt: 'now',
      claims: DEFAULT_CLAIMS,
      resources: [],
      outcome: 'converged',
    });
    const r = await teardown(h.env, h.applied, { keepKillSwitch: true });
    expect(r.kept.sort()).toEqual(['cgroup/awg', 'cgroup/awg/web', 'firewall/inet/awg']);
    expect(r.removed.sort()).toEqual(['link/awg-x', 'sysctl/net.ipv4.conf.all.src_valid_mark']);
    expect(r.left).toEqual([]);
    expect(h.d.firewall.objects.size).toBe(1);
    expect(h.applied.load()?.configFile).toBe('/etc/awg.yaml');
  });

  it('continues past a failure, reports it and what was left', async () => {
    const h = host();
    h.d.link.failOn(1);
    const r = await removeOwned(h.env);
    expect(r.errors.map((e) => e.message).join()).toContain('injected failure');
    expect(r.left).toEqual(['link/awg-x']);
    expect(h.d.firewall.objects.size).toBe(0);
  });

  it('a dry run changes nothing and keeps the record', async () => {
    const h = host(true);
    h.applied.save({
      configFile: '/etc/awg.yaml',
      appliedAt: 'now',
      claims: DEFAULT_CLAIMS,
      resources: [],
      outcome: 'converged',
    });
    const r = await teardown(h.env, h.applied);
    expect(r.removed).toHaveLength(5);
    expect(h.d.link.objects.size).toBe(1);
    expect(h.applied.load()).toBeDefined();
  });

  it('no firewall: nothing is kept for the kill switch', () => {
    expect(
      killSwitchIds([{ kind: 'cgroup', id: 'cgroup/awg', deps: [], spec: { path: 'awg' } }]),
    ).toEqual(new Set());
  });
});

describe('AppliedStore', () => {
  it('a record of another shape is set aside and reported, never a crash (down must still run)', () => {
    const state = new MemoryStateStore();
    state.set('applied', { hello: 1 });
    expect(new AppliedStore(state).load()).toBeUndefined();
    expect(state.corrupt).toEqual([
      { key: 'applied', file: ':memory:/applied', reason: 'not a record of awg apply' },
    ]);
    expect(state.get('applied')).toBeUndefined();
  });

  it('claims with a field of the wrong type are not used', () => {
    const state = new MemoryStateStore();
    state.set('applied', {
      configFile: '/x.yaml',
      appliedAt: 'now',
      resources: [],
      outcome: 'converged',
      claims: { ...DEFAULT_CLAIMS, nftTable: 'awg; flush ruleset' },
    });
    expect(new AppliedStore(state).load()).toBeUndefined();
    expect(state.corrupt.map((c) => c.key)).toEqual(['applied']);
  });

  it('the claims outlive a lost record: down still knows a non-default routing band', () => {
    const state = new MemoryStateStore();
    const applied = new AppliedStore(state);
    const claims = { ...DEFAULT_CLAIMS, tableBase: 61000, rulePriority: 6100 };
    applied.save({
      configFile: '/x.yaml',
      appliedAt: 'now',
      claims,
      resources: [],
      outcome: 'converged',
    });
    state.set('applied', 'torn');
    expect(applied.claims()).toEqual(claims);
    applied.clear();
    expect(applied.claims()).toBeUndefined();
    expect(state.keys()).toEqual([]);
  });
});
