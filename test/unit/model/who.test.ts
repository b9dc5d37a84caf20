import { describe, expect, it } from 'vitest';
import { Match, Rule } from '../../../src/config/schema-rules.js';
import { AwgError } from '../../../src/errors.js';
import {
  compileRules,
  compileSubjectMatch,
  compileMatch,
  placedBy,
} from '../../../src/model/match.js';
import {
  cgroupLevel,
  identityNames,
  parsePasswd,
  ruleWho,
  whoSets,
} from '../../../src/model/who.js';
import { planGateMarks, type MountEntry } from '../../../src/procs/gate-marks.js';

const rule = (match: unknown, extra: Record<string, unknown> = {}) =>
  Rule.parse({ target: 'vpn', match, ...extra });

describe('identity matchers in the schema', () => {
  it('accepts user names and uids, units, cgroup paths and flatpak ids', () => {
    for (const m of [
      { user: 'alice' },
      { user: 'svc-backup$' },
      { user: 1000 },
      { user: 0 },
      { unit: 'nginx.service' },
      { unit: 'getty@tty1.service' },
      { unit: 'system-foo\\x2dbar.slice' },
      { cgroup: '/system.slice/x.service' },
      { cgroup: '/user.slice/user-1000.slice' },
      { flatpak: 'org.mozilla.firefox' },
      { flatpak: 'com.example.My_App' },
      { flatpak: 'io.github.some_dev.some-app' },
    ])
      expect(Match.safeParse(m).success, JSON.stringify(m)).toBe(true);
  });
  it('refuses malformed ones', () => {
    for (const m of [
      { user: '' },
      { user: '-x' },
      { user: 'a b' },
      { user: -1 },
      { user: 1.5 },
      { unit: 'nginx' },
      { unit: 'nginx.exe' },
      { unit: 'a/b.service' },
      { cgroup: 'system.slice/x' },
      { cgroup: '/system.slice/../x' },
      { cgroup: '/a//b' },
      { cgroup: '/' },
      { flatpak: 'firefox' },
      { flatpak: 'org.mozilla' },
      { flatpak: 'org.1mozilla.firefox' },
      { flatpak: 'org.mozilla.fire fox' },
      { flatpak: 'org.some-dev.app' },
      { user: 'alice', ignoreCase: true },
      { unit: 'x.service', name: 'x' },
    ])
      expect(Match.safeParse(m).success, JSON.stringify(m)).toBe(false);
  });
  it('names every kind in the error of an unknown matcher', () => {
    const r = Match.safeParse({ bogus: 1 });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toContain('user, unit, cgroup or flatpak');
  });
});

describe('subject matching', () => {
  it('identity kinds never fit by executable path', () => {
    for (const m of [{ user: 0 }, { unit: 'a.service' }, { cgroup: '/a' }, { flatpak: 'a.b.c' }])
      expect(compileMatch(Match.parse(m))('/usr/bin/a')).toBe(false);
  });
  it('user fits by uid, names through the lookup (unknown: never)', () => {
    const byUid = compileSubjectMatch(Match.parse({ user: 1000 }));
    expect(byUid({ exe: '/x', uid: 1000 })).toBe(true);
    expect(byUid({ exe: '/x', uid: 1001 })).toBe(false);
    expect(byUid({ exe: '/x' })).toBe(false);
    const byName = compileSubjectMatch(Match.parse({ user: 'alice' }), {
      uidOf: (n) => (n === 'alice' ? 1000 : undefined),
    });
    expect(byName({ exe: '/x', uid: 1000 })).toBe(true);
    const unknown = compileSubjectMatch(Match.parse({ user: 'bob' }), { uidOf: () => undefined });
    expect(unknown({ exe: '/x', uid: 1000 })).toBe(false);
  });
  it('unit and cgroup fit the cgroup and below it, on a segment boundary', () => {
    const unit = compileSubjectMatch(Match.parse({ unit: 'web.service' }));
    expect(unit({ exe: '/x', cgroup: '/system.slice/web.service' })).toBe(true);
    expect(unit({ exe: '/x', cgroup: '/system.slice/web.service/sub' })).toBe(true);
    expect(unit({ exe: '/x', cgroup: '/system.slice/web.service2' })).toBe(false);
    expect(unit({ exe: '/x' })).toBe(false);
    const viaSystemd = compileSubjectMatch(Match.parse({ unit: 'web.service' }), {
      unitCgroup: () => '/custom.slice/web.service',
    });
    expect(viaSystemd({ exe: '/x', cgroup: '/custom.slice/web.service' })).toBe(true);
    expect(viaSystemd({ exe: '/x', cgroup: '/system.slice/web.service' })).toBe(false);
    const cg = compileSubjectMatch(Match.parse({ cgroup: '/a/b' }));
    expect(cg({ exe: '/x', cgroup: '/a/b' })).toBe(true);
    expect(cg({ exe: '/x', cgroup: '/a/bc' })).toBe(false);
  });
  it('flatpak fits the application id exactly', () => {
    const f = compileSubjectMatch(Match.parse({ flatpak: 'org.mozilla.firefox' }));
    expect(f({ exe: '/app/bin/firefox', flatpak: 'org.mozilla.firefox' })).toBe(true);
    expect(f({ exe: '/app/bin/firefox', flatpak: 'org.mozilla.Firefox' })).toBe(false);
    expect(f({ exe: '/app/bin/firefox' })).toBe(false);
  });
  it('placedBy and the matcher: first fit over mixed kinds, needs', () => {
    expect(placedBy(Match.parse({ name: 'x' }))).toBe('exe');
    expect(placedBy(Match.parse({ flatpak: 'a.b.c' }))).toBe('flatpak');
    for (const m of [{ user: 1 }, { unit: 'a.service' }, { cgroup: '/a' }])
      expect(placedBy(Match.parse(m))).toBe('nft');
    const m = compileRules([
      rule({ unit: 'web.service' }, { name: 'web' }),
      rule({ name: 'curl' }, { name: 'curl' }),
      rule({ user: 1000 }, { name: 'alice' }),
    ]);
    expect(m.needs).toEqual({ uid: true, cgroup: true, flatpak: false });
    expect(m.match('/usr/bin/curl')?.name).toBe('curl');
    expect(m.match({ exe: '/usr/bin/curl', cgroup: '/system.slice/web.service' })?.name).toBe(
      'web',
    );
    expect(m.match({ exe: '/usr/bin/curl', cgroup: '/system.slice/web.service' })?.placedBy).toBe(
      'nft',
    );
    expect(
      m.failoverChain({ exe: '/usr/bin/curl', uid: 1000, cgroup: '/' }).map((r) => r.name),
    ).toEqual(['curl', 'alice']);
  });
});

describe('ruleWho', () => {
  const base = { rootDepth: 0 };
  it('user → uid (by number, or by name through the facts)', () => {
    expect(ruleWho(rule({ user: 1000 }), {}, base, 0)).toEqual({ kind: 'uid', uid: 1000 });
    expect(ruleWho(rule({ user: 'alice' }), { users: { alice: 1001 } }, base, 0)).toEqual({
      kind: 'uid',
      uid: 1001,
    });
  });
  it('an unknown user name is a located config error', () => {
    let err: unknown;
    try {
      ruleWho(rule({ user: 'nobody-here' }), { users: {} }, base, 3);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AwgError);
    expect((err as AwgError).kind).toBe('invalid-config');
    expect((err as AwgError).issues[0]!.path).toBe('rules[3].match.user');
    expect((err as AwgError).message).toContain('unknown user "nobody-here"');
  });
  it('unit → the w_ set at the level of its cgroup (systemd path, else system.slice)', () => {
    expect(ruleWho(rule({ unit: 'web.service' }, { name: 'web' }), {}, base, 0)).toEqual({
      kind: 'cgroups',
      set: 'w_web',
      level: 2,
    });
    expect(
      ruleWho(
        rule({ unit: 'web.service' }),
        { unitCgroups: { 'web.service': '/a.slice/b.slice/web.service' } },
        base,
        4,
      ),
    ).toEqual({ kind: 'cgroups', set: 'w_rule-4', level: 3 });
  });
  it('cgroup → its level, plus the depth of a container mount root', () => {
    expect(ruleWho(rule({ cgroup: '/x/y/z' }, { name: 'z' }), {}, { rootDepth: 2 }, 0)).toEqual({
      kind: 'cgroups',
      set: 'w_z',
      level: 5,
    });
    expect(cgroupLevel(0, '/system.slice/x.service')).toBe(2);
  });
  it('program, flatpak and destination-only rules have none', () => {
    expect(ruleWho(rule({ name: 'x' }), {}, base, 0)).toBeUndefined();
    expect(ruleWho(rule({ flatpak: 'org.a.b' }), {}, base, 0)).toBeUndefined();
    expect(ruleWho(Rule.parse({ target: 'vpn', to: { cidrs: ['10.0.0.0/8'] } }), {}, base, 0)).toBe(
      undefined,
    );
  });
  it('whoSets lists the enabled unit/cgroup rules; identityNames what to probe', () => {
    const rules = [
      rule({ unit: 'a.service' }, { name: 'a' }),
      rule({ cgroup: '/c' }, { name: 'c', enabled: false }),
      rule({ cgroup: '/d' }, { name: 'd' }),
      rule({ user: 'bob' }),
      rule({ user: 7 }),
    ];
    expect(whoSets(rules, {})).toEqual([
      { set: 'w_a', paths: ['/system.slice/a.service'] },
      { set: 'w_d', paths: ['/d'] },
    ]);
    expect(identityNames(rules)).toEqual({ users: ['bob'], units: ['a.service'] });
  });
  it('parsePasswd', () => {
    expect(
      parsePasswd(
        'root:x:0:0:root:/root:/bin/bash\n# c\nbad\nalice:x:1000:1000::/home/a:/bin/sh\nalice:x:5:5::/:/x\nz:x:q:1::/:/x\n',
      ),
    ).toEqual({ root: 0, alice: 1000 });
  });
});

describe('gate marks of identity rules', () => {
  const mounts: MountEntry[] = [
    { dev: '8:1', mountPoint: '/', fsType: 'ext4', noexec: false },
    { dev: '8:2', mountPoint: '/opt', fsType: 'ext4', noexec: false },
  ];
  it('user/unit/cgroup and destination-only rules need no marks; flatpak needs them all', () => {
    expect(
      planGateMarks(
        [
          rule({ user: 1 }),
          rule({ unit: 'a.service' }),
          rule({ cgroup: '/a' }),
          Rule.parse({ target: 'vpn', to: { cidrs: ['10.0.0.0/8'] } }),
        ],
        mounts,
      ),
    ).toEqual({ marks: [], scope: 'none' });
    expect(planGateMarks([rule({ dir: '/opt' }), rule({ unit: 'a.service' })], mounts).scope).toBe(
      'trees',
    );
    const all = planGateMarks([rule({ dir: '/opt' }), rule({ flatpak: 'org.a.b' })], mounts);
    expect(all.scope).toBe('all');
    expect(all.marks.map((m) => m.path)).toEqual(['/', '/opt']);
  });
});
