import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import {
  carryCounters,
  parseCountersJson,
  parseTableCounters,
  readRuleCounters,
  readTableCounters,
} from '../../../../src/resources/firewall/counters.js';
import { normaliseRuleset } from '../../../../src/resources/firewall/normalise.js';

const listing = readFileSync(
  new URL('../../../fixtures/linux/firewall/list-table-full-handles.txt', import.meta.url),
  'utf8',
);

const rule = (comment: unknown, expr: unknown, extra: Record<string, unknown> = {}) => ({
  rule: { family: 'inet', table: 'awg', chain: 'route_out', handle: 3, comment, expr, ...extra },
});
const ctr = (packets: unknown, bytes: unknown) => ({ counter: { packets, bytes } });
const doc = (...items: unknown[]) =>
  JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 'awg', handle: 1 } },
      ...items,
    ],
  });

describe('parseCountersJson', () => {
  it('sums the rules of one comment key (app/<rule>/… counts for app/<rule>), egress and ingress apart', () => {
    const m = parseCountersJson(
      doc(
        rule('app/work', [{ match: {} }, ctr(3, 300), { accept: null }]),
        rule('app/work/ipv6-blocked', [ctr(1, 80), { drop: null }]),
        rule('app-in/work', [ctr(5, 5000), { accept: null }]),
        rule('kill-switch', [ctr(2, 120), { drop: null }]),
      ),
      'awg',
    );
    expect(Object.fromEntries(m)).toEqual({
      'app/work': { packets: 4, bytes: 380 },
      'app-in/work': { packets: 5, bytes: 5000 },
      'kill-switch': { packets: 2, bytes: 120 },
    });
  });

  it('values above 2^32 keep their size', () => {
    expect(
      parseCountersJson(doc(rule('app/big', [ctr(2 ** 33, 2 ** 45)])), 'awg').get('app/big'),
    ).toEqual({ packets: 2 ** 33, bytes: 2 ** 45 });
  });

  it('skips hostile or missing entries instead of guessing', () => {
    const m = parseCountersJson(
      doc(
        rule('app/neg', [ctr(-1, 10)]),
        rule('app/str', [ctr('5', '500')]),
        rule('app/float', [ctr(1.5, 10)]),
        rule('app/huge', [ctr(1, 2 ** 60)]),
        rule('app/none', [{ accept: null }]),
        rule('app/two', [ctr(1, 1), ctr(2, 2)]),
        rule('app/notarray', { counter: { packets: 1, bytes: 1 } }),
        rule(42, [ctr(1, 1)]),
        rule('', [ctr(1, 1)]),
        rule('x'.repeat(500), [ctr(1, 1)]),
        rule('app/other', [ctr(1, 1)], { table: 'someone-else' }),
        rule('app/ip', [ctr(1, 1)], { family: 'ip' }),
        { rule: null },
        { rule: [1, 2] },
        null,
        'text',
        rule('app/ok', [ctr(7, 700)]),
      ),
      'awg',
    );
    expect(Object.fromEntries(m)).toEqual({ 'app/ok': { packets: 7, bytes: 700 } });
  });

  it('a listing that is not the expected JSON yields nothing', () => {
    for (const t of [
      '',
      'table inet awg {',
      '[]',
      'null',
      '{"nftables": {}}',
      '{"nftables": 3}',
      '{"other": []}',
      '"x"',
    ])
      expect(parseCountersJson(t, 'awg').size).toBe(0);
  });

  it('reads `nft -t -j list ruleset inet`; an absent table is no counters', async () => {
    const calls: string[][] = [];
    const ok = {
      read: async (cmd: string, args: readonly string[]) => (
        calls.push([cmd, ...args]),
        { code: 0, stdout: doc(rule('app/a', [ctr(1, 60)])), stderr: '' }
      ),
    };
    expect((await readRuleCounters(ok as never, 'awg')).get('app/a')).toEqual({
      packets: 1,
      bytes: 60,
    });
    expect(calls).toEqual([['nft', '-t', '-j', 'list', 'ruleset', 'inet']]);
    const absent = {
      read: async () => ({ code: 1, stdout: '', stderr: 'Error: No such file or directory' }),
    };
    expect((await readRuleCounters(absent as never, 'awg')).size).toBe(0);
  });
});

describe('carryCounters', () => {
  const counted = listing
    .replace(
      /counter packets 0 bytes 0 accept comment "app-in\/a"/,
      'counter packets 11 bytes 1100 accept comment "app-in/a"',
    )
    .replace(
      /counter packets 0 bytes 0 accept comment "app\/a"/,
      'counter packets 5 bytes 500 accept comment "app/a"',
    )
    .replace(
      /counter packets 0 bytes 0 drop comment "kill-switch"/g,
      'counter packets 3 bytes 180 drop comment "kill-switch"',
    );
  const want = normaliseRuleset(listing);

  it('an unchanged table gets every value back, and still normalises to the same ruleset', () => {
    const out = carryCounters(counted, want);
    expect(out).toContain('counter packets 11 bytes 1100 accept comment "app-in/a"');
    expect(out).toContain('counter packets 5 bytes 500 accept comment "app/a"');
    // the kill-switch rule is in two chains: each keeps its own
    expect(out.match(/counter packets 3 bytes 180 drop comment "kill-switch"/g)?.length).toBe(
      counted.match(/packets 3 bytes 180 drop comment "kill-switch"/g)?.length,
    );
    expect(normaliseRuleset(out)).toBe(want);
  });

  it('a changed rule starts at 0, a removed one is gone, the others keep theirs', () => {
    const changed = want
      .replace('counter drop comment "app/d"', 'counter accept comment "app/d"')
      .split('\n')
      .filter((l) => !l.includes('comment "app/a"'))
      .join('\n');
    const out = carryCounters(counted, changed);
    expect(out).toContain('counter packets 11 bytes 1100 accept comment "app-in/a"');
    expect(out).not.toContain('comment "app/a"');
    expect(out).toMatch(/ counter accept comment "app\/d"/);
    expect(normaliseRuleset(out)).toBe(normaliseRuleset(changed));
  });

  it('the same rule text in another chain does not take its value', () => {
    const out = carryCounters(counted.replace('chain count_in {', 'chain count_other {'), want);
    expect(out).not.toContain('packets 11 bytes 1100');
  });

  it('a quoted word "counter" (a rule or cgroup named so) is not the statement', () => {
    const l =
      'table inet awg {\nchain c {\nsocket cgroupv2 level 1 "awg/counter" counter packets 4 bytes 40 accept comment "app/counter"\n}\n}\n';
    expect(carryCounters(l, normaliseRuleset(l))).toContain(
      '"awg/counter" counter packets 4 bytes 40 accept comment "app/counter"',
    );
  });
});

describe('destination sets: the per-set breakdown', () => {
  const set = (name: string, extra: Record<string, unknown>, table = 'awg') => ({
    set: { family: 'inet', name, table, type: 'ipv4_addr', handle: 2, ...extra },
  });
  const listing = doc(
    set('d4_blk', { comment: 'awg n=99812 sha256=ab12', flags: ['interval'] }),
    set('d6_blk', { comment: 'awg n=3 sha256=cd34', flags: ['interval'] }),
    set('l4_blk', { flags: ['timeout'] }),
    set('w_svc', { type: 'cgroupsv2', flags: ['timeout'] }),
    set('d4_other', { comment: 'awg n=7 sha256=ef56', flags: ['interval'] }, 'foreign'),
    rule('app/blk/@d4_blk', [ctr(4, 240)]),
    rule('app/blk/@l4_blk', [ctr(2, 100)]),
    rule('app/blk/@d6_blk', [ctr(1, 80)]),
    rule('app/svc', [ctr(9, 900)]),
    rule('app/x/@d4_other', [ctr(5, 5)]),
  );

  it('keeps each set of a rule apart, with its entries; the rule total stays the sum', () => {
    const t = parseTableCounters(listing, 'awg');
    expect(t.rules.get('app/blk')).toEqual({ packets: 7, bytes: 420 });
    expect(t.sets.get('blk')).toEqual([
      { set: 'd4_blk', kind: 'static', elements: 99812, packets: 4, bytes: 240 },
      { set: 'l4_blk', kind: 'learned', packets: 2, bytes: 100 },
      { set: 'd6_blk', kind: 'static', elements: 3, packets: 1, bytes: 80 },
    ]);
    // a rule without sets, a set of another table: no breakdown
    expect([...t.sets.keys()]).toEqual(['blk']);
  });

  it('counts a learned set from a listing of it alone; a failed read leaves its count out', async () => {
    const calls: string[] = [];
    const learned = JSON.stringify({
      nftables: [
        set('l4_blk', {
          flags: ['timeout'],
          elem: [{ elem: { val: '192.0.2.1', timeout: 60 } }, { elem: { val: '192.0.2.2' } }],
        }),
      ],
    });
    const exec = (ok: boolean) => ({
      read: async (cmd: string, args: readonly string[]) => {
        calls.push([cmd, ...args].join(' '));
        return args.includes('set')
          ? ok
            ? { code: 0, stdout: learned, stderr: '' }
            : { code: 1, stdout: '', stderr: 'Error' }
          : { code: 0, stdout: listing, stderr: '' };
      },
    });
    const t = await readTableCounters(exec(true) as never, 'awg');
    expect(t.sets.get('blk')![1]).toEqual({
      set: 'l4_blk',
      kind: 'learned',
      elements: 2,
      packets: 2,
      bytes: 100,
    });
    expect(calls).toEqual(['nft -t -j list ruleset inet', 'nft -j list set inet awg l4_blk']);
    const f = await readTableCounters(exec(false) as never, 'awg');
    expect(f.sets.get('blk')![1]).not.toHaveProperty('elements');
  });
});
