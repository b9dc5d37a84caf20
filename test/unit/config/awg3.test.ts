/**
 * AmneziaWG 3.x fields in the config model: defaults keep WireGuard/AWG 2.x behaviour, the
 * semantic rules of docs/dataplane.md#header-protection and #timing-ranges (with WireGuard's constants for unset timings),
 * the header protection key as a secret, and export to awg-quick INI.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportWgQuick } from '../../../src/config/export.js';
import { importWgQuick } from '../../../src/config/import/index.js';
import { loadConfigText } from '../../../src/config/load.js';
import { formatPath } from '../../../src/config/positions.js';
import {
  Config,
  isWgLike,
  type AwgObfuscation,
  type WgLikeTunnel,
} from '../../../src/config/schema.js';
import { checkSecrets, secretRefs } from '../../../src/config/secrets.js';
import { checkSemantics } from '../../../src/config/semantic.js';
import { buildDesired } from '../../../src/model/desired.js';

const HPK = '69grLMA777iQkXu6YxsKyEu6XEBlY62l//BD3+uDpWU=';
const S12 = { s1: 12, s2: 12, s3: 12, s4: 12 };

function cfg(obfuscation: Record<string, unknown>) {
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
      },
    },
  });
}
const errors = (o: Record<string, unknown>) =>
  checkSemantics(cfg(o))
    .filter((f) => f.severity === 'error')
    .map((f) => `${formatPath(f.path)}: ${f.message}`);

describe('AWG 3.x semantics', () => {
  it('absent fields add nothing to the engine spec (plain WireGuard / AWG 2.x plans are unchanged)', () => {
    const c = cfg({ jc: 3, jmin: 10, jmax: 20 });
    const e = buildDesired(c, { facts: { cgroupNftPrefix: '' } }).resources.find(
      (r) => r.kind === 'engine',
    )!;
    expect((e.spec.config as { obfuscation?: AwgObfuscation }).obfuscation).toEqual({
      jc: 3,
      jmin: 10,
      jmax: 20,
    });
  });

  it('accepts a full 3.x set and the WireGuard-equivalent timings', () => {
    expect(
      errors({
        ...S12,
        headerProtectionKey: HPK,
        contentPaddingAddition: '0-64',
        randomTrailers: true,
        disableCookies: true,
      }),
    ).toEqual([]);
    expect(
      errors({
        rekeyAfterTime: 120,
        rejectAfterTime: 180,
        keepaliveTimeout: 10,
        rekeyTimeout: 5,
        maxHandshakeAttempts: 18,
      }),
    ).toEqual([]);
    expect(
      errors({ rekeyAfterTime: 0, rejectAfterTime: '0', maxHandshakeAttempts: { min: 0, max: 0 } }),
    ).toEqual([]);
  });

  it('header protection needs every S >= 12: one error for the unset ones, one per short one', () => {
    expect(errors({ headerProtectionKey: HPK, s1: 12, s3: 11 })).toEqual([
      'tunnels.t.obfuscation.headerProtectionKey: s2, s4 are not set; header protection takes its nonce from the first 12 bytes of the S prefix, so s1-s4 must each be at least 12',
      'tunnels.t.obfuscation.s3: s3 is 11; header protection takes its nonce from the first 12 bytes of the S prefix, so s1-s4 must each be at least 12',
    ]);
  });

  it('rejectAfterTime must exceed rekeyAfterTime, against the WireGuard defaults when one is unset', () => {
    expect(errors({ rejectAfterTime: 120 })).toEqual([
      "tunnels.t.obfuscation.rejectAfterTime: rejectAfterTime 120 must exceed rekeyAfterTime default 120 (seconds; its lowest value above the other's highest), or sessions expire before they are rekeyed",
    ]);
    // only the rekey side set: reported there
    expect(errors({ rekeyAfterTime: '100-180' })[0]).toMatch(
      /^tunnels\.t\.obfuscation\.rekeyAfterTime: rejectAfterTime default 180 must exceed rekeyAfterTime 100-180/,
    );
    expect(errors({ rekeyAfterTime: '100-179' })).toEqual([]);
  });

  it('rejectAfterTime must exceed keepaliveTimeout + rekeyTimeout (lows)', () => {
    expect(errors({ rekeyAfterTime: 20, keepaliveTimeout: 176 })[0]).toMatch(
      /^tunnels\.t\.obfuscation\.keepaliveTimeout: rejectAfterTime default 180 must exceed/,
    );
    expect(
      errors({
        rekeyAfterTime: 20,
        rejectAfterTime: 40,
        keepaliveTimeout: '30-60',
        rekeyTimeout: 9,
      }),
    ).toEqual([]);
    expect(
      errors({
        rekeyAfterTime: 20,
        rejectAfterTime: 40,
        keepaliveTimeout: '30-60',
        rekeyTimeout: 10,
      })[0],
    ).toMatch(
      /rejectAfterTime 40 must exceed keepaliveTimeout 30-60 \+ rekeyTimeout 10 .*every received packet triggers a rekey/,
    );
  });

  it('timing ranges may not start at 0; padding may; reversed ranges are errors', () => {
    expect(errors({ maxHandshakeAttempts: '0-3' })).toEqual([
      'tunnels.t.obfuscation.maxHandshakeAttempts: range 0-3 starts at 0; use 0 alone for the WireGuard default, or start at 1',
    ]);
    expect(errors({ contentPaddingAddition: { min: 0, max: 3 } })).toEqual([]);
    expect(errors({ contentPaddingAddition: '30-3', rekeyTimeout: { min: 5, max: 4 } })).toEqual([
      'tunnels.t.obfuscation.rekeyTimeout: range 5-4 is reversed',
      'tunnels.t.obfuscation.contentPaddingAddition: range 30-3 is reversed',
    ]);
  });

  it('the schema keeps ranges within uint16 and booleans boolean', () => {
    expect(
      Config.safeParse({
        version: 1,
        tunnels: { t: { ...cfg({}).tunnels.t, obfuscation: { rekeyTimeout: '5-65536' } } },
      }).success,
    ).toBe(false);
    expect(
      Config.safeParse({
        version: 1,
        tunnels: { t: { ...cfg({}).tunnels.t, obfuscation: { randomTrailers: 'yes' } } },
      }).success,
    ).toBe(false);
  });
});

describe('the header protection key is a secret', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'awg-hpk-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const yaml = (hpk: string) =>
    `version: 1\ntunnels:\n  t:\n    type: amneziawg\n    privateKey: { env: PK }\n    addresses: [10.0.0.2/32]\n    peers: [{ publicKey: LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=, allowedIPs: [10.0.0.0/24] }]\n    obfuscation:\n      s1: 12\n      s2: 12\n      s3: 12\n      s4: 12\n      headerProtectionKey: ${hpk}\n`;
  const env = { PK: 'mP3O1PvZzihU6ZXjiXj003iA2PJQNRyGjMfeQm4NVX4=' };

  it('is resolved with the others and checked to be a 32-byte key, located', () => {
    const file = join(dir, 'c.yaml');
    const text = yaml('{ file: hpk.key }');
    writeFileSync(file, text);
    writeFileSync(join(dir, 'hpk.key'), 'not a key\n');
    chmodSync(join(dir, 'hpk.key'), 0o600);
    const r = loadConfigText(text, file);
    expect(secretRefs(r.config!).map((s) => formatPath(s.path))).toContain(
      'tunnels.t.obfuscation.headerProtectionKey',
    );
    const bad = checkSecrets(r.config!, { configFile: file, env }, r.positions);
    expect(bad.issues.filter((i) => i.severity === 'error')).toEqual([
      expect.objectContaining({
        path: 'tunnels.t.obfuscation.headerProtectionKey',
        line: 13,
        col: 28,
        message: 'secret (file hpk.key) is not a base64-encoded 32-byte key',
      }),
    ]);
    writeFileSync(join(dir, 'hpk.key'), `${HPK}\n`);
    const good = checkSecrets(r.config!, { configFile: file, env }, r.positions);
    expect(good.issues).toEqual([]);
    expect(good.values.get('tunnels.t.obfuscation.headerProtectionKey')).toBe(HPK);
  });

  it('an all-zero key is accepted with a warning (it turns header protection off)', () => {
    const zero = Buffer.alloc(32).toString('base64');
    const text = yaml('{ env: HPK }');
    const r = loadConfigText(text, join(dir, 'c.yaml'));
    const s = checkSecrets(
      r.config!,
      { configFile: join(dir, 'c.yaml'), env: { ...env, HPK: zero } },
      r.positions,
    );
    expect(s.issues).toEqual([
      expect.objectContaining({
        severity: 'warning',
        message: 'an all-zero header protection key turns header protection off',
      }),
    ]);
  });
});

describe('awg-quick export of 3.x fields', () => {
  it('writes the resolved key, ranges and on/off switches, and imports back to the same tunnel', () => {
    const c = cfg({
      ...S12,
      headerProtectionKey: { env: 'HPK' },
      contentPaddingAddition: { min: 4, max: 4 },
      rekeyTimeout: '3-6',
      maxHandshakeAttempts: 9,
      randomTrailers: false,
      disableCookies: true,
    });
    const t = c.tunnels.t as WgLikeTunnel;
    const ini = exportWgQuick('t', t, (s) =>
      typeof s === 'object' && 'env' in s ? HPK : 'mP3O1PvZzihU6ZXjiXj003iA2PJQNRyGjMfeQm4NVX4=',
    );
    expect(ini).toContain(
      `HeaderProtectionKey = ${HPK}\nContentPaddingAddition = 4\nRekeyTimeout = 3-6\nMaxHandshakeAttempts = 9\nRandomTrailers = off\nDisableCookies = on\n`,
    );
    const back = importWgQuick(ini, { file: 't.conf' });
    expect(back.issues.filter((i) => i.severity === 'error')).toEqual([]);
    const again = Config.parse(back.config).tunnels.t!;
    expect(isWgLike(again) && again.type === 'amneziawg' && again.obfuscation).toEqual({
      ...S12,
      headerProtectionKey: HPK,
      contentPaddingAddition: 4,
      rekeyTimeout: '3-6',
      maxHandshakeAttempts: 9,
      randomTrailers: false,
      disableCookies: true,
    });
  });

  it('imports awg(8) switch spellings: on/off, true/false and integers (0 = off)', () => {
    const base =
      '[Interface]\nPrivateKey = mP3O1PvZzihU6ZXjiXj003iA2PJQNRyGjMfeQm4NVX4=\nAddress = 10.0.0.2/32\n';
    const peer =
      '\n[Peer]\nPublicKey = LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=\nAllowedIPs = 10.0.0.0/24\n';
    const got = (v: string) =>
      (
        importWgQuick(`${base}DisableCookies = ${v}\n${peer}`, { file: 'x.conf' }).config.tunnels!
          .x as { obfuscation: AwgObfuscation }
      ).obfuscation.disableCookies;
    expect(['on', 'ON', 'true', '1', '2'].map(got)).toEqual([true, true, true, true, true]);
    expect(['off', 'False', '0', '00'].map(got)).toEqual([false, false, false, false]);
    // any 3.x key makes the file amneziawg
    expect(
      importWgQuick(`${base}RekeyTimeout = 4\n${peer}`, { file: 'x.conf' }).config.tunnels!.x!.type,
    ).toBe('amneziawg');
  });
});
