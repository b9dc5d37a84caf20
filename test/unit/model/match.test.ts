import { describe, expect, it } from 'vitest';
import { Rule, type Match } from '../../../src/config/schema.js';
import {
  compileMatch,
  compileRules,
  defaultRoute,
  effectiveRoute,
  exeSubject,
  type RuleMatch,
} from '../../../src/model/match.js';

const rule = (
  match: Match | Record<string, unknown>,
  target = 'vpn',
  extra: Record<string, unknown> = {},
): Rule => Rule.parse({ match, target, ...extra });

describe('compileMatch: documented case rules', () => {
  const cases: [string, Record<string, unknown>, string, boolean][] = [
    // name: basename exactly
    ['name exact', { name: 'firefox' }, '/usr/bin/firefox', true],
    ['name no substring', { name: 'fire' }, '/usr/bin/firefox', false],
    ['name no superstring', { name: 'firefox-esr' }, '/usr/bin/firefox', false],
    ['name is the basename, not a dir', { name: 'bin' }, '/usr/bin/x', false],
    ['name case-sensitive', { name: 'Firefox' }, '/usr/bin/firefox', false],
    ['name ignoreCase', { name: 'Firefox', ignoreCase: true }, '/usr/bin/FIREFOX', true],
    ['name no glob', { name: 'fire*' }, '/usr/bin/firefox', false],
    // dir: segment-boundary prefix, recursive
    ['dir direct child', { dir: '/opt/app' }, '/opt/app/run', true],
    ['dir recursive', { dir: '/opt/app' }, '/opt/app/lib/x/y/run', true],
    ['dir segment boundary', { dir: '/opt/app' }, '/opt/apple/run', false],
    ['dir trailing slash', { dir: '/opt/app/' }, '/opt/app/run', true],
    ['dir trailing slash boundary', { dir: '/opt/app/' }, '/opt/apple/run', false],
    ['dir root matches all', { dir: '/' }, '/usr/bin/x', true],
    ['dir case-sensitive', { dir: '/Opt/App' }, '/opt/app/run', false],
    ['dir ignoreCase', { dir: '/Opt/App', ignoreCase: true }, '/opt/APP/run', true],
    ['dir not a sibling file', { dir: '/usr/bin/python' }, '/usr/bin/python3', false],
    // path: picomatch glob, dot: true
    ['glob star in segment', { path: '/usr/bin/fire*' }, '/usr/bin/firefox', true],
    ['glob star does not cross /', { path: '/usr/*' }, '/usr/bin/firefox', false],
    ['glob globstar', { path: '/usr/**/firefox' }, '/usr/lib/a/b/firefox', true],
    ['glob globstar zero segments', { path: '/usr/**/firefox' }, '/usr/firefox', true],
    ['glob dot files', { path: '/home/*/.local/bin/*' }, '/home/u/.local/bin/tool', true],
    ['glob dot basename', { path: '/opt/*' }, '/opt/.hidden', true],
    ['glob whole path only', { path: '/bin/sh' }, '/usr/bin/sh', false],
    ['glob braces', { path: '/usr/bin/{curl,wget}' }, '/usr/bin/wget', true],
    [
      'glob question mark is one char',
      { path: '/usr/bin/python3.?' },
      '/usr/bin/python3.11',
      false,
    ],
    ['glob case-sensitive', { path: '/usr/bin/Fire*' }, '/usr/bin/firefox', false],
    ['glob ignoreCase', { path: '/usr/bin/Fire*', ignoreCase: true }, '/usr/bin/firefox', true],
    // regex: unanchored
    ['regex unanchored', { regex: 'firefox' }, '/usr/lib/firefox-esr/firefox-esr', true],
    ['regex anchored', { regex: '^/usr/bin/[a-z]+$' }, '/usr/bin/curl', true],
    ['regex anchored miss', { regex: '^/bin/' }, '/usr/bin/curl', false],
    ['regex case-sensitive', { regex: 'Firefox' }, '/usr/bin/firefox', false],
    ['regex ignoreCase', { regex: 'Firefox', ignoreCase: true }, '/usr/bin/firefox', true],
  ];
  it.each(cases)('%s', (_t, m, path, want) => {
    const parsed = rule(m).match!;
    expect(compileMatch(parsed)(path)).toBe(want);
  });

  it('a regex is stateless between calls (no g flag)', () => {
    const t = compileMatch({ regex: 'a', ignoreCase: false });
    expect([t('/a'), t('/a'), t('/a')]).toEqual([true, true, true]);
  });

  it('an invalid regex is an invalid-config error', () => {
    expect(() => compileMatch({ regex: '(', ignoreCase: false })).toThrow(
      /invalid regular expression/,
    );
  });

  it('strips the " (deleted)" suffix of a replaced binary', () => {
    expect(exeSubject('/usr/bin/x (deleted)')).toBe('/usr/bin/x');
    expect(exeSubject('/usr/bin/x')).toBe('/usr/bin/x');
  });
});

describe('compileRules', () => {
  const rules = [
    rule({ name: 'curl' }, 'a', { name: 'off', enabled: false }),
    rule({ dir: '/opt/app' }, 'vpn', { fallback: 'failover' }),
    rule({ regex: 'app' }, 'backup', { fallback: 'allow-direct' }),
    rule({ name: 'curl' }, 'direct'),
    rule({ path: '/opt/**' }, 'block'),
  ];
  const m = compileRules(rules);

  it('first enabled match wins; disabled rules never match; names default to rule-<index>', () => {
    expect(m.match('/usr/bin/curl')).toEqual({
      index: 3,
      name: 'rule-3',
      target: 'direct',
      fallback: 'block',
    });
    expect(m.match('/opt/app/x')).toMatchObject({ index: 1, name: 'rule-1', target: 'vpn' });
    expect(m.match('/opt/other')).toMatchObject({ index: 4, target: 'block' });
    expect(m.match('/usr/bin/ls')).toBeUndefined();
    expect(m.byName('off')).toBeUndefined();
    expect(m.byName('rule-2')).toMatchObject({ index: 2 });
  });

  it('failoverChain lists every enabled match in order', () => {
    expect(m.failoverChain('/opt/app/x').map((r) => r.index)).toEqual([1, 2, 4]);
    expect(m.failoverChain('/usr/bin/curl').map((r) => r.index)).toEqual([3]);
    expect(m.failoverChain('/bin/ls')).toEqual([]);
  });

  it('effective route follows the fallback semantics', () => {
    const chain = m.failoverChain('/opt/app/x');
    expect(effectiveRoute(chain, () => true)).toBe('vpn');
    // vpn down → failover to backup
    expect(effectiveRoute(chain, (t) => t === 'backup')).toBe('backup');
    // both down → backup's allow-direct
    expect(effectiveRoute(chain, () => false)).toBe('direct');
    const r = (target: string, fallback: RuleMatch['fallback']): RuleMatch => ({
      index: 0,
      name: 'x',
      target,
      fallback,
    });
    expect(effectiveRoute([r('vpn', 'block')], () => false)).toBe('blocked');
    expect(effectiveRoute([r('vpn', 'drop')], () => true)).toBe('blocked');
    expect(effectiveRoute([r('vpn', 'failover')], () => false)).toBe('blocked');
    expect(effectiveRoute([r('vpn', 'failover'), r('block', 'block')], () => false)).toBe(
      'blocked',
    );
    expect(effectiveRoute([r('vpn', 'failover'), r('direct', 'block')], () => false)).toBe(
      'direct',
    );
    expect(effectiveRoute([r('direct', 'allow-direct')], () => false)).toBe('direct');
    expect(effectiveRoute([], () => true)).toBe('blocked');
    expect(defaultRoute('direct', () => false)).toBe('direct');
    expect(defaultRoute('vpn', () => true)).toBe('vpn');
    expect(defaultRoute('vpn', () => false)).toBe('blocked');
  });
});
