/**
 * `awg diff` of a firewall change with destination sets: one line per set (count before and
 * after, +N −M when both element lists are known), the ruleset's other lines as a line diff
 * without the sets' count-and-digest comments; the plan document carries the same per set.
 */
import { describe, expect, it } from 'vitest';
import { count, renderPlan } from '../../../src/cli/render-plan.js';
import fc from 'fast-check';
import type { AnyChange, Plan } from '../../../src/model/change.js';
import { toPlanDocument } from '../../../src/model/plan-document.js';
import { PlanDocument } from '../../../src/model/plan-document.js';

function ruleset(o: { blocked?: [number, string]; sites?: boolean; extra?: string }): string {
  const l: string[] = ['table inet awg {'];
  if (o.blocked)
    l.push(
      'set d4_blocked {',
      'type ipv4_addr',
      'flags interval',
      `comment "awg n=${o.blocked[0]} sha256=${o.blocked[1]}"`,
      '}',
    );
  if (o.sites) l.push('set l4_sites {', 'type ipv4_addr', 'flags timeout', '}');
  l.push('set w_svc {', 'type cgroupsv2', 'flags timeout', '}');
  l.push('chain route_out {', 'type route hook output priority mangle; policy accept;');
  if (o.blocked) l.push('ip daddr @d4_blocked counter drop comment "app/blocked/@d4_blocked"');
  if (o.sites)
    l.push(
      'ip daddr @l4_sites meta mark set meta mark & 0xf0ffffff | 0x01000000 ct mark set meta mark counter accept comment "app/sites/@l4_sites"',
    );
  if (o.extra) l.push(o.extra);
  l.push('}', '}');
  return l.join('\n') + '\n';
}

const fw = (before: string, after: string): AnyChange => ({
  kind: 'firewall',
  id: 'firewall/awg',
  action: 'update',
  cause: 'config',
  reason: 'ruleset differs',
  fields: ['ruleset'],
  before: { family: 'inet', table: 'awg', ruleset: before },
  after: { family: 'inet', table: 'awg', ruleset: after },
});
const plan = (c: AnyChange): Plan => ({ changes: [c], foreign: [], warnings: [] });

describe('awg diff: destination sets', () => {
  const before = ruleset({ blocked: [99812, 'aaaa'] });
  const after = ruleset({ blocked: [100000, 'bbbb'], sites: true });

  it('tells each set as a user reads it and leaves the comment noise out of the line diff', () => {
    const out = renderPlan(plan(fw(before, after)), { colour: false });
    expect(out).toContain('      ~ set d4_blocked (rule blocked): 99,812 → 100,000 entries\n');
    expect(out).toContain('      + set l4_sites (rule sites): learned from DNS\n');
    expect(out).not.toContain('awg n=');
    expect(out).not.toContain('w_svc');
    // the rest of the ruleset: the new set's declaration and its rule line
    expect(out).toContain('        + set l4_sites {\n');
    expect(out).toContain('comment "app/sites/@l4_sites"');
    expect(out).not.toContain('app/blocked/@d4_blocked');
  });

  it('+N −M when both element lists are known; one-address prefixes compare as nft prints them', () => {
    const els: Record<string, string[]> = {
      aaaa: ['10.0.0.0/8', '192.0.2.1', '198.51.100.0/24'],
      bbbb: ['10.0.0.0/8', '192.0.2.1/32', '203.0.113.0/24', '203.0.114.0/24'],
    };
    const out = renderPlan(
      plan(fw(ruleset({ blocked: [3, 'aaaa'] }), ruleset({ blocked: [4, 'bbbb'] }))),
      { colour: false, elements: (d) => els[d] },
    );
    expect(out).toContain('~ set d4_blocked (rule blocked): 3 → 4 entries (+2 −1)\n');
    // only the comment changed: no ruleset lines
    expect(out).not.toContain('ruleset:');
  });

  it('a set that goes, and a rule change beside the sets', () => {
    const out = renderPlan(
      plan(fw(after, ruleset({ blocked: [100000, 'bbbb'], extra: 'counter accept comment "x"' }))),
      { colour: false },
    );
    expect(out).toContain(
      '      - set l4_sites (rule sites): learned from DNS (its addresses go with it)\n',
    );
    expect(out).not.toContain('d4_blocked (rule');
    expect(out).toContain('        + counter accept comment "x"\n');
  });

  it('a ruleset without sets renders as before', () => {
    const out = renderPlan(plan(fw(ruleset({}), ruleset({ extra: 'counter' }))), { colour: false });
    expect(out).not.toContain(' set ');
    expect(out).toContain('      ruleset:\n        + counter\n');
  });

  it('the plan document carries the counts per set', () => {
    const doc = PlanDocument.parse(toPlanDocument(plan(fw(before, after))));
    expect(doc.changes[0]!.sets).toEqual([
      {
        name: 'd4_blocked',
        rule: 'blocked',
        kind: 'static',
        action: 'update',
        before: 99812,
        after: 100000,
      },
      { name: 'l4_sites', rule: 'sites', kind: 'learned', action: 'create' },
    ]);
    const plain = toPlanDocument(plan(fw(ruleset({}), ruleset({ extra: 'counter' }))));
    expect(plain.changes[0]).not.toHaveProperty('sets');
  });

  it("counts are written as toLocaleString('en-US') writes them", () => {
    for (const n of [0, 7, 999, 1000, 73_447, 1_000_000, Number.MAX_SAFE_INTEGER])
      expect(count(n)).toBe(n.toLocaleString('en-US'));
    fc.assert(
      fc.property(fc.nat(), (n) => count(n) === n.toLocaleString('en-US')),
      { numRuns: 500 },
    );
  });
});
