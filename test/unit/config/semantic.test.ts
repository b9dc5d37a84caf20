/** Cross-field checks (semantic.ts) and the I-tag syntax check, beyond the fixture corpora. */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { checkSemantics } from '../../../src/config/semantic.js';
import { Config } from '../../../src/config/schema.js';
import { parseTagString } from '../../../src/config/tags.js';
import { formatIssue } from '../../../src/errors.js';

const K = [
  'r9v/6l1H5duSPqnRR3gV3HtWENhtm84YqdUcuFngeTw=',
  'LsWvhlu0bxfk3FxEc3gVD0wm7TNSjjO5EOcm8646mAU=',
  'PTfknfo4VGstgmrDFrtlTjlwV76MhUC6gM1k/q9Nhk4=',
];

const wg = (
  addresses: string[],
  peers: { publicKey: string; allowedIPs: string[] }[] = [
    { publicKey: K[0]!, allowedIPs: ['0.0.0.0/0'] },
  ],
  extra: Record<string, unknown> = {},
) => ({
  type: 'wireguard',
  privateKey: { file: 'k' },
  addresses,
  peers,
  ...extra,
});
const parse = (raw: unknown) => Config.parse(raw);
const errs = (raw: unknown) =>
  checkSemantics(parse(raw))
    .filter((f) => f.severity === 'error')
    .map((f) => `${f.path.join('.')}: ${f.message}`);
const awg = (obfuscation: Record<string, unknown>) =>
  errs({ version: 1, tunnels: { a: { ...wg(['10.0.0.2/32']), type: 'amneziawg', obfuscation } } });

describe('checkSemantics', () => {
  it('reports every problem at once, each located, in source order', () => {
    const text = `version: 1
tunnels:
  a:
    type: wireguard
    privateKey: { file: a.key }
    addresses: [10.0.0.2/24]
    listenPort: 51820
    peers: [{ publicKey: ${K[0]}, allowedIPs: [0.0.0.0/0] }]
  b:
    type: wireguard
    privateKey: { file: b.key }
    addresses: [10.0.0.3/32]
    listenPort: 51820
    peers: [{ publicKey: ${K[1]}, allowedIPs: [0.0.0.0/0] }]
rules:
  - { match: { name: x }, target: c }
default: d
`;
    const r = loadConfigText(text, 'c.yaml');
    expect(r.config).toBeUndefined();
    expect(r.issues.map(formatIssue)).toEqual([
      'c.yaml:12:17: tunnels.b.addresses[0]: address 10.0.0.3/32 overlaps 10.0.0.2/24 of tunnel "a"',
      'c.yaml:13:17: tunnels.b.listenPort: listen port 51820 is also used by tunnel "a"',
      'c.yaml:16:35: rules[0].target: unknown tunnel "c" (known: a, b, direct, block)',
      'c.yaml:17:10: default: unknown tunnel "d" (known: a, b)',
    ]);
  });

  it('IPv6 address overlap between tunnels; v4 and v6 never overlap each other', () => {
    expect(
      errs({
        version: 1,
        tunnels: {
          a: wg(['fd00::1/64']),
          b: wg(['fd00::2/128'], [{ publicKey: K[1]!, allowedIPs: [] }]),
        },
      }),
    ).toEqual(['tunnels.b.addresses.0: address fd00::2/128 overlaps fd00::1/64 of tunnel "a"']);
    expect(
      errs({
        version: 1,
        tunnels: { a: wg(['0.0.0.0/0']), b: wg(['::/0'], [{ publicKey: K[1]!, allowedIPs: [] }]) },
      }),
    ).toEqual([]);
  });

  it('the same address twice in one tunnel is not an overlap between tunnels', () => {
    expect(errs({ version: 1, tunnels: { a: wg(['10.0.0.2/32', '10.0.0.0/24']) } })).toEqual([]);
  });

  it('one allowed prefix on two peers is found whatever its spelling', () => {
    const peers = (a: string, b: string) => [
      { publicKey: K[0]!, allowedIPs: [a] },
      { publicKey: K[1]!, allowedIPs: [b] },
    ];
    expect(
      errs({
        version: 1,
        tunnels: { a: wg(['10.9.0.2/32'], peers('fd00::/64', 'fd00:0:0:0::/64')) },
      }),
    ).toHaveLength(1);
    // overlapping but different prefixes are fine (longest prefix wins in cryptokey routing)
    expect(
      errs({ version: 1, tunnels: { a: wg(['10.9.0.2/32'], peers('10.0.0.0/8', '10.1.0.0/16')) } }),
    ).toEqual([]);
    // 10.1.5.5/16 means 10.1.0.0/16 (the loader warns about the host bits): still the same prefix
    expect(
      errs({
        version: 1,
        tunnels: { a: wg(['10.9.0.2/32'], peers('10.1.0.0/16', '10.1.5.5/16')) },
      }),
    ).toEqual([
      'tunnels.a.peers.1.allowedIPs.0: 10.1.5.5/16 is also an allowed IP of peers[0]; each prefix belongs to one peer',
    ]);
  });

  it('tunnel-name problems point at the key (atKey)', () => {
    const f = checkSemantics(parse({ version: 1, tunnels: { Bad: wg(['10.0.0.2/32']) } }));
    expect(f).toEqual([
      expect.objectContaining({ path: ['tunnels', 'Bad'], atKey: true, severity: 'error' }),
    ]);
  });

  it('failover counts only later *enabled* rules', () => {
    const c = parse({
      version: 1,
      tunnels: { a: wg(['10.0.0.2/32']) },
      rules: [
        { match: { name: 'x' }, target: 'a', fallback: 'failover' },
        { match: { name: 'x' }, target: 'direct', enabled: false },
      ],
    });
    expect(checkSemantics(c)).toEqual([
      expect.objectContaining({
        path: ['rules', 0, 'fallback'],
        severity: 'warning',
        message: expect.stringMatching(/no later enabled rule/),
      }),
    ]);
  });

  it('sticky warns where no fallback is ever taken (target direct/block, fallback drop)', () => {
    const c = parse({
      version: 1,
      tunnels: { a: wg(['10.0.0.2/32']) },
      rules: [
        { match: { name: 'x' }, target: 'direct', sticky: true },
        { match: { name: 'y' }, target: 'a', fallback: 'drop', sticky: true },
        { match: { name: 'z' }, target: 'a', fallback: 'allow-direct', sticky: true },
      ],
    });
    const sticky = checkSemantics(c).filter((i) => i.path[2] === 'sticky');
    expect(sticky).toEqual([
      expect.objectContaining({
        path: ['rules', 0, 'sticky'],
        severity: 'warning',
        message: expect.stringMatching(/target "direct" is never down/),
      }),
      expect.objectContaining({
        path: ['rules', 1, 'sticky'],
        severity: 'warning',
        message: expect.stringMatching(/fallback "drop"/),
      }),
    ]);
  });

  it('a rule target named like an Object.prototype member is unknown', () => {
    for (const target of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      expect(errs({ version: 1, rules: [{ match: { name: 'x' }, target }] })).toEqual([
        `rules.0.target: unknown tunnel "${target}" (known: direct, block)`,
      ]);
    }
  });
});

describe('AmneziaWG cross-field limits (docs/dataplane.md#amneziawg-parameters)', () => {
  it('header ranges: inclusive overlap is an error, adjacency is fine', () => {
    expect(awg({ h1: '5-10', h2: 10, h3: 20, h4: 30 })).toEqual([
      'tunnels.a.obfuscation.h2: h2 (10) overlaps h1 (5-10); headers must not overlap',
    ]);
    expect(awg({ h1: '5-10', h2: 11, h3: 20, h4: 30 })).toEqual([]);
    expect(awg({ h1: { min: 100, max: 200 }, h2: '300-400', h3: '150', h4: 500 })).toEqual([
      'tunnels.a.obfuscation.h3: h3 (150) overlaps h1 (100-200); headers must not overlap',
    ]);
  });

  it('a size prefix that makes a message the size of a default-sized one is found', () => {
    // s3 = 28: cookie reply 64 + 28 = 92 = response 92 + s2(0)
    expect(awg({ s3: 28 })).toEqual([
      'tunnels.a.obfuscation.s3: s2 and s3 give equal message sizes (92); receivers classify by size',
    ]);
    // s1 = 0 and s2 = 0 (plain WireGuard) is fine
    expect(awg({ s1: 0, s2: 0, s3: 0, s4: 0 })).toEqual([]);
  });

  it('s1 + 56 == s2 and its neighbours', () => {
    expect(awg({ s1: 100, s2: 156 })).toHaveLength(1);
    expect(awg({ s1: 100, s2: 155 })).toEqual([]);
    expect(awg({ s1: 100, s2: 157 })).toEqual([]);
  });

  it('junk: jc 0 needs nothing, jc > 0 needs jmin <= jmax', () => {
    expect(awg({ jc: 0 })).toEqual([]);
    expect(awg({ jc: 1, jmin: 5, jmax: 5 })).toEqual([]);
    expect(awg({ jc: 1, jmin: 6, jmax: 5 })).toEqual([
      'tunnels.a.obfuscation.jmin: jmin (6) must be <= jmax (5)',
    ]);
    expect(awg({ jc: 1, jmin: 6 })).toEqual([
      'tunnels.a.obfuscation.jc: jc > 0 needs jmin and jmax',
    ]);
  });
});

describe('parseTagString (I1–I5)', () => {
  it.each([
    [
      '<b 0xc0ffee><r 16><t>',
      [{ tag: 'b', bytes: 'c0ffee' }, { tag: 'r', n: 16 }, { tag: 't' }],
      3 + 16 + 4,
    ],
    ['<b C0FFEE>', [{ tag: 'b', bytes: 'c0ffee' }], 3],
    [
      ' <rc 3>  <rd 0> ',
      [
        { tag: 'rc', n: 3 },
        { tag: 'rd', n: 0 },
      ],
      3,
    ],
    ['<r 1000>', [{ tag: 'r', n: 1000 }], 1000],
  ])('%s parses', (s, tags, size) => expect(parseTagString(s)).toEqual({ ok: true, tags, size }));

  it.each([
    ['', /no tags/],
    ['plain text', /text outside tags/],
    ['x <rc 3>', /text outside tags/],
    ['<b 0x01 extra>', /<b> takes one argument/],
    ['<t 5>', /<t> takes no argument/],
    ['<b 0x01>\n<t>', /control characters/],
    ['<b\t0x01>', /control characters/],
    ['<>', /empty tag/],
    ['<b 0xabc>', /even-length/],
    ['<b 0xzz>', /even-length/],
    ['<b>', /even-length/],
    ['<r -1>', /non-negative/],
    ['<r>', /non-negative/],
    ['<r 1001>', /exceeds 1000/],
    ['<c>', /unknown tag <c>/],
    ['<r 4', /unterminated/],
  ])('%j is rejected', (s, re) => {
    const r = parseTagString(s);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(re);
  });
});
