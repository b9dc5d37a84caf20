import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { importWgQuick, type ImportOptions } from '../../../src/config/import/index.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/import/invalid');

interface Expect {
  line: number | undefined;
  col: number | undefined;
  msg: string;
}

/** file → the error it must produce (other issues may accompany it). */
const CASES: Record<string, { opts?: Partial<ImportOptions>; error: Expect }> = {
  'unknown-key.conf': { error: { line: 5, col: 3, msg: 'unknown key Foo in [Interface]' } },
  'peer-key-in-interface.conf': {
    error: { line: 4, col: 1, msg: 'unknown key Endpoint in [Interface]; it belongs in [Peer]' },
  },
  'bad-key.conf': {
    error: { line: 2, col: 14, msg: 'PrivateKey: must be a base64-encoded 32-byte WireGuard key' },
  },
  'bad-endpoint.conf': {
    error: { line: 8, col: 12, msg: 'write IPv6 endpoints as [address]:port' },
  },
  'bad-cidr.conf': {
    error: { line: 7, col: 27, msg: '"192.168.1.0/33" has a bad prefix length (0-32)' },
  },
  'outside-section.conf': { error: { line: 2, col: 1, msg: 'key PrivateKey outside a section' } },
  'dup-privatekey.conf': {
    error: { line: 4, col: 1, msg: 'duplicate PrivateKey (first set on line 2)' },
  },
  'hpk-no-s.conf': {
    error: {
      line: 7,
      col: 1,
      msg: 's1, s2, s3, s4 are not set; header protection takes its nonce from the first 12 bytes of the S prefix',
    },
  },
  'hpk-short-s.conf': {
    error: { line: 4, col: 1, msg: 's1 is 8; header protection takes its nonce' },
  },
  'bad-hpk.conf': {
    error: { line: 9, col: 23, msg: 'HeaderProtectionKey: must be a base64-encoded 32-byte key' },
  },
  'awg31-bool.conf': {
    error: {
      line: 5,
      col: 18,
      msg: 'RandomTrailers must be on, off or a number (0 = off), got "maybe"',
    },
  },
  'rej-rekey.conf': {
    error: {
      line: 8,
      col: 1,
      msg: 'rejectAfterTime 150 must exceed rekeyAfterTime 100-200 (seconds',
    },
  },
  'rej-short.conf': {
    error: {
      line: 6,
      col: 1,
      msg: 'rejectAfterTime 45 must exceed keepaliveTimeout 30 + rekeyTimeout 20 (seconds), or every received packet triggers a rekey',
    },
  },
  'timing-too-big.conf': {
    error: {
      line: 5,
      col: 16,
      msg: 'RekeyTimeout must be 0-65535 or a range "MIN-MAX", got "70000"',
    },
  },
  'tries-zero.conf': {
    error: { line: 4, col: 1, msg: 'range 0-5 starts at 0; use 0 alone for the WireGuard default' },
  },
  'padding-reversed.conf': {
    error: { line: 4, col: 27, msg: 'ContentPaddingAddition range "64-16" has MAX < MIN' },
  },
  'keepalive-range-wireguard.conf': {
    opts: { type: 'wireguard' },
    error: {
      line: 8,
      col: 1,
      msg: 'PersistentKeepalive range "20-30" is AmneziaWG 3.x but the tunnel type is wireguard, which keeps one interval',
    },
  },
  'keepalive-bad.conf': {
    error: {
      line: 8,
      col: 23,
      msg: 'PersistentKeepalive must be "off", 0-65535 or a range "MIN-MAX", got "20-"',
    },
  },
  'keepalive-range-reversed.conf': {
    error: { line: 8, col: 23, msg: 'PersistentKeepalive range "30-20" has MAX < MIN' },
  },
  'keepalive-range-zero.conf': {
    error: {
      line: 8,
      col: 1,
      msg: 'range 0-30 starts at 0; use 0 alone to turn keepalives off, or start at 1',
    },
  },
  'direct.conf': {
    error: {
      line: undefined,
      col: undefined,
      msg: 'the file name "direct" is not a valid tunnel name ("direct" is reserved) and gives none; name the tunnel with --name',
    },
  },
  'unknown-section.conf': { error: { line: 1, col: 1, msg: 'unknown section [Interfaces]' } },
  'no-equals.conf': {
    error: { line: 7, col: 1, msg: 'line not understood: "AllowedIPs 0.0.0.0/0" is neither' },
  },
  'no-peer.conf': { error: { line: 1, col: 1, msg: 'no [Peer] section' } },
  'no-privatekey.conf': { error: { line: 1, col: 1, msg: 'no PrivateKey in [Interface]' } },
  'bad-h-range.conf': { error: { line: 4, col: 6, msg: 'H1 range "100-50" has MAX < MIN' } },
  'bad-tag.conf': { error: { line: 5, col: 19, msg: 'I1: unknown tag <rx>' } },
  'bad-mtu.conf': { error: { line: 4, col: 7, msg: 'MTU: Too small' } },
  'dup-peer.conf': { error: { line: 10, col: 1, msg: 'same PublicKey as the peer on line 5' } },
  'h-overlap.conf': { error: { line: 5, col: 1, msg: 'h2 (15-30) overlaps h1 (10-20)' } },
  'empty-address.conf': { error: { line: 3, col: 10, msg: 'Address has no value' } },
  'forced-wireguard.conf': {
    opts: { type: 'wireguard' },
    error: { line: 4, col: 1, msg: 'Jc is an AmneziaWG key but the tunnel type is wireguard' },
  },
};

describe('importWgQuick: invalid files give located errors', () => {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.conf'))
    .sort();

  it('has at least 12 cases, one per fixture', () => {
    expect(files.length).toBeGreaterThanOrEqual(12);
    expect(Object.keys(CASES).sort()).toEqual(files);
  });

  for (const [file, { opts, error }] of Object.entries(CASES)) {
    it(file, () => {
      const r = importWgQuick(readFileSync(join(DIR, file), 'utf8'), { file, ...opts });
      expect(r.ok).toBe(false);
      const errors = r.issues.filter((i) => i.severity === 'error');
      const hit = errors.find((i) => i.message.includes(error.msg));
      expect(hit, `errors: ${JSON.stringify(errors, null, 1)}`).toBeDefined();
      expect({ file: hit!.file, line: hit!.line, col: hit!.col }).toEqual({
        file,
        line: error.line,
        col: error.col,
      });
    });
  }

  it('refuses an invalid --name (it wins over the file name), suggesting a valid one', () => {
    const text = readFileSync(join(DIR, 'direct.conf'), 'utf8');
    const bad = importWgQuick(text, { file: 'wg0.conf', name: 'Work VPN' });
    expect(bad.ok).toBe(false);
    expect(bad.issues.find((i) => i.message.startsWith('tunnel name'))!.message).toMatch(
      /from --name\) is invalid: lower-case letters.*use --name work-vpn$/,
    );
    const long = importWgQuick(text, { file: 'wg0.conf', name: 'my-home-office-vpn' });
    expect(long.issues.map((i) => i.message)).toEqual([
      'tunnel name "my-home-office-vpn" (from --name) is invalid: at most 11 characters, as the link awg-<name> has 15 at most; use --name my-home-off',
    ]);
    const none = importWgQuick(text, { file: 'wg0.conf', name: '--' });
    expect(none.issues.map((i) => i.message)).toEqual([
      'tunnel name "--" (from --name) is invalid: lower-case letters, digits, "_" and "-", starting with a letter or digit; choose another with --name',
    ]);
    // a file name that gives nothing valid is an error; --name fixes it
    expect(importWgQuick(text, { file: '__.conf' }).issues[0]!.message).toBe(
      'the file name "__" is not a valid tunnel name (lower-case letters, digits, "_" and "-", starting with a letter or digit) and gives none; name the tunnel with --name',
    );
    expect(importWgQuick(text, { file: 'direct.conf', name: 'home' }).ok).toBe(true);
  });

  it('rejects a DNS entry with a prefix', () => {
    const r = importWgQuick(readFileSync(join(DIR, 'empty-address.conf'), 'utf8'), {
      file: 'e.conf',
    });
    expect(r.issues.find((i) => i.line === 4)).toMatchObject({
      col: 16,
      severity: 'error',
      message: 'DNS: "1.1.1.1/32" must be an address without a prefix',
    });
  });

  it('reports every problem at once, sorted by position', () => {
    const text =
      '[Interface]\nPrivateKey = nope\nAddress = 10.0.0.300/24\nBogus = 1\n\n[Peer]\nPublicKey = x\nEndpoint = host\nAllowedIPs = 10.0.0.0/8, fe80::/129\n';
    const r = importWgQuick(text, { file: 'many.conf' });
    const at = r.issues.filter((i) => i.severity === 'error').map((i) => `${i.line}:${i.col}`);
    expect(at).toEqual(['2:14', '3:11', '4:1', '7:13', '8:12', '9:26']);
  });
});
