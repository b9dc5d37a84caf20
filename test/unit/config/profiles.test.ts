/**
 * Obfuscation profiles (`tunnels.<name>.profiles`): the schema, the split between server-side
 * parameters (the receiver checks them) and client-side ones, located errors, and the engine
 * spec taking the active profile's obfuscation.
 */
import { describe, expect, it } from 'vitest';
import { exportWgQuick } from '../../../src/config/export.js';
import { loadConfigText } from '../../../src/config/load.js';
import { formatPath } from '../../../src/config/positions.js';
import {
  activeProfile,
  profileObfuscation,
  serverSideChanges,
  withActiveProfiles,
} from '../../../src/config/profiles.js';
import { Config, type AwgObfuscation } from '../../../src/config/schema.js';
import { SERVER_SIDE_KEYS } from '../../../src/config/schema-obfuscation.js';
import { checkSemantics } from '../../../src/config/semantic.js';
import { buildDesired } from '../../../src/model/desired.js';

const BASE = { jc: 4, jmin: 40, jmax: 70, s1: 20, s2: 30, h1: '100-200', h2: 300 };

function cfg(profiles: unknown[], obfuscation: Record<string, unknown> = BASE, extra = {}) {
  return Config.parse({
    version: 1,
    tunnels: {
      t: {
        type: 'amneziawg',
        privateKey: { file: 't.key' },
        addresses: ['10.0.0.2/32'],
        peers: [
          {
            publicKey: 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=',
            allowedIPs: ['10.0.0.0/24'],
          },
        ],
        obfuscation,
        profiles,
        ...extra,
      },
    },
  });
}
const errors = (profiles: unknown[], o?: Record<string, unknown>) =>
  checkSemantics(cfg(profiles, o))
    .filter((f) => f.severity === 'error')
    .map((f) => `${formatPath(f.path)}: ${f.message}`);

function engineObfuscation(c: Config): AwgObfuscation | undefined {
  const e = buildDesired(c, { facts: { cgroupNftPrefix: '' } }).resources.find(
    (r) => r.kind === 'engine',
  )!;
  return (e.spec.config as { obfuscation?: AwgObfuscation }).obfuscation;
}

describe('obfuscation profiles: schema', () => {
  it('a profile is the obfuscation fields with a name; unknown keys and bad names are refused', () => {
    expect(() => cfg([{ name: 'a', jc: 2, jmin: 10, jmax: 20 }])).not.toThrow();
    expect(() => cfg([{ name: 'a', bogus: 1 }])).toThrow();
    expect(() => cfg([{ name: 'Bad Name' }])).toThrow();
    expect(() => cfg([{ jc: 1 }])).toThrow();
    expect(() => cfg([])).toThrow();
  });

  it('wireguard tunnels have no profiles', () => {
    expect(() =>
      Config.parse({
        version: 1,
        tunnels: {
          w: {
            type: 'wireguard',
            privateKey: { file: 'k' },
            addresses: ['10.0.0.2/32'],
            peers: [{ publicKey: 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=', allowedIPs: [] }],
            profiles: [{ name: 'a' }],
          },
        },
      }),
    ).toThrow();
  });
});

describe('obfuscation profiles: server-side and client-side parameters', () => {
  it('the server-side keys are those the receiver checks', () => {
    expect([...SERVER_SIDE_KEYS].sort()).toEqual(
      [
        'h1',
        'h2',
        'h3',
        'h4',
        'headerProtectionKey',
        'randomTrailers',
        's1',
        's2',
        's3',
        's4',
      ].sort(),
    );
  });

  it('client-side changes (junk, signatures, padding, timings, cookies) need no declaration', () => {
    expect(
      errors([
        { name: 'a' },
        { name: 'b', jc: 8, jmin: 100, jmax: 200, i1: '<b 0xc0ffee><r 16>' },
        { name: 'c', contentPaddingAddition: '0-32', rekeyTimeout: 3, disableCookies: true },
      ]),
    ).toEqual([]);
  });

  it('a server-side change without `server: true` is a located error; repeating the base is no change', () => {
    expect(
      errors([
        { name: 'a', s1: 20, h1: '100-200' },
        { name: 'b', s1: 24, h3: 900 },
      ]),
    ).toEqual([
      expect.stringMatching(
        /^tunnels\.t\.profiles\[1\]\.s1: s1 is a server-side parameter .*profile "b" changes it.*server: true/,
      ),
      expect.stringMatching(/^tunnels\.t\.profiles\[1\]\.h3: h3 is a server-side parameter/),
    ]);
    expect(serverSideChanges(BASE, { name: 'x', s1: 20, randomTrailers: true })).toEqual([
      'randomTrailers',
    ]);
  });

  it('`server: true` declares it', () => {
    expect(errors([{ name: 'a' }, { name: 'b', s1: 24, h3: 900, server: true }])).toEqual([]);
  });

  it('a profile cannot carry a header protection key of its own', () => {
    expect(
      errors([{ name: 'a', headerProtectionKey: { file: 'k' }, server: true }]).join('\n'),
    ).toMatch(/profiles\[0\]\.headerProtectionKey: a profile cannot set headerProtectionKey/);
  });

  it('names are unique', () => {
    expect(errors([{ name: 'a' }, { name: 'a', jc: 1, jmin: 1, jmax: 2 }])).toEqual([
      'tunnels.t.profiles[1].name: profile "a" is also profiles[0]; names must be unique',
    ]);
  });

  it("each profile's obfuscation is checked as a whole: its own keys located in it, the base's combination at the profile", () => {
    expect(errors([{ name: 'a', jmin: 90 }])).toEqual([
      'tunnels.t.profiles[0].jmin: jmin (90) must be <= jmax (70)',
    ]);
    // s1 + 148 == s2 + 92 through the profile's s2 and the base's s1
    expect(errors([{ name: 'a', s2: 76, server: true }])).toEqual([
      expect.stringMatching(/^tunnels\.t\.profiles\[0\]\.s2: s1 \+ 148 equals s2 \+ 92/),
    ]);
    // a problem of the base alone is reported once, at obfuscation:
    expect(errors([{ name: 'a' }], { jc: 2 })).toEqual([
      'tunnels.t.obfuscation.jc: jc > 0 needs jmin and jmax',
    ]);
    expect(errors([{ name: 'a', jc: 2 }], {})).toEqual([
      'tunnels.t.profiles[0].jc: jc > 0 needs jmin and jmax',
    ]);
  });

  it("a server profile's S4 is held to the link MTU like obfuscation.s4: a warning at the profile's s4", () => {
    const warnings = (profiles: unknown[], extra = {}) =>
      checkSemantics(cfg(profiles, BASE, extra))
        .filter((f) => f.severity === 'warning')
        .map((f) => `${formatPath(f.path)}: ${f.message}`);
    // an explicit mtu of 1400 leaves 20 bytes for S4 over IPv6 (1400 + 32 + 20 + 48 = 1500)
    expect(warnings([{ name: 'a' }, { name: 'b', s4: 20, server: true }], { mtu: 1400 })).toEqual(
      [],
    );
    expect(warnings([{ name: 'a' }, { name: 'b', s4: 24, server: true }], { mtu: 1400 })).toEqual([
      expect.stringMatching(
        /^tunnels\.t\.profiles\[1\]\.s4: profile "b": 1400 with obfuscation\.s4 = 24 makes transport datagrams of 1456 bytes .*the largest MTU that fits is 1396$/,
      ),
    ]);
    // without mtu the default follows S4 down to 1280; past that the profile's s4 is too large
    expect(warnings([{ name: 'b', s4: 140, server: true }])).toEqual([]);
    expect(warnings([{ name: 'b', s4: 141, server: true }])).toEqual([
      expect.stringMatching(
        /^tunnels\.t\.profiles\[0\]\.s4: profile "b": 141 makes transport datagrams .*lower s4 to at most 140/,
      ),
    ]);
    // the base's own problem is reported once, at mtu, not again per profile
    expect(warnings([{ name: 'a' }, { name: 'b', jc: 1 }], { mtu: 1500 })).toEqual([
      expect.stringMatching(/^tunnels\.t\.mtu: 1500 makes transport datagrams/),
    ]);
  });

  it('the kernel engine refuses profiles with obfuscation', () => {
    const c = cfg([{ name: 'a', jc: 2, jmin: 10, jmax: 20 }], {}, { engine: 'kernel' });
    expect(
      checkSemantics(c)
        .filter((f) => f.severity === 'error')
        .map((f) => formatPath(f.path)),
    ).toEqual(['tunnels.t.engine']);
  });

  it('errors are located in the file', () => {
    const text = `version: 1
tunnels:
  t:
    type: amneziawg
    privateKey: { file: t.key }
    addresses: [10.0.0.2/32]
    peers:
      - publicKey: LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=
        allowedIPs: [10.0.0.0/24]
    obfuscation: { s1: 20 }
    profiles:
      - name: a
      - name: b
        s1: 30
`;
    const r = loadConfigText(text, '/tmp/c.yaml');
    const e = r.issues.find((i) => i.severity === 'error')!;
    expect(e).toMatchObject({ path: 'tunnels.t.profiles[1].s1', line: 14 });
  });
});

describe('obfuscation profiles: the active one', () => {
  it('the base with the profile on top; the first unless another is chosen', () => {
    const c = cfg([{ name: 'a' }, { name: 'b', jc: 8, jmin: 100, jmax: 120 }]);
    const t = c.tunnels.t as { profiles: { name: string }[] };
    expect(activeProfile(t.profiles as never, undefined)?.name).toBe('a');
    expect(activeProfile(t.profiles as never, 'gone')?.name).toBe('a');
    expect(profileObfuscation(BASE, { name: 'b', jc: 8 })).toEqual({ ...BASE, jc: 8 });
    expect(engineObfuscation(c)).toEqual(BASE);
    const b = withActiveProfiles(c, new Map([['t', 'b']]));
    expect(engineObfuscation(b)).toEqual({ ...BASE, jc: 8, jmin: 100, jmax: 120 });
    // the config itself is untouched; a config without profiles is the same object
    expect((c.tunnels.t as { obfuscation: unknown }).obfuscation).toEqual(BASE);
    const plain = Config.parse({ version: 1, tunnels: {} });
    expect(withActiveProfiles(plain, new Map())).toBe(plain);
  });
});

describe('obfuscation profiles: export', () => {
  it('awg export writes the first profile (what awg apply runs)', () => {
    const c = cfg([{ name: 'a', jc: 8, jmin: 100, jmax: 120 }, { name: 'b' }]);
    const ini = exportWgQuick('t', c.tunnels.t as never, () => 'k');
    expect(ini).toContain('Jc = 8\nJmin = 100\nJmax = 120\nS1 = 20');
  });
});
