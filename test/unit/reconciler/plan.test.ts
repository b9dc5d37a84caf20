/** topoOrder, plan causes/actions, verify, revert, and a convergence property test. */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { secretRefs } from '../../../src/config/secrets.js';
import { formatPath } from '../../../src/config/positions.js';
import { linuxDesired } from '../../helpers/desired.js';
import { canonical, diffFields, plan, specEqual, topoOrder } from '../../../src/reconciler/plan.js';
import { verify } from '../../../src/reconciler/verify.js';
import { revert } from '../../../src/reconciler/revert.js';
import { hasChanges, type AnyChange, type Plan } from '../../../src/model/change.js';
import type { AnyResource, ObservedState } from '../../../src/model/resources.js';

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

const link = (name: string, deps: string[] = [], mtu = 1420): AnyResource => ({
  kind: 'link',
  id: `link/${name}`,
  deps,
  spec: { name, kind: 'tun', mtu, up: true },
});
const route = (table: number, dst: string, deps: string[] = []): AnyResource => ({
  kind: 'route',
  id: `route/v4/table-${table}/${dst}/metric-0`,
  deps,
  spec: { family: 4, table, dst, type: 'unicast', dev: 'awg-a', metric: 0, protocol: 167 },
});
const rule = (priority: number, table: number, deps: string[] = []): AnyResource => ({
  kind: 'rule',
  id: `rule/v4/pref-${priority}`,
  deps,
  spec: { family: 4, priority, table, action: 'lookup', protocol: 167 },
});
const fw = (ruleset = 'x'): AnyResource => ({
  kind: 'firewall',
  id: 'firewall/inet/awg',
  deps: [],
  spec: { family: 'inet', table: 'awg', ruleset },
});
const sysctl = (key: string, value = '1', deps: string[] = []): AnyResource => ({
  kind: 'sysctl',
  id: `sysctl/${key}`,
  deps,
  spec: { key, value },
});

const obs = (resources: AnyResource[]): ObservedState => ({ resources, foreign: [] });
const des = (resources: AnyResource[]) => ({ resources, warnings: [] });

describe('topoOrder', () => {
  it('puts every resource after its dependencies, whatever the input order', () => {
    const r = [
      rule(5203, 52003, ['route/v4/table-52003/0.0.0.0/0/metric-0']),
      route(52003, '0.0.0.0/0', ['link/awg-a']),
      link('awg-a'),
    ];
    expect(topoOrder(r).map((x) => x.id)).toEqual([
      'link/awg-a',
      'route/v4/table-52003/0.0.0.0/0/metric-0',
      'rule/v4/pref-5203',
    ]);
  });

  it('a dependency wins over kind rank (sysctl depending on a link comes after it)', () => {
    const r = [
      sysctl('net.ipv4.conf.awg-a.rp_filter', '2', ['link/awg-a']),
      link('awg-a'),
      sysctl('net.ipv4.conf.all.src_valid_mark'),
    ];
    expect(topoOrder(r).map((x) => x.id)).toEqual([
      'sysctl/net.ipv4.conf.all.src_valid_mark',
      'link/awg-a',
      'sysctl/net.ipv4.conf.awg-a.rp_filter',
    ]);
  });

  it('breaks ties by kind rank then id, independent of input order', () => {
    const r = [rule(2, 1), route(1, '10.0.0.0/8'), link('b'), link('a'), fw(), sysctl('k')];
    const want = [
      'sysctl/k',
      'firewall/inet/awg',
      'link/a',
      'link/b',
      'route/v4/table-1/10.0.0.0/8/metric-0',
      'rule/v4/pref-2',
    ];
    expect(topoOrder(r).map((x) => x.id)).toEqual(want);
    expect(topoOrder([...r].reverse()).map((x) => x.id)).toEqual(want);
  });

  it('ignores dependencies on ids outside the set', () => {
    expect(topoOrder([route(1, '0.0.0.0/0', ['link/gone'])]).map((x) => x.id)).toEqual([
      'route/v4/table-1/0.0.0.0/0/metric-0',
    ]);
  });

  it('detects a cycle and names the resources in it', () => {
    const a = link('a', ['link/b']);
    const b = link('b', ['link/a']);
    expect(() => topoOrder([a, b, fw()])).toThrow(/dependency cycle among link\/a, link\/b/);
  });

  it('detects a self-dependency', () => {
    expect(() => topoOrder([link('a', ['link/a'])])).toThrow(/cycle/);
  });
});

describe('canonical / diffFields', () => {
  it('canonical ignores key order and undefined', () => {
    expect(canonical({ b: 1, a: { d: 2, c: undefined } })).toBe(canonical({ a: { d: 2 }, b: 1 }));
    expect(specEqual({ x: [1, 2] }, { x: [2, 1] })).toBe(false);
  });
  it('diffFields lists differing top-level fields, sorted', () => {
    expect(diffFields({ a: 1, b: { c: 1 }, z: 1 }, { a: 1, b: { c: 2 }, y: 1, z: 1 })).toEqual([
      'b',
      'y',
    ]);
  });
});

describe('plan', () => {
  it('create / update / replace / delete / noop and their order', () => {
    const desired = [
      link('awg-a', [], 1380),
      route(52001, '0.0.0.0/0', ['link/awg-a']),
      rule(5201, 52001),
      fw('new'),
    ];
    const observed = [
      link('awg-a', [], 1420),
      rule(5201, 99),
      fw('new'),
      link('awg-old'),
      route(52002, '10.0.0.0/8', ['link/awg-old']),
    ];
    const p = plan(des(desired), obs(observed), { includeNoop: true });
    expect(p.changes.map((c) => `${c.action} ${c.id}`)).toEqual([
      'delete route/v4/table-52002/10.0.0.0/8/metric-0',
      'delete link/awg-old',
      'noop firewall/inet/awg',
      'update link/awg-a',
      'create route/v4/table-52001/0.0.0.0/0/metric-0',
      'replace rule/v4/pref-5201',
    ]);
    expect(p.changes.every((c) => c.cause === 'initial')).toBe(true);
    expect(plan(des(desired), obs(observed)).changes.some((c) => c.action === 'noop')).toBe(false);
  });

  it('causes: config vs drift vs a stray owned object', () => {
    const applied = [link('awg-a', [], 1420), fw('v1')];
    // config changed the link MTU; someone flushed the firewall (drift); a stray owned rule
    const p = plan(
      des([link('awg-a', [], 1380), fw('v1')]),
      obs([link('awg-a', [], 1420), fw('flushed'), rule(5299, 1)]),
      { lastApplied: applied },
    );
    const by = (id: string) => p.changes.find((c) => c.id === id)!;
    expect(by('link/awg-a')).toMatchObject({ action: 'update', cause: 'config' });
    expect(by('firewall/inet/awg')).toMatchObject({ action: 'update', cause: 'drift' });
    expect(by('rule/v4/pref-5299')).toMatchObject({
      action: 'delete',
      cause: 'drift',
      reason: 'owned by awg but not desired',
    });
  });

  it('a resource deleted from the config is a config change; one deleted outside awg is drift', () => {
    const applied = [link('awg-a'), link('awg-b')];
    const p = plan(des([link('awg-a')]), obs([link('awg-b')]), { lastApplied: applied });
    expect(p.changes.find((c) => c.id === 'link/awg-b')).toMatchObject({
      action: 'delete',
      cause: 'config',
      reason: 'no longer in the config',
    });
    expect(p.changes.find((c) => c.id === 'link/awg-a')).toMatchObject({
      action: 'create',
      cause: 'drift',
      reason: 'missing (deleted outside awg)',
    });
  });

  it('passes foreign objects and warnings through', () => {
    const foreign = [
      {
        kind: 'link' as const,
        id: 'link/awg-x',
        relation: 'conflict' as const,
        description: 'not ours',
      },
    ];
    const p = plan({ resources: [], warnings: ['w'] }, { resources: [], foreign });
    expect(p.foreign).toEqual(foreign);
    expect(p.warnings).toEqual(['w']);
    expect(hasChanges(p)).toBe(false);
  });
});

describe('verify', () => {
  const desired = [link('awg-a'), route(52001, '0.0.0.0/0', ['link/awg-a']), fw('r')];
  it('ok when the observation equals the desired state (any order, deps ignored)', () => {
    const observed = clone(desired)
      .reverse()
      .map((r) => ({ ...r, deps: [] }));
    expect(verify(des(desired), obs(observed))).toEqual({ ok: true, mismatches: [] });
  });
  it('reports each mismatch', () => {
    const observed = [link('awg-a', [], 1500), fw('r'), rule(1, 2)];
    const v = verify(des(desired), obs(observed));
    expect(v.ok).toBe(false);
    expect(v.mismatches.map((c) => `${c.action} ${c.id}`).sort()).toEqual([
      'create route/v4/table-52001/0.0.0.0/0/metric-0',
      'delete rule/v4/pref-1',
      'update link/awg-a',
    ]);
  });
});

describe('revert', () => {
  it('takes the system from the after-observation back to the before-observation', () => {
    const before = obs([link('awg-a', [], 1420), fw('old'), rule(5201, 52001)]);
    const after = obs([
      link('awg-a', [], 1380),
      fw('new'),
      route(52001, '0.0.0.0/0', ['link/awg-a']),
      rule(5201, 7),
    ]);
    const p = revert(before, after);
    // the route goes last (make before break): the rule points at its old table again first
    expect(p.changes.map((c) => `${c.action} ${c.id}`)).toEqual([
      'update firewall/inet/awg',
      'update link/awg-a',
      'replace rule/v4/pref-5201',
      'delete route/v4/table-52001/0.0.0.0/0/metric-0',
    ]);
    expect(p.foreign).toEqual([]);
    expect(sameSet(applyPlan(after.resources, p), before.resources)).toBe(true);
  });
  it('is empty when nothing changed', () => {
    const s = obs([link('awg-a'), fw()]);
    expect(hasChanges(revert(s, clone(s)))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------
// Property: for random observations derived from a real desired state, executing the plan
// in memory yields exactly the desired set, respects dependencies, and a second plan is empty.

function applyPlan(start: AnyResource[], p: Plan): AnyResource[] {
  const m = new Map(start.map((r) => [r.id, clone(r)]));
  for (const c of p.changes as AnyChange[]) {
    switch (c.action) {
      case 'create':
        if (m.has(c.id)) throw new Error(`create of existing ${c.id}`);
        m.set(c.id, { kind: c.kind, id: c.id, deps: [], spec: clone(c.after) } as AnyResource);
        break;
      case 'update':
      case 'replace': {
        const cur = m.get(c.id);
        if (!cur) throw new Error(`${c.action} of missing ${c.id}`);
        if (!specEqual(cur.spec, c.before))
          throw new Error(`${c.action} of ${c.id}: before does not match`);
        m.set(c.id, { ...cur, spec: clone(c.after) } as AnyResource);
        break;
      }
      case 'delete':
        if (!m.delete(c.id)) throw new Error(`delete of missing ${c.id}`);
        break;
      case 'noop':
        break;
    }
  }
  return [...m.values()];
}

function sameSet(a: AnyResource[], b: AnyResource[]): boolean {
  if (a.length !== b.length) return false;
  const m = new Map(a.map((r) => [r.id, r]));
  return b.every(
    (r) => m.has(r.id) && m.get(r.id)!.kind === r.kind && specEqual(m.get(r.id)!.spec, r.spec),
  );
}

/** mulberry32 */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutate(r: AnyResource, rand: () => number): AnyResource {
  const c = clone(r);
  const spec = c.spec as unknown as Record<string, unknown>;
  const keys = Object.keys(spec);
  const k = keys[Math.floor(rand() * keys.length)]!;
  const v = spec[k];
  spec[k] =
    typeof v === 'number'
      ? v + 1
      : typeof v === 'boolean'
        ? !v
        : typeof v === 'string'
          ? v + '-x'
          : Array.isArray(v)
            ? [...v, 'extra']
            : { drifted: true };
  return c;
}

function desiredFromExample(name: string) {
  const file = resolve(import.meta.dirname, '../../../examples', name);
  const r = loadConfigText(readFileSync(file, 'utf8'), file);
  if (!r.config) throw new Error(JSON.stringify(r.issues));
  const secrets = new Map(
    secretRefs(r.config).map((s) => [formatPath(s.path), `fake:${formatPath(s.path)}`]),
  );
  return linuxDesired(r.config, { facts: { cgroupNftPrefix: 'unified' }, secrets });
}

describe('property: plan converges observed → desired', () => {
  const sources = [
    'multi-tunnel-socks-killswitch.yaml',
    'amneziawg-split.yaml',
    'wireguard-full-tunnel.yaml',
  ];
  for (const src of sources) {
    it(`${src}: 200 random observations`, () => {
      const desired = desiredFromExample(join(src));
      const all = desired.resources;
      const rand = rng(0xa11ce ^ src.length);
      const strays = [
        link('awg-stale', []),
        {
          ...route(52999, '10.99.0.0/16', ['link/awg-stale']),
          spec: { ...route(52999, '10.99.0.0/16').spec, dev: 'awg-stale' },
        } as AnyResource,
        rule(5299, 52999, ['route/v4/table-52999/10.99.0.0/16/metric-0']),
        sysctl('net.ipv4.conf.awg-stale.rp_filter', '2', ['link/awg-stale']),
      ];
      const seen = new Set<string>();
      for (let n = 0; n < 200; n++) {
        const observed: AnyResource[] = [];
        for (const r of all) {
          const x = rand();
          if (x < 0.3) continue; // missing
          observed.push(x < 0.5 ? mutate(r, rand) : clone(r));
        }
        for (const s of strays) if (rand() < 0.3) observed.push(clone(s));
        // drivers do not know deps; the planner must cope with either
        if (rand() < 0.5) for (const o of observed) o.deps = [];
        const lastApplied = rand() < 0.5 ? clone(all) : undefined;
        const p = plan(desired, obs(observed), lastApplied ? { lastApplied } : {});
        for (const c of p.changes) seen.add(c.action);

        // deletions before forward changes, but for routes made before they break (after all
        // forward changes: their link is not deleted, no wanted route takes their prefix); every
        // forward change after its deps
        const firstForward = p.changes.findIndex((c) => c.action !== 'delete');
        const lastForward = p.changes.findLastIndex((c) => c.action !== 'delete');
        if (firstForward >= 0) {
          const between = p.changes.slice(firstForward, lastForward + 1);
          expect(between.every((c) => c.action !== 'delete')).toBe(true);
          for (const c of p.changes.slice(lastForward + 1)) {
            seen.add('late delete');
            expect(c.kind).toBe('route');
            const gone = observed.find((o) => o.id === c.id)!;
            expect(
              all.some(
                (r) =>
                  r.kind === 'route' &&
                  r.spec.dst === (gone as typeof r).spec.dst &&
                  r.spec.family === (gone as typeof r).spec.family,
              ),
            ).toBe(false);
            const dev = (gone as { spec: { dev?: string } }).spec.dev;
            expect(
              p.changes.some((x) => x.action === 'delete' && x.id === `link/${dev}`),
              JSON.stringify(gone),
            ).toBe(false);
          }
        }
        const present = new Set(observed.map((r) => r.id));
        const createdAt = new Map(p.changes.map((c, i) => [c.id, i]));
        p.changes.forEach((c, i) => {
          if (c.action !== 'create') return;
          const d = all.find((r) => r.id === c.id)!;
          for (const dep of d.deps)
            if (!present.has(dep) && all.some((r) => r.id === dep))
              expect(createdAt.get(dep)!).toBeLessThan(i);
        });

        const result = applyPlan(observed, p);
        expect(sameSet(result, all)).toBe(true);
        expect(hasChanges(plan(desired, obs(result)))).toBe(false);
        expect(verify(desired, obs(result)).ok).toBe(true);
      }
      expect([...seen].sort()).toEqual(['create', 'delete', 'late delete', 'replace', 'update']);
    });
  }
});

describe('make before break: a route that is no longer wanted goes after its successor', () => {
  const host = (dst: string, deps: string[] = [], dev = 'en0') =>
    ({ ...route(254, dst, deps), spec: { ...route(254, dst, deps).spec, dev } }) as AnyResource;
  it('a changed endpoint: the new bypass, then the engine that uses it, then the old bypass goes', () => {
    const engine = (ep: string) =>
      ({
        kind: 'engine',
        id: 'engine/home',
        deps: [`route/v4/table-254/${ep}/32/metric-0`],
        spec: { tunnel: 'home', endpoint: ep },
      }) as unknown as AnyResource;
    const p = plan(
      des([host('198.51.100.9/32'), engine('198.51.100.9')]),
      obs([host('198.51.100.7/32'), engine('198.51.100.7')]),
    );
    expect(p.changes.map((c) => `${c.action} ${c.id}`)).toEqual([
      'create route/v4/table-254/198.51.100.9/32/metric-0',
      'update engine/home',
      'delete route/v4/table-254/198.51.100.7/32/metric-0',
    ]);
  });
  it('still first: a route on a link this plan deletes (with or without deps), and one whose prefix a wanted route takes', () => {
    const onGone = host('10.9.0.0/16', [], 'awg-gone');
    const p = plan(
      des([link('awg-a'), route(52002, '10.1.0.0/16', ['link/awg-a'])]),
      obs([link('awg-a'), link('awg-gone'), onGone, route(52001, '10.1.0.0/16', ['link/awg-a'])]),
    );
    expect(p.changes.map((c) => `${c.action} ${c.id}`)).toEqual([
      'delete route/v4/table-52001/10.1.0.0/16/metric-0',
      'delete route/v4/table-254/10.9.0.0/16/metric-0',
      'delete link/awg-gone',
      'create route/v4/table-52002/10.1.0.0/16/metric-0',
    ]);
  });
});

describe('a firewall that depends on a starting object is reloaded after it', () => {
  const engine = {
    kind: 'engine',
    id: 'engine/home',
    deps: [],
    spec: { tunnel: 'home', type: 'wireguard', link: 'awg-home', config: {} },
  } as unknown as AnyResource;
  const bound = { ...fw('pf'), deps: ['engine/home'] } as AnyResource;
  it('an engine created this run → the in-sync firewall that names it gets an update, after it', () => {
    const p = plan(des([engine, bound]), obs([bound]));
    expect(
      p.changes.map((c) => `${c.action} ${c.id}${c.action === 'update' ? ` (${c.reason})` : ''}`),
    ).toEqual(['create engine/home', `update ${bound.id} (reload after engine/home starts)`]);
  });
  it('nothing starts → nothing to reload; a firewall without such deps (Linux) is never touched', () => {
    expect(plan(des([engine, bound]), obs([engine, bound])).changes).toEqual([]);
    expect(plan(des([engine, fw('pf')]), obs([fw('pf')])).changes.map((c) => c.action)).toEqual([
      'create',
    ]);
  });
});
