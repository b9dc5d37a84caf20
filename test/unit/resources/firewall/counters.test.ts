import { describe, expect, it } from 'vitest';
import { parseCountersJson, readRuleCounters } from '../../../../src/resources/firewall/counters.js';

const rule = (comment: unknown, expr: unknown, extra: Record<string, unknown> = {}) => ({ rule: { family: 'inet', table: 'awg', chain: 'route_out', handle: 3, comment, expr, ...extra } });
const ctr = (packets: unknown, bytes: unknown) => ({ counter: { packets, bytes } });
const doc = (...items: unknown[]) => JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6' } }, { table: { family: 'inet', name: 'awg', handle: 1 } }, ...items] });

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
    expect(parseCountersJson(doc(rule('app/big', [ctr(2 ** 33, 2 ** 45)])), 'awg').get('app/big')).toEqual({ packets: 2 ** 33, bytes: 2 ** 45 });
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
    for (const t of ['', 'table inet awg {', '[]', 'null', '{"nftables": {}}', '{"nftables": 3}', '{"other": []}', '"x"'])
      expect(parseCountersJson(t, 'awg').size).toBe(0);
  });

  it('reads `nft -j list table inet <t>`; an absent table is no counters', async () => {
    const calls: string[][] = [];
    const ok = { read: async (cmd: string, args: readonly string[]) => (calls.push([cmd, ...args]), { code: 0, stdout: doc(rule('app/a', [ctr(1, 60)])), stderr: '' }) };
    expect((await readRuleCounters(ok as never, 'awg')).get('app/a')).toEqual({ packets: 1, bytes: 60 });
    expect(calls).toEqual([['nft', '-j', 'list', 'table', 'inet', 'awg']]);
    const absent = { read: async () => ({ code: 1, stdout: '', stderr: 'Error: No such file or directory' }) };
    expect((await readRuleCounters(absent as never, 'awg')).size).toBe(0);
  });
});
