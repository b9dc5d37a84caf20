import { describe, expect, it } from 'vitest';
import { planLoad } from '../../../../src/resources/firewall/load.js';
import { parseTableListing } from '../../../../src/resources/firewall/parse.js';
import { firewallSpec } from '../../../../src/resources/firewall/render.js';
import {
  elementDelta,
  nextContents,
  onlyContentDiffers,
  overlayContents,
  readContents,
  writeContents,
} from '../../../../src/resources/firewall/set-contents.js';
import { knownElements, staticSets } from '../../../../src/resources/firewall/set-elements.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { destPolicy, type DestRule } from '../../../helpers/dest-policy.js';

function spec(o: { d4?: string[]; ahead?: string[] } = {}): string {
  const rules: DestRule[] = [
    ...(o.ahead ? [{ name: 'a', v4: o.ahead }] : []),
    { name: 'r', v4: o.d4 ?? ['192.0.2.0/24', '198.51.100.7'], learned4: true },
  ];
  return firewallSpec(destPolicy('awg', rules)).ruleset;
}

const plan = (cur: string, want: string) =>
  planLoad({
    family: 'inet',
    table: 'awg',
    cur,
    want,
    ruleset: want,
    netlink: true,
    known: (d) => knownElements(d) !== undefined,
    elements: knownElements,
  });

describe('a static set whose content changed is updated in place', () => {
  it('the delta: the elements to delete and to add; canonical forms compared (/32 = the address)', () => {
    expect(
      elementDelta(['192.0.2.0/24', '198.51.100.7'], ['198.51.100.7/32', '192.0.2.0/23']),
    ).toEqual({ removed: ['192.0.2.0/24'], added: ['192.0.2.0/23'] });
    expect(elementDelta(['10.0.0.1'], ['10.0.0.1'])).toEqual({ removed: [], added: [] });
  });

  it('planLoad: the set is kept with its delta (applied over netlink); the sets after it stay', () => {
    const cur = spec({ ahead: ['10.1.0.0/16'] });
    const want = spec({ ahead: ['10.1.0.0/16', '10.9.0.0/16'] });
    const p = plan(cur, want);
    expect(p.kept).toEqual(['d4_a', 'd4_r', 'l4_r']);
    expect(p.staged).toEqual([]);
    expect(p.updated).toEqual([
      {
        name: 'd4_a',
        from: { count: 1, digest: staticSets(cur)[0]!.digest },
        to: { count: 2, digest: staticSets(want)[0]!.digest },
        added: 1,
        removed: 0,
        elements: { removed: [], added: ['10.9.0.0/16'] },
      },
    ]);
    expect(p.transaction).not.toMatch(/delete set|add element/);
  });

  it('without the elements of both contents (or with a count edited by hand): loaded again', () => {
    const cur = spec();
    const want = spec({ d4: ['203.0.113.0/24'] });
    const blind = planLoad({
      family: 'inet',
      table: 'awg',
      cur,
      want,
      ruleset: want,
      netlink: true,
      known: () => true,
    });
    expect(blind.updated).toEqual([]);
    expect(blind.transaction).toContain('delete set inet awg d4_r');
    const edited = cur.replace('awg n=2 ', 'awg n=1 ');
    expect(plan(edited, want).updated).toEqual([]);
    expect(plan(edited, want).transaction).toContain('delete set inet awg d4_r');
  });

  it('onlyContentDiffers: the comment line alone', () => {
    const a = 'set s {\ntype ipv4_addr\nflags interval\ncomment "awg n=1 sha256=aa"\n}';
    expect(onlyContentDiffers(a, a.replace('n=1 sha256=aa', 'n=2 sha256=bb'))).toBe(true);
    expect(onlyContentDiffers(a, a)).toBe(false);
    expect(
      onlyContentDiffers(a, a.replace('interval', 'interval,timeout').replace('n=1', 'n=2')),
    ).toBe(false);
  });

  it('the record: a listing reads through it while the kernel comment is its base; nextContents', () => {
    const kernel = spec();
    const now = spec({ d4: ['203.0.113.0/24'] });
    const [base] = staticSets(kernel);
    const [content] = staticSets(now);
    const state = new MemoryStateStore();
    expect(readContents(state, 'awg')).toEqual({ table: 'awg', sets: {} });
    const rec = nextContents(
      readContents(state, 'awg'),
      new Set(),
      ['d4_r', 'l4_r'],
      [{ name: 'd4_r', from: { digest: base!.digest }, to: { digest: content!.digest, count: 1 } }],
    );
    expect(rec.sets).toEqual({ d4_r: { base: base!.digest, count: 1, digest: content!.digest } });
    writeContents(state, rec);
    expect(readContents(state, 'awg')).toEqual(rec);
    expect(readContents(state, 'other')).toEqual({ table: 'other', sets: {} });
    const listing = parseTableListing(kernel);
    const o = overlayContents(listing, rec);
    expect(o.overlaid).toEqual(new Set(['d4_r']));
    expect(o.listing.ruleset).toBe(now);
    // a set made anew (its comment another base): the record does not apply
    expect(
      overlayContents(parseTableListing(spec({ d4: ['10.0.0.0/8'] })), rec).overlaid.size,
    ).toBe(0);
    // back to the content the kernel comment names: no entry needed
    const back = nextContents(
      rec,
      o.overlaid,
      ['d4_r'],
      [{ name: 'd4_r', from: { digest: content!.digest }, to: { digest: base!.digest, count: 2 } }],
    );
    expect(back.sets).toEqual({});
    // kept sets that were read through the record keep their entry; sets made anew lose it
    expect(nextContents(rec, o.overlaid, ['d4_r'], []).sets).toEqual(rec.sets);
    expect(nextContents(rec, new Set(), [], []).sets).toEqual({});
  });
});
