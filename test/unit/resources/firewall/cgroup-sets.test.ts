import { describe, expect, it } from 'vitest';
import {
  cgroupSetComment,
  cgroupSetsOfRuleset,
  fillCgroupSets,
} from '../../../../src/resources/firewall/cgroup-sets.js';
import type { RawElement } from '../../../../src/native/nftset.js';
import { readFileSync } from 'node:fs';
import type { NftPolicy } from '../../../../src/resources/firewall/policy.js';
import { firewallSpec, renderTable } from '../../../../src/resources/firewall/render.js';
import { normaliseRuleset } from '../../../../src/resources/firewall/normalise.js';
import { createLinuxFirewallDriver } from '../../../../src/resources/firewall/linux.js';
import { DEFAULT_CLAIMS } from '../../../../src/pipeline/claims.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import type { Change } from '../../../../src/model/change.js';
import type { FirewallSpec } from '../../../../src/model/resources.js';
import { RecordingExec } from '../../../helpers/exec.js';

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

describe('the firewall driver fills the cgroup sets', () => {
  const golden = new URL('./golden/', import.meta.url);
  const policy = JSON.parse(
    readFileSync(new URL('per-app-full.policy.json', golden), 'utf8'),
  ) as NftPolicy;
  const base = firewallSpec(policy);
  // the table with one w_ set, as the render is to write it
  const listing = renderTable(policy).replace(
    /^(table inet \S+ \{\n\tcomment "managed-by=awg"\n)/,
    `$1\tset w_web {\n\t\ttype cgroupsv2\n\t\tcomment "${cgroupSetComment('unified/system.slice/web.service')}"\n\t}\n`,
  );
  const spec: FirewallSpec = { ...base, ruleset: normaliseRuleset(listing) };
  const run = async (dryRun: boolean) => {
    const replaced: string[] = [];
    const d = createLinuxFirewallDriver({
      exec: new RecordingExec({ 'nft -t list ruleset': listing }),
      setWriter: () => ({
        replace: (set: string) => void replaced.push(set),
        close: () => undefined,
      }),
    });
    const ctx = {
      exec: new RecordingExec({ 'nft -t list ruleset': listing }, dryRun),
      reporter: new MemoryReporter(),
      state: new MemoryStateStore(),
      dryRun,
      claims: { ...DEFAULT_CLAIMS, nftTable: spec.table },
    };
    const change = {
      kind: 'firewall',
      id: `firewall/inet/${spec.table}`,
      action: 'update',
      reason: 'test',
      cause: 'drift',
      before: spec,
      after: { ...spec, boot: undefined },
    } as unknown as Change<'firewall'>;
    await d.apply(change, ctx);
    return { replaced, ctx };
  };
  it('an apply that finds the table in place still rewrites its w_ sets (a one-shot awg apply refreshes them), without a mutation', async () => {
    expect(spec.ruleset).toContain('set w_web');
    const { replaced, ctx } = await run(false);
    expect(replaced).toEqual(['w_web']);
    expect(ctx.exec.log.filter((l) => l.includes('fill'))).toEqual([]);
  });
  it('a dry run writes nothing', async () => {
    const { replaced } = await run(true);
    expect(replaced).toEqual([]);
  });
});
