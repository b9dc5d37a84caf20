/**
 * awg explain's walk (model/explain.ts): rule order, both parts must hold, disabled rules,
 * tunnel health and fallbacks, placement by the first fitting program rule, exec cgroups,
 * learned addresses, IPv6; and agreement with match.ts effectiveRoute.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  mergeDestinations,
  parseInlineDestinations,
  type DestinationSet,
} from '../../../src/config/lists.js';
import { Rule } from '../../../src/config/schema-rules.js';
import { explain, type ExplainContext, type RuleDestinations } from '../../../src/model/explain.js';
import { compileRules, effectiveRoute, ruleName } from '../../../src/model/match.js';

const rules = (rs: unknown[]) => rs.map((r) => Rule.parse(r));
const cidrs = (...v: string[]): DestinationSet => parseInlineDestinations(v, 'cidrs', '', '').set;
const domains = (...v: string[]): DestinationSet =>
  parseInlineDestinations(v, 'domains', '', '').set;

/** destinations of each rule with `to`, as load.ts builds them (one source per kind here) */
function dests(rs: Rule[]): Map<string, RuleDestinations> {
  const m = new Map<string, RuleDestinations>();
  rs.forEach((r, i) => {
    if (!r.to) return;
    const sources = [
      ...(r.to.cidrs ? [{ label: `rules[${i}].to.cidrs`, set: cidrs(...r.to.cidrs) }] : []),
      ...(r.to.domains ? [{ label: `rules[${i}].to.domains`, set: domains(...r.to.domains) }] : []),
    ];
    m.set(ruleName(r, i), { set: mergeDestinations(sources.map((s) => s.set)), sources });
  });
  return m;
}

const ctx = (rs: Rule[], o: Partial<ExplainContext> = {}): ExplainContext => ({
  destinations: dests(rs),
  tunnelUp: () => true,
  defaultRoute: 'direct',
  ...o,
});

const FF = { exe: '/usr/lib/firefox/firefox', uid: 1000 };
const CURL = { exe: '/usr/bin/curl', uid: 1000 };
const to = (addr: string, name?: string) => ({
  addr,
  port: 443,
  proto: 'tcp' as const,
  ...(name ? { name } : {}),
});

describe('explain: the walk', () => {
  it('first fitting rule decides, in order; the rest are not walked', () => {
    const rs = rules([
      { name: 'blocked', to: { cidrs: ['203.0.113.0/24'] }, target: 'block' },
      { name: 'web', match: { name: 'firefox' }, target: 't1' },
      { name: 'all', match: { dir: '/' }, target: 't2' },
    ]);
    const e = explain(rs, FF, to('203.0.113.7'), ctx(rs));
    expect(e.decision).toMatchObject({ rule: 'blocked', route: 'blocked' });
    expect(e.steps).toHaveLength(1);
    expect(e.steps[0]!.destination).toEqual({
      fits: true,
      why: '203.0.113.7 is in 203.0.113.0/24 (rules[0].to.cidrs)',
    });
    expect(e.steps[0]!.program.fits).toBe('n/a');
    const e2 = explain(rs, FF, to('198.51.100.1'), ctx(rs));
    expect(e2.decision).toMatchObject({ rule: 'web', route: 't1' });
    expect(e2.steps.map((s) => s.verdict)).toEqual(['no-fit', 'decides']);
    expect(e2.steps[0]!.destination.why).toBe("198.51.100.1: not in the rule's 1 prefix");
  });

  it('both parts must hold: program fits but destination does not → next rule', () => {
    const rs = rules([
      {
        name: 'ff-bank',
        match: { name: 'firefox' },
        to: { cidrs: ['192.0.2.0/24'] },
        target: 't1',
      },
      { name: 'net', to: { cidrs: ['198.51.100.0/24', '2001:db8::/32'] }, target: 't2' },
    ]);
    // firefox sits in awg/ff-bank (its first fitting program rule)
    const a = explain(rs, FF, to('192.0.2.9'), ctx(rs));
    expect(a.decision).toMatchObject({ rule: 'ff-bank', route: 't1' });
    const b = explain(rs, FF, to('198.51.100.4'), ctx(rs));
    expect(b.steps[0]).toMatchObject({ verdict: 'no-fit', program: { fits: true } });
    expect(b.steps[0]!.destination.fits).toBe(false);
    expect(b.decision).toMatchObject({ rule: 'net', route: 't2' });
    // curl: program part of ff-bank fails even for its destination
    const c = explain(rs, CURL, to('192.0.2.9'), ctx(rs));
    expect(c.steps[0]!.program).toEqual({
      fits: false,
      why: '/usr/bin/curl does not fit match.name firefox',
    });
    expect(c.decision).toEqual({ route: 'direct', why: 'no rule fits; default direct' });
  });

  it('a later program rule does not hold for a process placed by an earlier one (the firewall matches cgroups)', () => {
    const rs = rules([
      {
        name: 'ff-bank',
        match: { name: 'firefox' },
        to: { cidrs: ['192.0.2.0/24'] },
        target: 't1',
      },
      { name: 'ff', match: { name: 'firefox' }, target: 't2' },
    ]);
    const e = explain(rs, FF, to('198.51.100.4'), ctx(rs));
    expect(e.steps[1]!.program).toEqual({
      fits: false,
      why: '/usr/lib/firefox/firefox fits match.name firefox, but the process sits in awg/ff-bank: the firewall matches awg/ff',
    });
    expect(e.decision.route).toBe('direct');
  });

  it('disabled rules are shown and skipped', () => {
    const rs = rules([
      { name: 'off', match: { name: 'firefox' }, target: 'block', enabled: false },
      { name: 'on', match: { name: 'firefox' }, target: 't1' },
    ]);
    const e = explain(rs, FF, to('198.51.100.4'), ctx(rs));
    expect(e.steps[0]).toMatchObject({ verdict: 'disabled', enabled: false });
    expect(e.decision).toMatchObject({ rule: 'on', route: 't1' });
  });

  it('the placement given (the real cgroup) wins over the executable', () => {
    const rs = rules([
      { name: 'a', match: { name: 'firefox' }, target: 't1' },
      { name: 'b', match: { name: 'curl' }, target: 't2' },
    ]);
    const e = explain(
      rs,
      FF,
      to('198.51.100.4'),
      ctx(rs, { placement: { kind: 'rule', name: 'b' } }),
    );
    expect(e.steps[0]!.program.fits).toBe(false);
    expect(e.steps[1]!.program).toEqual({
      fits: true,
      why: 'the process sits in awg/b, though /usr/lib/firefox/firefox no longer fits match.name curl (the placer moves it)',
    });
    expect(e.decision).toMatchObject({ rule: 'b', route: 't2' });
  });
});

describe('explain: tunnel health', () => {
  const down = (t: string) => (n: string) => n !== t;
  it('failover of a program rule: the placer moves it to the next fitting program rule', () => {
    const rs = rules([
      { name: 'a', match: { name: 'firefox' }, target: 't1', fallback: 'failover' },
      { name: 'b', match: { dir: '/usr' }, target: 't2' },
    ]);
    const e = explain(rs, FF, to('198.51.100.4'), ctx(rs, { tunnelUp: down('t1') }));
    expect(e.decision).toMatchObject({ rule: 'b', route: 't2' });
    // the placer has moved it already: a's program part no longer holds
    expect(e.steps[0]!.program.why).toContain('the process sits in awg/b');
    // with the real cgroup still a: a steps aside, the same decision

    const e2 = explain(
      rs,
      FF,
      to('198.51.100.4'),
      ctx(rs, { tunnelUp: down('t1'), placement: { kind: 'rule', name: 'a' } }),
    );
    expect(e2.steps[0]).toMatchObject({ verdict: 'steps-aside' });
    expect(e2.decision).toMatchObject({ rule: 'b', route: 't2' });
  });
  it('failover with no later program rule blocks; a destination-only rule steps aside', () => {
    const rs = rules([
      { name: 'list', to: { cidrs: ['198.51.100.0/24'] }, target: 't1', fallback: 'failover' },
      { name: 'a', match: { name: 'firefox' }, target: 't1', fallback: 'failover' },
    ]);
    const e = explain(rs, FF, to('198.51.100.4'), ctx(rs, { tunnelUp: down('t1') }));
    expect(e.steps[0]).toMatchObject({ verdict: 'steps-aside' });
    expect(e.decision).toMatchObject({ rule: 'a', route: 'blocked' });
    expect(e.decision.why).toContain('no later rule fits the program');
  });
  it('allow-direct, block, drop', () => {
    for (const [fallback, up, route] of [
      ['allow-direct', false, 'direct'],
      ['block', false, 'blocked'],
      ['drop', true, 'blocked'],
      ['block', true, 't1'],
    ] as const) {
      const rs = rules([{ to: { cidrs: ['0.0.0.0/0'] }, target: 't1', fallback }]);
      const e = explain(rs, CURL, to('192.0.2.1'), ctx(rs, { tunnelUp: () => up }));
      expect(e.decision.route, `${fallback} up=${up}`).toBe(route);
    }
  });
  it('default: a tunnel that is down blocks', () => {
    const e = explain(
      [],
      CURL,
      to('192.0.2.1'),
      ctx([], { defaultRoute: 't1', tunnelUp: () => false }),
    );
    expect(e.decision).toEqual({
      route: 'blocked',
      why: 'no rule fits; default t1, tunnel t1 is down',
    });
  });
});

describe('explain: exec cgroups, limits, IPv6, learned', () => {
  it('awg exec cgroups hold no program rule; destination-only rules still apply before them', () => {
    const rs = rules([
      { name: 'a', match: { name: 'curl' }, target: 't1' },
      { name: 'blk', to: { cidrs: ['203.0.113.0/24'] }, target: 'block' },
    ]);
    const c = ctx(rs, { placement: { kind: 'exec', target: 't2' }, tunnelUp: (t) => t !== 't2' });
    const e = explain(rs, CURL, to('192.0.2.1'), c);
    expect(e.steps[0]!.program.fits).toBe(false);
    expect(e.decision).toMatchObject({ rule: '_exec-t2', route: 'blocked' });
    expect(explain(rs, CURL, to('203.0.113.1'), c).decision).toMatchObject({
      rule: 'blk',
      route: 'blocked',
    });
    const d = explain(rs, CURL, to('192.0.2.1'), {
      ...c,
      placement: { kind: 'exec', target: 'direct' },
    });
    expect(d.decision).toMatchObject({ rule: '_exec-direct', route: 'direct' });
  });
  it('a runtime limit is named in the decision', () => {
    const e = explain([], CURL, to('192.0.2.1'), ctx([], { limit: 42 }));
    expect(e.decision.why).toContain('runtime limit of pid 42');
  });
  it('IPv6: prefixes per family; ipv6: allow sends tunnel traffic direct, block drops it', () => {
    const rs = rules([
      { name: 'n', to: { cidrs: ['2001:db8::/32', '192.0.2.0/24'] }, target: 't1' },
    ]);
    const e = explain(rs, CURL, to('2001:db8::7'), ctx(rs));
    expect(e.steps[0]!.destination.why).toBe('2001:db8::7 is in 2001:db8::/32 (rules[0].to.cidrs)');
    expect(e.decision.route).toBe('t1');
    expect(explain(rs, CURL, to('2001:db8::7'), ctx(rs, { ipv6: 'allow' })).decision.route).toBe(
      'direct',
    );
    expect(explain(rs, CURL, to('2001:db8::7'), ctx(rs, { ipv6: 'block' })).decision.route).toBe(
      'blocked',
    );
    // IPv4 traffic is not affected by ipv6:
    expect(explain(rs, CURL, to('192.0.2.1'), ctx(rs, { ipv6: 'block' })).decision.route).toBe(
      't1',
    );
    // an IPv4-mapped address is its IPv4 address
    expect(explain(rs, CURL, to('::ffff:192.0.2.1'), ctx(rs)).decision.route).toBe('t1');
    const miss = explain(rs, CURL, to('2001:db9::1'), ctx(rs));
    expect(miss.steps[0]!.destination.why).toBe("2001:db9::1: not in the rule's 1 prefix");
  });
  it('learned addresses: fits with the name, CNAME and expiry; a listed name not learned does not', () => {
    const rs = rules([
      { name: 'cdn', to: { domains: ['*.example.net'], cidrs: ['192.0.2.0/24'] }, target: 't1' },
    ]);
    const learned = (addr: string) =>
      addr === '203.0.113.7'
        ? [{ rule: 'cdn', name: 'www.example.net', via: 'cdn.example.net', expiresAt: 141_000 }]
        : [];
    const c = ctx(rs, { learned, now: 100_000 });
    const e = explain(rs, CURL, to('203.0.113.7'), c);
    expect(e.steps[0]!.destination).toEqual({
      fits: true,
      why: 'learned for www.example.net (*.example.net) via CNAME cdn.example.net, expires in 41 s',
    });
    expect(e.decision.route).toBe('t1');
    const n = explain(rs, CURL, to('203.0.113.8', 'api.example.net'), c);
    expect(n.steps[0]!.destination.fits).toBe(false);
    expect(n.steps[0]!.destination.why).toContain(
      'api.example.net is listed (*.example.net), but 203.0.113.8 was not learned',
    );
    const other = explain(rs, CURL, to('203.0.113.9'), c);
    expect(other.steps[0]!.destination.why).toBe(
      "not in the rule's 1 prefix, and the rule's domains learned no such address",
    );
    // a learned entry of another rule does not count
    const c2 = ctx(rs, { learned: () => [{ rule: 'x', name: 'www.example.net', expiresAt: 1 }] });
    expect(explain(rs, CURL, to('203.0.113.7'), c2).steps[0]!.destination.fits).toBe(false);
  });
  it('names the entry that listed a learned name: full, keyword and regexp entries too', () => {
    const rs = rules([
      {
        name: 'g',
        to: { domains: ['full:example.org', 'keyword:google', 'regexp:^yt\\d\\.'] },
        target: 't1',
      },
    ]);
    const why = (name: string) =>
      explain(
        rs,
        CURL,
        to('203.0.113.7'),
        ctx(rs, { learned: () => [{ rule: 'g', name, expiresAt: 141_000 }], now: 100_000 }),
      ).steps[0]!.destination.why;
    expect(why('www.google.com')).toBe(
      'learned for www.google.com (keyword:google), expires in 41 s',
    );
    expect(why('yt3.example')).toBe('learned for yt3.example (regexp:^yt\\d\\.), expires in 41 s');
    expect(why('example.org')).toBe('learned for example.org (full:example.org), expires in 41 s');
    const listed = explain(rs, CURL, to('203.0.113.8', 'mail.google.com'), ctx(rs));
    expect(listed.steps[0]!.destination.why).toContain(
      'mail.google.com is listed (keyword:google)',
    );
  });
});

describe('explain agrees with effectiveRoute for program-only rules (what awg processes shows)', () => {
  it('property', () => {
    const exes = ['/usr/bin/a', '/usr/bin/b', '/opt/c'];
    const matchArb = fc.constantFrom(
      { name: 'a' },
      { name: 'b' },
      { dir: '/usr' },
      { dir: '/opt' },
    );
    const ruleArb = fc.record({
      match: matchArb,
      target: fc.constantFrom('t1', 't2', 'direct', 'block'),
      fallback: fc.constantFrom('allow-direct', 'block', 'drop', 'failover'),
      enabled: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(ruleArb, { maxLength: 5 }),
        fc.constantFrom(...exes),
        fc.subarray(['t1', 't2']),
        (raw, exe, up) => {
          const rs = rules(raw);
          const tunnelUp = (t: string) => up.includes(t);
          const m = compileRules(rs);
          const chain = m.failoverChain(exe);
          const want = chain.length ? effectiveRoute(chain, tunnelUp) : 'direct';
          const got = explain(rs, { exe }, to('192.0.2.1'), ctx(rs, { tunnelUp }));
          expect(got.decision.route).toBe(want);
        },
      ),
    );
  });
});
