import { describe, expect, it } from 'vitest';
import { setChanges } from '../../../../src/model/firewall-sets.js';
import { planLoad, tableShape } from '../../../../src/resources/firewall/load.js';
import { parseTableNames, tableOfRuleset } from '../../../../src/resources/firewall/parse.js';
import { firewallSpec } from '../../../../src/resources/firewall/render.js';
import { destPolicy, type DestRule } from '../../../helpers/dest-policy.js';
import {
  dumpedIntervals,
  intervalCount,
  knownElements,
} from '../../../../src/resources/firewall/set-elements.js';

/** a table with rule `r` on static set d4_r (and learned l4_r), and optionally rule `a` ahead on d4_a */
function spec(o: { d4?: string[]; ahead?: string[]; killSwitch?: 'on' | 'off' } = {}): string {
  const rules: DestRule[] = [
    ...(o.ahead ? [{ name: 'a', v4: o.ahead }] : []),
    { name: 'r', v4: o.d4 ?? ['192.0.2.0/24', '198.51.100.7'], learned4: true },
  ];
  return firewallSpec(destPolicy('awg', rules, o.killSwitch)).ruleset;
}

const plan = (cur: string | undefined, want: string, netlink = true) =>
  planLoad({
    family: 'inet',
    table: 'awg',
    cur,
    want,
    ruleset: want,
    netlink,
    known: (d) => knownElements(d) !== undefined,
  });

describe('planLoad: how a table is loaded over the live one', () => {
  it('without netlink: the classic replace, every element in the text', () => {
    const p = plan(spec(), spec({ killSwitch: 'on' }), false);
    expect(p.mode).toBe('classic');
    expect(p.transaction).toMatch(/^add table inet awg\ndelete table inet awg\ntable inet awg \{/);
    expect(p.transaction).toContain('add element inet awg d4_r { 192.0.2.0/24, 198.51.100.7 }');
  });

  it('from nothing: every set declared (with the table and its marker) before a transaction without elements', () => {
    const want = spec();
    const p = plan(undefined, want);
    expect(p.mode).toBe('incremental');
    expect(p.staged.map((s) => s.name)).toEqual(['d4_r', 'l4_r']);
    expect(p.staged[0]!.digest).toMatch(/^[0-9a-f]{32}$/);
    expect(p.stage).toBe(
      'add table inet awg { comment "managed-by=awg"; }\n' +
        `add set inet awg d4_r { type ipv4_addr; flags interval; comment "awg n=2 sha256=${p.staged[0]!.digest}"; }\n` +
        'add set inet awg l4_r { type ipv4_addr; flags timeout; }\n',
    );
    expect(p.transaction).toBe(`add table inet awg\nflush table inet awg\n${want}`);
  });

  it('a change of rules only: every set kept, every chain deleted and defined again', () => {
    const cur = spec();
    const p = plan(cur, spec({ killSwitch: 'on' }));
    expect(p.kept).toEqual(['d4_r', 'l4_r']);
    expect(p.stage).toBeUndefined();
    const chains = tableShape(cur).chains;
    expect(chains.length).toBeGreaterThan(2);
    expect(p.transaction).toContain(chains.map((c) => `delete chain inet awg ${c}\n`).join(''));
    expect(p.transaction).not.toMatch(/add element|delete set/);
  });

  it('a changed set and every set after it are loaded in the transaction', () => {
    const p = plan(spec(), spec({ d4: ['203.0.113.0/24'] }));
    expect(p.kept).toEqual([]);
    expect(p.staged).toEqual([]);
    expect(p.transaction).toContain('delete set inet awg d4_r\ndelete set inet awg l4_r\n');
    expect(p.transaction).toContain('add element inet awg d4_r { 203.0.113.0/24 }');
  });

  it('a new set ahead of kept ones: staged; the ones after it loaded again (creation order is listing order)', () => {
    const p = plan(spec(), spec({ ahead: ['10.1.0.0/16'] }));
    expect(p.staged.map((s) => s.name)).toEqual(['d4_a']);
    expect(p.kept).toEqual([]);
    expect(p.transaction).toContain('delete set inet awg d4_r\n');
    expect(p.transaction).toContain('add element inet awg d4_r ');
    expect(p.transaction).not.toContain('add element inet awg d4_a ');
  });

  it('a set the live table has and the wanted one not is deleted; a kept prefix stays', () => {
    const p = plan(
      spec({ ahead: ['10.1.0.0/16'] }),
      spec({ ahead: ['10.1.0.0/16'], d4: ['203.0.113.9'] }),
    );
    expect(p.kept).toEqual(['d4_a']);
    expect(p.transaction).toContain('delete set inet awg d4_r\n');
    const gone = plan(spec({ ahead: ['10.1.0.0/16'] }), spec());
    expect(gone.transaction).toContain('delete set inet awg d4_a\n');
  });

  it('a live table holding anything else (a map, a flag) is replaced the classic way', () => {
    const cur = spec();
    const withMap = cur.replace(
      'table inet awg {\n',
      'table inet awg {\nmap m {\ntype ipv4_addr : verdict\n}\n',
    );
    expect(tableShape(withMap).foreign).toEqual(['map m']);
    expect(plan(withMap, spec({ killSwitch: 'on' })).mode).toBe('classic');
    const dormant = cur.replace(
      'comment "managed-by=awg"\n',
      'comment "managed-by=awg"\nflags dormant\n',
    );
    expect(plan(dormant, spec({ killSwitch: 'on' })).mode).toBe('classic');
  });
});

describe('ruleset listings and set dumps', () => {
  it('tableOfRuleset finds one table among others; the names of all', () => {
    const text =
      'table ip other {\n\tchain c {\n\t}\n}\ntable inet awg {\n\tcomment "managed-by=awg"\n\tchain x {\n\t}\n}\ntable inet awg2 {\n}\n';
    expect(tableOfRuleset(text, 'inet', 'awg')).toBe(
      'table inet awg {\n\tcomment "managed-by=awg"\n\tchain x {\n\t}\n}\n',
    );
    expect(tableOfRuleset(text, 'inet', 'aw')).toBeUndefined();
    expect(tableOfRuleset(text, 'ip', 'other')).toBe('table ip other {\n\tchain c {\n\t}\n}\n');
    expect(parseTableNames(text)).toEqual([
      ['ip', 'other'],
      ['inet', 'awg'],
      ['inet', 'awg2'],
    ]);
  });

  it('a dump as intervals: starts closed by the next end, nft’s end at 0 skipped, the last to the end of the space', () => {
    const k = (...b: number[]) => Buffer.from(b);
    const d = [
      { key: k(10, 0, 0, 0), end: false },
      { key: k(0, 0, 0, 0), end: true },
      { key: k(10, 0, 1, 0), end: true },
      { key: k(10, 0, 1, 0), end: false },
      { key: k(10, 0, 1, 9), end: true },
      { key: k(255, 255, 255, 0), end: false },
    ];
    expect(intervalCount(d)).toBe(3);
    expect(dumpedIntervals(d)).toEqual(['10.0.0.0/24', '10.0.1.0-10.0.1.8', '255.255.255.0/24']);
    const v6 = [
      { key: Buffer.from('20010db8000000000000000000000001', 'hex'), end: false },
      { key: Buffer.from('20010db8000000000000000000000002', 'hex'), end: true },
    ];
    expect(dumpedIntervals(v6)).toEqual(['2001:db8::1']);
  });

  it('setChanges: the same digest with another count (a set edited in place) is a change', () => {
    const want = spec();
    const seen = want.replace(/awg n=2 /, 'awg n=1 ');
    expect(setChanges(seen, want, knownElements)).toEqual([
      { name: 'd4_r', rule: 'r', kind: 'static', action: 'update', before: 1, after: 2 },
    ]);
  });
});
