/**
 * Fuzz targets of what the engine and the exporter make of a config the loader accepts
 * (src/config/load.ts → model → src/resources/engine/uapi-config.ts; src/config/export.ts).
 *
 * config/engine         a config the loader accepts → the engine's UAPI text (model →
 *                       fullSetText) → parseUapiSet + checkConfig accept it, with the same
 *                       peers, keys, allowed IPs and I-packets: validate never passes what the
 *                       engine refuses or reads differently.
 * config/export-import  a loaded WireGuard/AmneziaWG tunnel → `awg export` INI → `awg import`
 *                       gives back the same tunnel.
 * config/i-tags         I-values (tags, pieces of tags, separators, control characters) → one
 *                       that validates is one the engine accepts, as the same tags.
 *
 * The documents are config-arbitraries.ts's; the loader itself is fuzzed in
 * config-document.fuzz.ts and config-text.fuzz.ts.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseCidr } from '../../src/config/cidr.js';
import { exportWgQuick } from '../../src/config/export.js';
import { importWgQuick } from '../../src/config/import/index.js';
import { keepaliveSpec } from '../../src/config/keepalive.js';
import { effectiveMtu } from '../../src/config/mtu.js';
import { hasErrors, loadConfigText } from '../../src/config/load.js';
import {
  Config,
  isWgLike,
  rangeOf,
  type Secret,
  type WgLikeTunnel,
} from '../../src/config/schema.js';
import { checkSecrets } from '../../src/config/secrets.js';
import { parseTagString } from '../../src/config/tags.js';
import { parseTags } from '../../src/dataplane/awg/tags.js';
import { checkConfig } from '../../src/dataplane/device/config.js';
import { parseUapiSet } from '../../src/dataplane/device/uapi.js';
import { defaultAwgParams } from '../../src/dataplane/awg/params.js';
import { allocate } from '../../src/model/alloc.js';
import { wgEngineSpec } from '../../src/model/engine.js';
import { fullSetText } from '../../src/resources/engine/uapi-config.js';
import { nastyString } from './arbitraries.js';
import { document, FILE, hostileTagString, iValue } from './config-arbitraries.js';
import { fc, fuzzSync, testTimeout } from './runner.js';

// ---------------------------------------------------------------------------------------
// A loaded config → engine UAPI text → the engine's parser and validator

const inline = (s: Secret): string => {
  if (typeof s !== 'string') throw new Error('the generator writes inline secrets only');
  return s;
};

const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
const hexOf = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('hex') : null);

function checkEngine(c: Config): void {
  const alloc = allocate(c);
  for (const [name, t] of Object.entries(c.tunnels)) {
    if (!isWgLike(t)) continue;
    const spec = wgEngineSpec(name, t, alloc);
    const psks = new Map<string, string>();
    for (const p of t.peers)
      if (p.presharedKey !== undefined) psks.set(p.publicKey, inline(p.presharedKey));
    const hpk =
      t.type === 'amneziawg' && t.obfuscation.headerProtectionKey !== undefined
        ? inline(t.obfuscation.headerProtectionKey)
        : undefined;
    const text = fullSetText(spec, {
      privateKey: inline(t.privateKey),
      presharedKeys: psks,
      ...(hpk ? { headerProtectionKey: hpk } : {}),
    });
    const parsed = parseUapiSet(text);
    // the engine's validation of the whole delta (throws AwgError listing the problems)
    checkConfig(parsed, { awg: defaultAwgParams(), peerCount: 0, hasPeer: () => false });
    expect(hexOf(parsed.privateKey)).toBe(hex(inline(t.privateKey)));
    expect(parsed.peers?.length ?? 0, 'UAPI peers').toBe(t.peers.length);
    t.peers.forEach((p, i) => {
      const q = parsed.peers![i]!;
      expect(hexOf(q.publicKey)).toBe(hex(p.publicKey));
      expect(hexOf(q.presharedKey)).toBe(
        p.presharedKey === undefined ? null : hex(inline(p.presharedKey)),
      );
      expect(q.endpoint ?? null).toBe(p.endpoint ?? null);
      expect(q.allowedIps ?? []).toEqual(spec.config.peers[i]!.allowedIPs);
      // the range reaches the engine as configured (a UintRange), a number as its one value
      const ka = rangeOf(p.persistentKeepalive ?? 0);
      expect(q.persistentKeepalive, 'persistent_keepalive_interval').toEqual({
        lo: ka.min,
        hi: ka.max,
      });
      expect(q.remove ?? false).toBe(false);
    });
    if (t.type === 'amneziawg') {
      const o = t.obfuscation;
      for (const [k, idx] of [
        ['i1', 0],
        ['i2', 1],
        ['i3', 2],
        ['i4', 3],
        ['i5', 4],
      ] as const)
        expect(parsed.awg?.i?.[idx] ?? undefined, k).toBe(
          o[k] === undefined || o[k] === '' ? (o[k] === '' ? null : undefined) : o[k],
        );
      for (const k of ['h1', 'h2', 'h3', 'h4'] as const) {
        if (o[k] === undefined) continue;
        const r = rangeOf(o[k]!);
        expect(parsed.awg?.[k], k).toEqual({ lo: r.min, hi: r.max });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// export → import

/** What prepare would go on with: loaded, secrets (inline here) checked. */
function prepared(doc: Record<string, unknown>): Config | undefined {
  const r = loadConfigText(YAML.stringify(doc, { lineWidth: 0 }), FILE);
  if (!r.config || hasErrors(checkSecrets(r.config, { configFile: FILE, env: {} }).issues))
    return undefined;
  return r.config;
}

const tagsOf = (s: string | undefined) => (s === undefined ? undefined : parseTagString(s));
const rangeNorm = (r: Parameters<typeof rangeOf>[0] | undefined) =>
  r === undefined ? undefined : rangeOf(r);

const withLen = (a: string) => {
  const c = parseCidr(a)!;
  return `${c.addr}/${c.len}`;
};

function checkExportImport(name: string, t: WgLikeTunnel): void {
  const ini = exportWgQuick(name, t, inline);
  const r = importWgQuick(ini, { file: `${name}.conf`, name, type: t.type, keyMode: 'inline' });
  expect(
    r.issues.filter((i) => i.severity === 'error'),
    ini,
  ).toEqual([]);
  const back = Config.parse(YAML.parse(r.yaml)).tunnels[name] as WgLikeTunnel;
  expect(back.type).toBe(t.type);
  expect(back.privateKey).toBe(t.privateKey);
  expect(back.addresses).toEqual(t.addresses);
  expect(back.dns).toEqual(t.dns);
  // export writes the MTU even when defaulted (awg-quick's own default leaves no room for S4)
  expect(effectiveMtu(back)).toBe(effectiveMtu(t));
  if (t.mtu !== undefined) expect(back.mtu).toBe(t.mtu);
  expect(back.listenPort).toBe(t.listenPort);
  expect(back.peers.length).toBe(t.peers.length);
  t.peers.forEach((p, i) => {
    const q = back.peers[i]!;
    expect(q.publicKey).toBe(p.publicKey);
    expect(q.presharedKey).toBe(p.presharedKey);
    expect(q.endpoint).toBe(p.endpoint);
    // import writes a bare address with its full prefix length (wg(8) does the same)
    expect(q.allowedIPs.map(withLen)).toEqual(p.allowedIPs.map(withLen));
    expect(keepaliveSpec(q.persistentKeepalive)).toBe(keepaliveSpec(p.persistentKeepalive));
  });
  if (t.type === 'amneziawg' && back.type === 'amneziawg') {
    const o = t.obfuscation;
    const b = back.obfuscation;
    for (const k of [
      'jc',
      'jmin',
      'jmax',
      's1',
      's2',
      's3',
      's4',
      'randomTrailers',
      'disableCookies',
      'headerProtectionKey',
    ] as const)
      expect(b[k], k).toEqual(o[k]);
    for (const k of [
      'h1',
      'h2',
      'h3',
      'h4',
      'contentPaddingAddition',
      'rekeyAfterTime',
      'rekeyTimeout',
      'rejectAfterTime',
      'keepaliveTimeout',
      'maxHandshakeAttempts',
    ] as const)
      expect(rangeNorm(b[k]), k).toEqual(rangeNorm(o[k]));
    for (const k of ['i1', 'i2', 'i3', 'i4', 'i5'] as const)
      expect(tagsOf(b[k]), k).toEqual(tagsOf(o[k]));
  }
}

describe('fuzz: config', () => {
  it(
    'config/engine: a config that loads is a UAPI configuration the engine accepts as written',
    { timeout: testTimeout(1) },
    () => {
      fuzzSync('config/engine', 1, [document], (doc) => {
        const c = prepared(doc);
        if (c) checkEngine(c);
      });
    },
  );

  it(
    'config/export-import: export → import gives the same tunnel back',
    { timeout: testTimeout(1) },
    () => {
      fuzzSync('config/export-import', 1, [document], (doc) => {
        const c = prepared(doc);
        if (c)
          for (const [name, t] of Object.entries(c.tunnels))
            if (isWgLike(t)) checkExportImport(name, t);
      });
    },
  );

  it(
    'config/i-tags: an I-value that validates is the packet the engine builds',
    { timeout: testTimeout(2) },
    () => {
      fuzzSync('config/i-tags', 2, [fc.oneof(hostileTagString, iValue, nastyString)], (v) => {
        const c = parseTagString(v);
        let engine: ReturnType<typeof parseTags>;
        try {
          engine = parseTags(v);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
          expect(c.ok, `config accepts what the engine refuses (${(e as Error).message})`).toBe(
            false,
          );
          return;
        }
        if (!c.ok) return; // the config is stricter (<d>, <ds>, <dz> are not generated by awg)
        const same = (engine ?? []).map((t) =>
          t.kind === 'b'
            ? { tag: 'b', bytes: Buffer.from(t.bytes).toString('hex') }
            : 'n' in t
              ? { tag: t.kind, n: t.n }
              : { tag: t.kind },
        );
        expect(same).toEqual(c.tags);
      });
    },
  );
});
