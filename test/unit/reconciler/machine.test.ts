import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { loadConfigText } from '../../../src/config/load.js';
import { linuxDesired } from '../../helpers/desired.js';
import { createFakeDriverSet, type FakeDriverSet } from '../../../src/resources/driver-set.fake.js';
import { reconcile, type ReconcileEnv } from '../../../src/reconciler/run.js';
import type { ReconcileContext, ReconcileInput } from '../../../src/reconciler/machine.js';
import { DEFAULT_CLAIMS } from '../../../src/pipeline/claims.js';
import { ProcessExec } from '../../../src/util/exec.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import type { AnyResource, FirewallSpec } from '../../../src/model/resources.js';
import { rulesetOf } from '../../../src/model/firewall-sets.js';
import { FakeFirewallDriver } from '../../../src/resources/firewall/driver.fake.js';

const KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
function config(killSwitch: 'on' | 'off', mtu = 1420, allowed = '0.0.0.0/0, ::/0') {
  const text = `version: 1
tunnels:
  work:
    type: wireguard
    privateKey: ${KEY}
    addresses: [10.9.0.2/32, fd00:9::2/128]
    mtu: ${mtu}
    peers:
      - publicKey: ${KEY}
        endpoint: 192.0.2.1:51820
        allowedIPs: [${allowed}]
rules:
  - match: {name: firefox}
    target: work
default: work
killSwitch: ${killSwitch}
ipv6: tunnel
`;
  const r = loadConfigText(text, 't.yaml');
  if (!r.config) throw new Error(JSON.stringify(r.issues));
  return linuxDesired(r.config, { facts: { cgroupNftPrefix: 'unified' } });
}

function env(drivers: FakeDriverSet) {
  const reporter = new MemoryReporter();
  const e: ReconcileEnv = {
    drivers,
    claims: DEFAULT_CLAIMS,
    state: new MemoryStateStore(),
    exec: new ProcessExec(reporter),
    reporter,
  };
  return { env: e, reporter };
}

/** Run with a simulated clock, advancing it whenever the machine waits. */
async function run(e: ReconcileEnv, input: ReconcileInput): Promise<ReconcileContext> {
  const clock = new SimulatedClock();
  let done = false;
  const p = reconcile(e, input, { clock }).finally(() => (done = true));
  while (!done) {
    await new Promise((r) => setImmediate(r));
    clock.increment(1000);
  }
  return p;
}

function snapshot(d: FakeDriverSet): string[] {
  return Object.values(d)
    .flatMap((f) => [...f.objects.keys()])
    .sort();
}

const ids = (rs: AnyResource[]) => rs.map((r) => r.id).sort();

describe('reconcile machine', () => {
  it('converges an empty host, then a second run changes nothing', async () => {
    const d = createFakeDriverSet();
    const { env: e, reporter } = env(d);
    const desired = config('off');
    const first = await run(e, { desired, dryRun: false, failClosed: false });
    expect(first.outcome).toBe('converged');
    expect(snapshot(d)).toEqual(ids(desired.resources));
    const before = reporter.mutations.length;
    expect(before).toBe(desired.resources.length);
    const second = await run(e, {
      desired,
      dryRun: false,
      failClosed: false,
      lastApplied: desired.resources,
    });
    expect(second.outcome).toBe('unchanged');
    expect(reporter.mutations.length).toBe(before);
  });

  it('a run is one read pass of the environment: every observation and apply inside it', async () => {
    const d = createFakeDriverSet();
    const { env: e } = env(d);
    let open = 0;
    const seen: number[] = [];
    e.reads = {
      renew() {},
      async pass<T>(f: () => Promise<T>): Promise<T> {
        open++;
        try {
          return await f();
        } finally {
          open--;
        }
      },
    };
    const observe = d.link.observe.bind(d.link);
    d.link.observe = (scope) => {
      seen.push(open);
      return observe(scope);
    };
    const r = await run(e, { desired: config('off'), dryRun: false, failClosed: false });
    expect(r.outcome).toBe('converged');
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.every((n) => n === 1)).toBe(true);
    expect(open).toBe(0);
  });

  it('dry run plans but mutates nothing', async () => {
    const d = createFakeDriverSet();
    const { env: e, reporter } = env(d);
    const r = await run(e, { desired: config('off'), dryRun: true, failClosed: false });
    expect(r.outcome).toBe('planned');
    expect(r.plan!.changes.length).toBeGreaterThan(0);
    expect(reporter.mutations).toEqual([]);
    expect(snapshot(d)).toEqual([]);
  });

  it('a driver failing half-way rolls the host back to exactly its prior state', async () => {
    const d = createFakeDriverSet();
    // prior state: an older apply with another MTU and other allowed IPs
    const old = config('off', 1380, '10.0.0.0/8');
    for (const r of old.resources) (d[r.kind] as { seed(spec: unknown): void }).seed(r.spec);
    const prior = Object.fromEntries(
      Object.entries(d).map(([k, f]) => [
        k,
        structuredClone([...f.objects.entries()].sort(([a], [b]) => (a < b ? -1 : 1))),
      ]),
    );
    d.route.failOn(3);
    const { env: e, reporter } = env(d);
    const r = await run(e, {
      desired: config('off', 1420, '0.0.0.0/0, ::/0'),
      dryRun: false,
      failClosed: false,
      lastApplied: old.resources,
    });
    expect(r.outcome).toBe('rolled-back');
    expect(r.changed).toBeGreaterThan(0); // something was applied before the failure
    expect(reporter.mutations.length).toBeGreaterThan(r.changed);
    const after = Object.fromEntries(
      Object.entries(d).map(([k, f]) => [
        k,
        [...f.objects.entries()].sort(([a], [b]) => (a < b ? -1 : 1)),
      ]),
    );
    expect(after).toEqual(prior);
    expect(d.link.objects.get('link/awg-work')!.mtu).toBe(1380);
  });

  it('rolls back every created object when a create fails (no kill switch)', async () => {
    const d = createFakeDriverSet();
    d.engine.failOn(1);
    const { env: e } = env(d);
    const r = await run(e, { desired: config('off'), dryRun: false, failClosed: false });
    expect(r.outcome).toBe('rolled-back');
    expect(r.error?.kind).toBe('driver');
    expect(r.error?.message).toContain('engine/work');
    expect(snapshot(d)).toEqual([]);
  });

  it('with the kill switch on, a failure ends fail-closed: only the firewall and the cgroups it names stay', async () => {
    const d = createFakeDriverSet();
    d.route.failOn(1);
    const { env: e } = env(d);
    const desired = config('on');
    const r = await run(e, { desired, dryRun: false, failClosed: true });
    expect(r.outcome).toBe('failed-closed');
    expect(snapshot(d)).toEqual([
      'cgroup/awg',
      'cgroup/awg/_exec-direct',
      'cgroup/awg/_exec-work',
      'cgroup/awg/rule-0',
      'firewall/inet/awg',
    ]);
    const fw = desired.resources.find((x) => x.kind === 'firewall')!;
    expect(d.firewall.objects.get('firewall/inet/awg')).toEqual(fw.spec);
  });

  it('reports failed (not failed-closed) when the kill switch itself cannot be installed', async () => {
    const d = createFakeDriverSet();
    d.firewall.failOn(1).failOn(2);
    const { env: e } = env(d);
    const r = await run(e, { desired: config('on'), dryRun: false, failClosed: true });
    expect(r.outcome).toBe('failed');
    expect(r.rollbackErrors.map((x) => x.message).join('\n')).toContain(
      'kill switch could not be installed',
    );
  });

  describe('a kill switch that loaded but reads back differently (nft without /etc/protocols)', () => {
    /** the fake's "nft" prints protocol names as numbers */
    const numbers = (r: string) => r.replace(/\budp\b/g, '17');
    const notBlocked = (r: ReconcileContext) =>
      r.rollbackErrors.some((x) => /NOT blocked/.test(x.message));

    it('a first apply ends fail-closed with the loaded table in place; the tunnel is torn down', async () => {
      const d = createFakeDriverSet();
      d.firewall = new FakeFirewallDriver(numbers);
      const { env: e } = env(d);
      const desired = config('on');
      const fw = desired.resources.find((x) => x.kind === 'firewall')!;
      expect(numbers(rulesetOf(fw.spec)!)).not.toBe(rulesetOf(fw.spec));
      const r = await run(e, { desired, dryRun: false, failClosed: true });
      expect(r.outcome).toBe('failed-closed');
      expect(notBlocked(r)).toBe(false);
      expect(r.error?.kind).toBe('verification');
      expect(d.firewall.objects.get(fw.id)).toEqual(fw.spec);
      expect(snapshot(d).filter((id) => !id.startsWith('cgroup/'))).toEqual([fw.id]);
    });

    it('over an earlier kill switch: the new table stays loaded, never removed', async () => {
      const d = createFakeDriverSet();
      const old = config('on', 1420, '10.0.0.0/8');
      const oldFw = old.resources.find((x) => x.kind === 'firewall')!;
      d.firewall = new FakeFirewallDriver(numbers);
      d.firewall.seed(oldFw.spec as FirewallSpec);
      const { env: e } = env(d);
      const desired = config('on');
      const fw = desired.resources.find((x) => x.kind === 'firewall')!;
      const r = await run(e, { desired, dryRun: false, failClosed: true });
      expect(r.outcome).toBe('failed-closed');
      expect(notBlocked(r)).toBe(false);
      const deletes = d.firewall.applied.filter((c) => c.action === 'delete');
      expect(deletes).toEqual([]);
      expect(d.firewall.objects.get(fw.id)).toEqual(fw.spec);
    });

    it('a table gone after its load is still reported as traffic NOT blocked', async () => {
      const d = createFakeDriverSet();
      const fake = new FakeFirewallDriver(numbers);
      d.firewall = fake;
      const apply = fake.apply.bind(fake);
      // someone deletes the table right after each load
      fake.apply = async (c, ctx) => {
        try {
          return await apply(c, ctx);
        } finally {
          fake.objects.clear();
        }
      };
      const { env: e } = env(d);
      const r = await run(e, { desired: config('on'), dryRun: false, failClosed: true });
      expect(r.outcome).toBe('failed');
      expect(notBlocked(r)).toBe(true);
    });
  });

  it('verification that keeps failing retries, then rolls back with a verification error', async () => {
    const d = createFakeDriverSet();
    // a link driver that reports success but never changes the MTU
    const realApply = d.link.apply.bind(d.link);
    d.link.apply = async (c, ctx) => {
      const r = await realApply(c, ctx);
      const cur = d.link.objects.get(c.id);
      if (cur) d.link.objects.set(c.id, { ...cur, mtu: 9000 });
      return r;
    };
    const { env: e } = env(d);
    const r = await run(e, {
      desired: config('off'),
      dryRun: false,
      failClosed: false,
      verifyRetries: 3,
    });
    expect(r.verifyAttempts).toBe(3);
    expect(r.outcome).toBe('rolled-back');
    expect(r.error?.kind).toBe('verification');
    expect(r.error?.message).toContain('link/awg-work');
  });

  it('refuses to adopt a conflicting object and mutates nothing', async () => {
    const d = createFakeDriverSet();
    d.link.foreign.push({
      kind: 'link',
      id: 'link/awg-work',
      relation: 'conflict',
      description: 'exists without the awg marker',
    });
    const { env: e, reporter } = env(d);
    const r = await run(e, { desired: config('off'), dryRun: false, failClosed: false });
    expect(r.outcome).toBe('failed');
    expect(r.error?.kind).toBe('conflict');
    expect(reporter.mutations).toEqual([]);
  });

  it('repairs only drifted objects and labels them drift', async () => {
    const d = createFakeDriverSet();
    const { env: e, reporter } = env(d);
    const desired = config('off');
    await run(e, { desired, dryRun: false, failClosed: false });
    const route = [...d.route.objects.keys()][0]!;
    d.route.objects.delete(route);
    const n = reporter.mutations.length;
    const r = await run(e, {
      desired,
      dryRun: false,
      failClosed: false,
      lastApplied: desired.resources,
    });
    expect(r.outcome).toBe('converged');
    expect(r.plan!.changes.filter((c) => c.action !== 'noop').map((c) => [c.id, c.cause])).toEqual([
      [route, 'drift'],
    ]);
    expect(reporter.mutations.length - n).toBe(1);
  });
});
