import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Rule } from '../../../src/config/schema.js';
import { compileRules } from '../../../src/model/match.js';
import { soakPrograms, soakRules } from '../../netns/soak-programs.js';

const matcherOf = (rulesYaml: string) => compileRules((parse(rulesYaml) as Rule[]) ?? []);
const variants = [
  { appsTarget: 'vpn', extra: false },
  { appsTarget: 'direct', extra: true },
];

describe('soak programs (two soaks on one host each place only their own programs)', () => {
  const mine = soakPrograms('awgt-0556101c');
  const theirs = soakPrograms('awgt-9b5bb043');

  it('each run matches its own programs: a by apps, b by extra while it exists', () => {
    const on = matcherOf(soakRules(mine, variants[1]!));
    expect(on.match(`/tmp/x/apps/${mine.a}`)?.name).toBe('apps');
    expect(on.match(`/tmp/x/apps/${mine.b}`)?.name).toBe('extra');
    const off = matcherOf(soakRules(mine, variants[0]!));
    expect(off.match(`/tmp/x/apps/${mine.a}`)?.name).toBe('apps');
    expect(off.match(`/tmp/x/apps/${mine.b}`)).toBeUndefined();
  });

  it("another run's programs match none of this run's rules, in any variant", () => {
    for (const v of variants) {
      const m = matcherOf(soakRules(mine, v));
      expect(m.match(`/tmp/y/apps/${theirs.a}`)).toBeUndefined();
      expect(m.match(`/tmp/y/apps/${theirs.b}`)).toBeUndefined();
    }
  });

  it('a cgroup root that is not a plain name is refused (it would not be a safe file name)', () => {
    expect(() => soakPrograms('awgt-a/b')).toThrow(/unexpected cgroup root/);
  });
});
