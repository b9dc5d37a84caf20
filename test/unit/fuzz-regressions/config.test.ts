/**
 * Counterexamples found by the fuzz targets of test/fuzz/config-*.fuzz.ts, kept as explicit
 * regression tests. Each names the target and the seed that found it.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { exportWgQuick } from '../../../src/config/export.js';
import { importWgQuick } from '../../../src/config/import/index.js';
import { loadConfigText } from '../../../src/config/load.js';
import { effectiveMtu } from '../../../src/config/mtu.js';
import { Config, type WgLikeTunnel } from '../../../src/config/schema.js';
import { checkSecrets } from '../../../src/config/secrets.js';
import { parseTagString } from '../../../src/config/tags.js';
import { parseTags } from '../../../src/dataplane/awg/tags.js';

describe('config/yaml-text', () => {
  // seed 444691292: yaml's LineCounter misses the line break inside a plain scalar swallowed by
  // error recovery, so later errors were placed on line 18 at column 35 of a 19-character line
  it('places every YAML error inside the text', () => {
    const text =
      "𐀀𐀀𐀀𐀀𐀀mneziaWG values at the edges of what is accepted: adjacent H ranges, jmin == jmax,\n# jc 0 without jmin/jmax, s1 + 56 == s2 - 1.\nversion: 1\ntunnels:\n  edge:\n    type: amneziawg\n    privateKey: { file: edge.key }\n    addresses: [10.3.0.2/32}]\n    peers: [{ publicKey: PTfknfo4VGstgmrDFrtlTjlwV76MhUC6gM1k/q9Nhk4=, allowedIPs: [10.3.0.0/24] }]\n    obfuscation:\n      jc: 0\n      s1: 10\n      s2: 67\n      h1: 5-10\n      h2: 11-20\n      h3: '21'\n      h4: { min: 22, max: 2:  edge2:\n    type: amneziawg\n    privateKey: { file: edge2.key }\n    addresses: [10.4.0.2/32]\n    peers: [{ publicKey: LsWvhlu0bxfk3FxEc3gVD0wm7TNSjjO5EOcm8646mAU=, allowedIPs: [10.4.0.0/24] }]\n    obfuscation: { jc: 3, jmin: 64, jmax: 64 }\n";
    const lines = text.split('\n');
    const r = loadConfigText(text, 'f.yaml');
    expect(r.issues.length).toBeGreaterThan(0);
    for (const i of r.issues) {
      expect(i.line).toBeLessThanOrEqual(lines.length);
      expect(i.col!).toBeLessThanOrEqual(lines[i.line! - 1]!.length + 1);
    }
    const colon = r.issues.find((i) => i.message.includes('map-value-ind') && i.line === 19);
    expect(colon?.col).toBe(15); // `    privateKey:` on line 19
  });
});

const ZERO = 'A'.repeat(43) + '=';
const ONE = 'A'.repeat(42) + 'E=';
const doc = (priv: string, pub: string) =>
  YAML.stringify({
    version: 1,
    tunnels: {
      a: {
        type: 'wireguard',
        privateKey: priv,
        addresses: ['10.0.0.2/32'],
        peers: [{ publicKey: pub }],
      },
    },
  });

describe('config/engine', () => {
  // seed -258766469: an all-zero private key validated, and the engine's UAPI reads
  // private_key=00…00 as "remove the key": a tunnel that can never handshake
  it('refuses an all-zero private key', () => {
    const r = loadConfigText(doc(ZERO, ONE), 'f.yaml');
    expect(r.config).toBeDefined();
    const s = checkSecrets(r.config!, { configFile: 'f.yaml', env: {} });
    expect(s.issues.filter((i) => i.severity === 'error').map((i) => [i.path, i.message])).toEqual([
      ['tunnels.a.privateKey', expect.stringContaining('all-zero key')],
    ]);
  });
  it('refuses an all-zero peer public key', () => {
    const r = loadConfigText(doc(ONE, ZERO), 'f.yaml');
    expect(r.config).toBeUndefined();
    expect(r.issues.map((i) => i.path)).toContain('tunnels.a.peers[0].publicKey');
  });
});

describe('config/i-tags', () => {
  // seed 1457339865 ("<<r 0>r") and its relatives: validate accepted I-values that the engine
  // refuses when the tunnel starts, or reads differently
  it.each([
    ['<<r 0>r', '"<" inside'],
    ['<b 0x<r 5>', '"<" inside'],
    ['<r 1000>'.repeat(70), 'one UDP datagram'],
    ['<r 5 6>', 'takes one argument'],
    ['<b 0x12 0x34>', 'takes one argument'],
    ['<t 5>', 'takes no argument'],
  ])('refuses I-value %# as the engine does', (v, why) => {
    const r = parseTagString(v);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toContain(why);
  });
  it('still accepts what the engine builds', () => {
    const v = '<b 0xc0ffee><r 16><rc 4><rd 2><t>';
    expect(parseTagString(v)).toEqual({
      ok: true,
      tags: [
        { tag: 'b', bytes: 'c0ffee' },
        { tag: 'r', n: 16 },
        { tag: 'rc', n: 4 },
        { tag: 'rd', n: 2 },
        { tag: 't' },
      ],
      // 3 + 16 + 4 + 2 + 4 bytes on the wire
      size: 29,
    });
    expect(parseTags(v)!.map((t) => t.kind)).toEqual(['b', 'r', 'rc', 'rd', 't']);
    // stricter than the engine: text outside tags (which the engine ignores) is refused,
    // since the value becomes a UAPI line
    expect(parseTags(`${v}x>`)!.map((t) => t.kind)).toEqual(['b', 'r', 'rc', 'rd', 't']);
    expect(parseTagString(`${v}x>`)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/text outside tags/),
    });
  });
});

describe('config/yaml-text (BOM)', () => {
  // seed 103496839 ("\uFEFF\""): the byte-order mark was counted as a column of line 1
  it('does not count a byte-order mark as a column', () => {
    const r = loadConfigText('\uFEFF"', 'f.yaml');
    expect(r.issues.length).toBeGreaterThan(0);
    for (const i of r.issues) expect([i.line, i.col]).toEqual([1, 2]);
    const k = loadConfigText('\uFEFFversion: 1\nnope: 1\n', 'f.yaml');
    expect(k.issues.map((i) => [i.path, i.line, i.col])).toEqual([['nope', 2, 1]]);
    const first = loadConfigText('\uFEFFnope: 1\nversion: 1\n', 'f.yaml');
    expect(first.issues.map((i) => [i.path, i.line, i.col])).toEqual([['nope', 1, 1]]);
  });
});

describe('config/export-import (MTU)', () => {
  // seed 52622718: export writes the MTU even when the tunnel leaves it to the default (awg-quick
  // would otherwise take its link MTU - 80, with no room for S4), so the import carries it
  // explicitly: the effective MTU is what must survive the round trip
  it('an exported tunnel without mtu imports with the same effective MTU', () => {
    for (const obfuscation of [undefined, { s4: 23 }]) {
      const t = {
        type: obfuscation ? 'amneziawg' : 'wireguard',
        privateKey: ONE,
        addresses: ['10.0.0.2/32'],
        peers: [{ publicKey: ONE, allowedIPs: ['0.0.0.0/0'] }],
        ...(obfuscation ? { obfuscation } : {}),
      };
      const c = Config.parse({ version: 1, tunnels: { a: t } });
      const tunnel = c.tunnels.a as WgLikeTunnel;
      const ini = exportWgQuick('a', tunnel, (s) => String(s));
      const r = importWgQuick(ini, {
        file: 'a.conf',
        name: 'a',
        type: tunnel.type,
        keyMode: 'inline',
      });
      expect(r.issues.filter((i) => i.severity === 'error')).toEqual([]);
      const back = Config.parse(YAML.parse(r.yaml)).tunnels.a as WgLikeTunnel;
      expect(back.mtu).toBe(effectiveMtu(tunnel));
      expect(back.mtu).toBe(obfuscation ? 1397 : 1420);
    }
  });
});
