import { describe, expect, it } from 'vitest';
import {
  cgroupSetComment,
  cgroupSetsOfRuleset,
  fillCgroupSets,
} from '../../../../src/resources/firewall/cgroup-sets.js';
import type { RawElement } from '../../../../src/native/nftset.js';

describe('cgroup sets of a ruleset', () => {
  it('reads the cgroup of each w_ set from its comment, as rendered (one line) or listed', () => {
    const listed = [
      'table inet awg {',
      '\tset d4_x {',
      '\t\ttype ipv4_addr',
      '\t\tcomment "awg-cgroup=unified/not/this"',
      '\t}',
      '\tset w_web {',
      '\t\ttype cgroupsv2',
      '\t\tcomment "awg-cgroup=unified/system.slice/web.service"',
      '\t}',
      '\tset w_none {',
      '\t\ttype cgroupsv2',
      '\t}',
      '\tset w_c { type cgroupsv2; comment "awg-cgroup=a/b"; }',
      '}',
    ].join('\n');
    expect(cgroupSetsOfRuleset(listed)).toEqual([
      { set: 'w_web', paths: ['unified/system.slice/web.service'] },
      { set: 'w_c', paths: ['a/b'] },
    ]);
  });
  it('a comment fits nft: at most 128 characters', () => {
    expect(cgroupSetComment('unified/system.slice/x.service')).toBe(
      'awg-cgroup=unified/system.slice/x.service',
    );
    expect(() => cgroupSetComment('x'.repeat(118))).toThrow(/too long/);
    expect(cgroupSetComment('x'.repeat(117)).length).toBe(128);
  });
});

describe('fillCgroupSets', () => {
  it('replaces each set with the ids of the cgroups that exist, in order, without duplicates', () => {
    const calls: [string, string[]][] = [];
    const writer = {
      replace: (set: string, els: readonly RawElement[]) =>
        void calls.push([set, els.map((e) => e.key.toString('hex'))]),
    };
    const ino: Record<string, bigint> = { 'u/a': 20n, 'u/b': 7n };
    const out = fillCgroupSets(
      writer,
      [
        { set: 'w_a', paths: ['u/a', 'u/b', 'u/a'] },
        { set: 'w_gone', paths: ['u/missing'] },
      ],
      (p) => ino[p],
    );
    expect(out).toEqual([
      { set: 'w_a', ids: [7n, 20n] },
      { set: 'w_gone', ids: [] },
    ]);
    expect(calls.map(([s, k]) => [s, k.length])).toEqual([
      ['w_a', 2],
      ['w_gone', 0],
    ]);
  });
});
