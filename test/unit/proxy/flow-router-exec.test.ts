/**
 * `awg exec` through the flow router (resources/flow/exec-routes.ts): a flow whose owner is
 * a registered pid or one of its descendants takes the registration's route instead of the
 * rules. A fake process table: owners by pid, parents by pid.
 */
import { describe, expect, it } from 'vitest';
import type { Rule } from '../../../src/config/schema.js';
import { compileRules, execRoute } from '../../../src/model/match.js';
import { ExecRegistry, MAX_DEPTH } from '../../../src/resources/flow/exec-routes.js';
import {
  FlowRouter,
  LOOP,
  type FlowRouterOptions,
} from '../../../src/resources/flow/flow-router.js';
import { AwgError } from '../../../src/errors.js';
import { ProxyDialError } from '../../../src/proxy/types.js';

const DST = { host: '93.184.216.34', port: 443 };
const DST6 = { host: '2606:2800:220:1:248:1893:25c8:1946', port: 443 };

const rules = [
  { name: 'mail', match: { name: 'Mail' }, target: 'A', fallback: 'allow-direct', enabled: true },
  { name: 'tools', match: { dir: '/usr/bin' }, target: 'direct', fallback: 'block', enabled: true },
  { name: 'fo', match: { name: 'fo' }, target: 'A', fallback: 'failover', enabled: true },
  { name: 'fo-b', match: { name: 'fo' }, target: 'B', fallback: 'block', enabled: true },
  { name: 'off', match: { name: 'never' }, target: 'A', fallback: 'block', enabled: false },
] as Rule[];

/**
 * launchd 1 ← shell 500 ← awg 700 (registered) ← curl 701 ← worker 702 ← 704 (Mail);
 * 703: a grandchild of 700 that daemonised (re-parented to launchd); 800: the shell's other child
 */
const tree: Record<number, { ppid: number; path: string }> = {
  500: { ppid: 1, path: '/bin/zsh' },
  700: { ppid: 500, path: '/usr/local/lib/awg/node' },
  701: { ppid: 700, path: '/usr/bin/curl' },
  702: { ppid: 701, path: '/opt/tool/worker' },
  703: { ppid: 1, path: '/opt/tool/worker' },
  704: { ppid: 702, path: '/Applications/Mail.app/Contents/MacOS/Mail' },
  800: { ppid: 500, path: '/opt/tool/worker' },
};

function router(
  o: {
    down?: string[];
    parents?: Record<number, number>;
    ipv6?: 'tunnel' | 'block' | 'allow';
    withParents?: boolean;
  } = {},
) {
  const down = new Set(o.down ?? []);
  const execs = new ExecRegistry();
  const asked: number[] = [];
  const parentOf = (pid: number) => {
    asked.push(pid);
    return o.parents?.[pid] ?? tree[pid]?.ppid;
  };
  const opts: FlowRouterOptions = {
    listen: { host: '127.0.0.1', port: 0 },
    rules,
    default: 'B',
    tunnelUp: (t) => !down.has(t),
    dialers: {
      direct: () => Promise.reject(new ProxyDialError('blocked', 'unused')),
      tunnel: () => undefined,
    },
    lookup: { owner: (f) => ({ pid: f.app.port, path: tree[f.app.port]?.path ?? '/opt/unknown' }) },
    originalDestination: () => DST,
    execs,
    ...(o.withParents === false ? {} : { parentOf }),
    ...(o.ipv6 ? { ipv6: o.ipv6 } : {}),
    selfPid: 999,
  };
  const r = new FlowRouter(opts);
  // the app's pid stands in its port: the fake lookup reads it back
  const decide = (pid: number, dst = DST) =>
    r.decide({ proto: 'tcp', app: { address: '127.0.0.1', port: pid }, dst });
  const route = (pid: number, dst = DST) => decide(pid, dst).route;
  return { r, execs, decide, route, asked, down };
}

describe('flow router: awg exec registrations (parent chain)', () => {
  it('--tunnel A: the registered pid, its child and grandchildren take A whatever the rules say; an unrelated process and a re-parented grandchild keep the rules', () => {
    const t = router();
    expect([700, 701, 702, 703, 704, 800].map((p) => t.route(p))).toEqual([
      'B',
      'direct',
      'B',
      'B',
      'A',
      'B',
    ]); // the rules alone
    t.execs.add(700, { tunnel: 'A' }, () => {});
    expect([700, 701, 702, 703, 704, 800].map((p) => t.route(p))).toEqual([
      'A',
      'A',
      'A',
      'B',
      'A',
      'B',
    ]);
    expect(t.decide(702)).toEqual({
      route: 'A',
      owner: { pid: 702, path: '/opt/tool/worker' },
      exec: 700,
    });
    // the walk stops at launchd: 703 asked once (its ppid 1), 800 up to the shell and launchd
    t.asked.length = 0;
    t.route(703);
    t.route(800);
    expect(t.asked).toEqual([703, 800, 500]);
  });

  it("--tunnel A while A is down: blocked (fail-closed, as Linux's _exec-A cgroup), never direct or the rules' route", () => {
    const t = router({ down: ['A'] });
    t.execs.add(700, { tunnel: 'A' }, () => {});
    expect([700, 701, 704].map((p) => t.route(p))).toEqual(['blocked', 'blocked', 'blocked']);
    expect(t.route(800)).toBe('B');
  });

  it('--direct: direct for the tree, also where the default tunnel and a tunnel rule would take it', () => {
    const t = router();
    t.execs.add(701, { direct: true }, () => {});
    expect([700, 701, 702, 704, 800].map((p) => t.route(p))).toEqual([
      'B',
      'direct',
      'direct',
      'direct',
      'B',
    ]);
  });

  it('--rule mail: processes no rule matches take its route and fallback (counted under it); one whose own executable a rule matches is judged by the rules', () => {
    const t = router();
    t.execs.add(700, { rule: 'mail' }, () => {});
    expect(t.decide(702)).toEqual({
      route: 'A',
      owner: { pid: 702, path: '/opt/tool/worker' },
      rule: 'mail',
      fallback: 'allow-direct',
      exec: 700,
    });
    expect(t.decide(701)).toMatchObject({ route: 'direct', rule: 'tools' }); // curl: the tools rule, as Linux's placer moves it
    expect(t.decide(701).exec).toBeUndefined();
    t.down.add('A');
    expect(t.decide(702)).toMatchObject({ route: 'direct', rule: 'mail', exec: 700 }); // allow-direct
    expect(t.decide(702).fallback).toBeUndefined(); // no redial through proxy/fallback.ts once direct
  });

  it("--rule with failover ends at blocked when its tunnel is down (what stays in Linux's rule cgroup is dropped); a disabled or unknown rule blocks", () => {
    const matcher = compileRules(rules);
    const up = () => true;
    const downA = (n: string) => n !== 'A';
    expect(execRoute({ rule: 'fo' }, '/opt/x', matcher, up)).toMatchObject({ route: 'A' });
    expect(execRoute({ rule: 'fo' }, '/opt/x', matcher, downA)).toMatchObject({ route: 'blocked' });
    expect(execRoute({ rule: 'off' }, '/opt/x', matcher, up)).toEqual({ route: 'blocked' });
    expect(execRoute({ rule: 'gone' }, '/opt/x', matcher, up)).toEqual({ route: 'blocked' });
    expect(execRoute({ rule: 'fo' }, '/usr/bin/curl', matcher, up)).toBeUndefined();
    expect(execRoute({ tunnel: 'A' }, '/usr/bin/curl', matcher, downA)).toEqual({
      route: 'blocked',
    });
    expect(execRoute({ direct: true }, '/usr/bin/curl', matcher, up)).toEqual({ route: 'direct' });
  });

  it('an ended registration: the tree is judged by the rules again; a second one for the same pid is refused; endAll tells each its reason', () => {
    const t = router();
    const off = t.execs.add(700, { tunnel: 'A' }, () => {});
    expect(t.route(701)).toBe('A');
    expect(() => t.execs.add(700, { direct: true }, () => {})).toThrow(AwgError);
    off();
    expect(t.route(701)).toBe('direct');
    expect(t.execs.size).toBe(0);
    const reasons: string[] = [];
    t.execs.add(700, { direct: true }, (r) => reasons.push(`700 ${r}`));
    t.execs.add(800, { tunnel: 'A' }, (r) => reasons.push(`800 ${r}`));
    t.execs.endWhere((r) => ('tunnel' in r.choice ? 'tunnel gone' : undefined));
    expect(reasons).toEqual(['800 tunnel gone']);
    expect(t.route(800)).toBe('B');
    expect(t.route(701)).toBe('direct');
    t.execs.endAll('stopped');
    expect(reasons).toEqual(['800 tunnel gone', '700 stopped']);
    expect(t.route(702)).toBe('B');
    off(); // a stale unregister changes nothing
    expect(() => t.execs.add(1, { direct: true }, () => {})).toThrow(/cannot register pid 1/);
  });

  it('nothing registered: no parent is asked; no parent lookup: registrations are not honoured; the loop guard comes first; IPv6 and the LAN as for any flow', () => {
    const t = router();
    t.route(704);
    expect(t.asked).toEqual([]);
    const blind = router({ withParents: false });
    blind.execs.add(700, { tunnel: 'A' }, () => {});
    expect(blind.route(701)).toBe('direct');
    const loop = router({ parents: { 999: 700 } });
    loop.execs.add(700, { tunnel: 'A' }, () => {});
    expect(loop.decide(999)).toMatchObject({ route: 'blocked', rule: LOOP });
    const v6 = router({ ipv6: 'block' });
    v6.execs.add(700, { tunnel: 'A' }, () => {});
    expect(v6.route(701, DST6)).toBe('blocked');
    v6.execs.endAll('x');
    v6.execs.add(700, { direct: true }, () => {});
    expect(v6.route(701, DST6)).toBe('direct');
  });

  it(`the walk is bounded (${MAX_DEPTH} parents) and ends on a parent cycle or a vanished parent`, () => {
    const chain: Record<number, number> = {};
    for (let p = 2000; p < 2000 + MAX_DEPTH + 5; p++) chain[p] = p + 1;
    const deep = router({ parents: chain });
    deep.execs.add(2000 + MAX_DEPTH, { tunnel: 'A' }, () => {});
    expect(deep.route(2000)).toBe('A'); // MAX_DEPTH parents up: found
    deep.execs.endAll('x');
    deep.execs.add(2000 + MAX_DEPTH + 1, { tunnel: 'A' }, () => {});
    expect(deep.route(2000)).toBe('B'); // one further: not followed
    const cyc = router({ parents: { 3000: 3001, 3001: 3000 } });
    cyc.execs.add(700, { tunnel: 'A' }, () => {});
    expect(cyc.route(3000)).toBe('B');
    expect(cyc.asked.length).toBe(MAX_DEPTH + 1);
    const gone = router({ parents: { 4000: undefined as unknown as number } });
    gone.execs.add(700, { tunnel: 'A' }, () => {});
    expect(gone.route(4000)).toBe('B');
  });
});
