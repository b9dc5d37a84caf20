/**
 * A destination rule in the status: its sets as the model names them, each with its line's
 * hits and entries as the table holds them, `learned` from the learned sets, the DNS stub's
 * names through the seam; the text lines of `awg status`; the wire copy both ways.
 */
import { describe, expect, it } from 'vitest';
import { destinationCounters, fromRead } from '../../../src/daemon/rule-sets.js';
import { ruleSetLines } from '../../../src/cli/commands/status.js';
import { statusFromWire, statusToWire } from '../../../src/daemon/wire/status.js';
import type { StatusResponse } from '../../../src/daemon/core.js';
import type { SetCounter } from '../../../src/resources/firewall/counters.js';

const to = { static4: 'd4_blk', learned4: 'l4_blk', static6: 'd6_blk', learned6: 'l6_blk' };
const read: SetCounter[] = [
  { set: 'd4_blk', kind: 'static', elements: 99812, packets: 4, bytes: 240 },
  { set: 'l4_blk', kind: 'learned', elements: 5, packets: 2, bytes: 100 },
  { set: 'l6_blk', kind: 'learned', elements: 1, packets: 0, bytes: 0 },
];

describe('destination rules in the status', () => {
  it("the model's sets in order; a set the table lacks counts 0 with the entries it is meant to hold", () => {
    const r = destinationCounters({ to }, read, {
      sets: [{ name: 'd6_blk', kind: 'static', family: 6, elements: ['2001:db8::/32'] }],
    });
    expect(r).toEqual({
      sets: [
        { name: 'd4_blk', kind: 'static', elements: 99812, packets: 4, bytes: 240 },
        { name: 'l4_blk', kind: 'learned', elements: 5, packets: 2, bytes: 100 },
        { name: 'd6_blk', kind: 'static', elements: 1, packets: 0, bytes: 0 },
        { name: 'l6_blk', kind: 'learned', elements: 1, packets: 0, bytes: 0 },
      ],
      learned: 6,
    });
  });

  it('a learned set not read: no `learned` (not a guess of 0); a rule without `to`: nothing', () => {
    const r = destinationCounters({ to: { learned4: 'l4_x' } }, []);
    expect(r).toEqual({ sets: [{ name: 'l4_x', kind: 'learned', packets: 0, bytes: 0 }] });
    expect(destinationCounters({}, [])).toEqual({});
    expect(destinationCounters(undefined, [])).toEqual({});
  });

  it('direct mode: the sets the table names', () => {
    expect(fromRead(read.slice(0, 2))).toEqual({
      sets: [
        { name: 'd4_blk', kind: 'static', elements: 99812, packets: 4, bytes: 240 },
        { name: 'l4_blk', kind: 'learned', elements: 5, packets: 2, bytes: 100 },
      ],
      learned: 5,
    });
    expect(fromRead([])).toEqual({});
  });

  it('text lines under the rule', () => {
    expect(
      ruleSetLines({
        sets: [
          { name: 'd4_blk', kind: 'static', elements: 99812, packets: 4, bytes: 240 },
          { name: 'l4_blk', kind: 'learned', packets: 0, bytes: 0 },
        ],
        learned: 5,
        learnedNames: 2,
      }),
    ).toEqual([
      '  set d4_blk (static): 99,812 entries, hits 4 packets 240 B',
      '  set l4_blk (learned): entries not read, hits 0 packets 0 B',
      '  learned: 5 addresses from 2 names',
    ]);
    expect(ruleSetLines({})).toEqual([]);
  });

  it('the wire copies sets and learned both ways; a rule without sets stays without', () => {
    const s: StatusResponse = {
      state: 'converged',
      objects: [],
      tunnels: [],
      rules: [
        {
          name: 'blk',
          target: 'vpn',
          route: 'blocked',
          txPackets: 6,
          txBytes: 340,
          rxPackets: 0,
          rxBytes: 0,
          sets: [
            { name: 'd4_blk', kind: 'static', elements: 3, packets: 4, bytes: 240 },
            { name: 'l4_blk', kind: 'learned', packets: 2, bytes: 100 },
          ],
          learned: 0,
          learnedNames: 0,
        },
        {
          name: 'web',
          target: 'vpn',
          route: 'vpn',
          txPackets: 1,
          txBytes: 2,
          rxPackets: 3,
          rxBytes: 4,
        },
      ],
    };
    expect(statusFromWire(statusToWire(s))).toEqual(s);
    const w = statusToWire(s);
    w.rules[0]!.sets.push({ name: 'x', kind: 'future', packets: 0, bytes: 0 });
    expect(statusFromWire(w).rules![0]!.sets).toHaveLength(2);
  });
});
