/**
 * Fuzz targets of the config front end: the YAML loader (src/config/load.ts), the wg-quick
 * INI importer (src/config/ini.ts, import/) and the exporter (export.ts).
 *
 * config/yaml-text      arbitrary YAML-ish text and edits of the valid fixtures → loadConfigText
 *                       never throws, every error is located inside the text, a returned
 *                       config is what zod returns for the parsed document.
 * config/document       JSON documents near the schema (valid ones and ones with a field
 *                       broken) written as YAML → the loader accepts exactly what zod +
 *                       the semantic checks accept, with the same value; every error is located.
 * config/engine         a config the loader accepts → the engine's UAPI text (model →
 *                       fullSetText) → parseUapiSet + checkConfig accept it, with the same
 *                       peers, keys, allowed IPs and I-packets: validate never passes what the
 *                       engine refuses or reads differently.
 * config/export-import  a loaded WireGuard/AmneziaWG tunnel → `awg export` INI → `awg import`
 *                       gives back the same tunnel.
 * config/ini-text       arbitrary INI-ish text and edits of the import fixtures → importWgQuick
 *                       never throws or reports an internal error, positions point into the
 *                       text, and an import without errors loads without errors.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseCidr } from '../../src/config/cidr.js';
import { exportWgQuick } from '../../src/config/export.js';
import { importWgQuick } from '../../src/config/import/index.js';
import { keepaliveSpec } from '../../src/config/keepalive.js';
import { effectiveMtu } from '../../src/config/mtu.js';
import { parseIni, splitList } from '../../src/config/ini.js';
import { hasErrors, loadConfigText } from '../../src/config/load.js';
import {
  Config,
  isWgLike,
  rangeOf,
  type Secret,
  type WgLikeTunnel,
} from '../../src/config/schema.js';
import { checkSecrets } from '../../src/config/secrets.js';
import { checkSemantics } from '../../src/config/semantic.js';
import { parseTagString } from '../../src/config/tags.js';
import { parseTags } from '../../src/dataplane/awg/tags.js';
import { checkConfig } from '../../src/dataplane/device/config.js';
import { parseUapiSet } from '../../src/dataplane/device/uapi.js';
import { defaultAwgParams } from '../../src/dataplane/awg/params.js';
import { allocate } from '../../src/model/alloc.js';
import { wgEngineSpec } from '../../src/model/engine.js';
import { fullSetText } from '../../src/resources/engine/uapi-config.js';
import type { Issue } from '../../src/errors.js';
import {
  applyEdits,
  bytes,
  cidr,
  corpus,
  edits,
  endpoint,
  hostname,
  ipv4,
  ipv6,
  lineCount,
  nastyString,
  port,
  wgKey,
} from './arbitraries.js';
import { fc, fuzzSync, testTimeout } from './runner.js';

const FILE = 'fuzz.yaml';

/** Every issue with a position points at a line of the text and a column of that line (+1). */
function expectLocated(issues: Issue[], text: string, errorsMustHaveLine: boolean): void {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  for (const i of issues) {
    expect(typeof i.message).toBe('string');
    expect(i.message.length).toBeGreaterThan(0);
    if (errorsMustHaveLine && i.severity === 'error')
      expect(i.line, `unlocated: ${JSON.stringify(i)}`).toBeDefined();
    if (i.line === undefined) continue;
    expect(i.line).toBeGreaterThanOrEqual(1);
    expect(i.line, JSON.stringify(i)).toBeLessThanOrEqual(lines.length);
    expect(i.col).toBeGreaterThanOrEqual(1);
    expect(i.col!, JSON.stringify(i)).toBeLessThanOrEqual(lines[i.line - 1]!.length + 1);
  }
}

// ---------------------------------------------------------------------------------------
// Documents near the schema

const tagString: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      bytes(1, 8).map((b) => `<b 0x${Buffer.from(b).toString('hex')}>`),
      fc
        .tuple(fc.constantFrom('r', 'rc', 'rd'), fc.integer({ min: 0, max: 64 }))
        .map(([k, n]) => `<${k} ${n}>`),
      fc.constant('<t>'),
    ),
    { minLength: 1, maxLength: 4 },
  )
  .map((t) => t.join(''));

/** I-values as people mistype them: tags, pieces of tags, separators, control characters. */
const hostileTagString: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      tagString,
      fc.constantFrom(
        '<',
        '>',
        '<b',
        ' 0x',
        '0x',
        'ab',
        'r',
        'rc',
        'rd',
        'dz',
        'd',
        'ds',
        't',
        'c',
        ' ',
        '\t',
        '\n',
        '\r',
        '\0',
        '1000',
        '65507',
        '99999',
        '<r 1000>',
        '<b 0xzz>',
        'x',
      ),
    ),
    { minLength: 1, maxLength: 8 },
  )
  .map((t) => t.join(''));
const iValue = fc.oneof(
  { weight: 3, arbitrary: tagString },
  { weight: 2, arbitrary: hostileTagString },
  {
    weight: 1,
    arbitrary: fc.array(tagString, { minLength: 20, maxLength: 80 }).map((t) => t.join('')),
  },
);

const u16Range = fc.oneof(
  fc.nat({ max: 0xffff }),
  fc
    .tuple(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 0, max: 400 }))
    .map(([a, b]) => `${a}-${a + b}`),
  fc
    .tuple(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 0, max: 400 }))
    .map(([a, b]) => ({ min: a, max: a + b })),
);

/** H ranges that do not overlap: four disjoint slices of the u32 space, sometimes ranges. */
const headers = fc
  .tuple(fc.boolean(), fc.array(fc.nat({ max: 0x3fffffff }), { minLength: 8, maxLength: 8 }))
  .map(([asRange, n]) => {
    const out: Record<string, unknown> = {};
    for (let k = 0; k < 4; k++) {
      const base = k * 0x40000000;
      const a = base + Math.min(n[2 * k]!, n[2 * k + 1]!);
      const b = base + Math.max(n[2 * k]!, n[2 * k + 1]!);
      out[`h${k + 1}`] = asRange ? `${a}-${b}` : a;
    }
    return out;
  });

const obfuscation: fc.Arbitrary<Record<string, unknown>> = fc
  .record(
    {
      jc: fc.integer({ min: 0, max: 128 }),
      jmin: fc.integer({ min: 0, max: 640 }),
      jmax: fc.integer({ min: 640, max: 1280 }),
      s1: fc.integer({ min: 0, max: 200 }),
      s2: fc.integer({ min: 0, max: 200 }),
      s3: fc.integer({ min: 0, max: 200 }),
      s4: fc.integer({ min: 0, max: 200 }),
      h: headers,
      i1: iValue,
      i2: iValue,
      i3: iValue,
      i4: iValue,
      i5: iValue,
      headerProtectionKey: wgKey,
      contentPaddingAddition: u16Range,
      rekeyAfterTime: u16Range,
      rekeyTimeout: u16Range,
      rejectAfterTime: u16Range,
      keepaliveTimeout: u16Range,
      maxHandshakeAttempts: u16Range,
      randomTrailers: fc.boolean(),
      disableCookies: fc.boolean(),
    },
    { requiredKeys: [] },
  )
  .map(({ h, ...o }) => ({ ...o, ...(h as object) }));

const peer = fc.record(
  {
    publicKey: wgKey,
    presharedKey: wgKey,
    endpoint,
    allowedIPs: fc.array(cidr, { maxLength: 4 }),
    // a range is AmneziaWG 3.x: valid on amneziawg tunnels only
    persistentKeepalive: fc.oneof(
      { weight: 3, arbitrary: fc.integer({ min: 0, max: 65535 }) },
      { weight: 1, arbitrary: u16Range },
    ),
  },
  { requiredKeys: ['publicKey'] },
);

const wgTunnel = fc
  .record(
    {
      type: fc.constantFrom('wireguard', 'amneziawg'),
      privateKey: wgKey,
      addresses: fc.array(cidr, { minLength: 1, maxLength: 3 }),
      listenPort: port,
      mtu: fc.integer({ min: 1280, max: 9000 }),
      dns: fc.array(fc.oneof(ipv4, ipv6), { maxLength: 2 }),
      peers: fc.array(peer, { minLength: 1, maxLength: 3 }),
      obfuscation,
      downAfter: fc.integer({ min: 1, max: 3600 }),
    },
    { requiredKeys: ['type', 'privateKey', 'addresses', 'peers'] },
  )
  .map((t) => {
    if (t.type === 'wireguard') delete (t as { obfuscation?: unknown }).obfuscation;
    return t;
  });

const proxyTunnel = fc.record(
  {
    type: fc.constantFrom('socks5', 'http'),
    server: fc.oneof(hostname, ipv4),
    port,
    auth: fc.record({
      username: fc.string({ minLength: 1, maxLength: 8 }),
      password: fc.string({ minLength: 1, maxLength: 8 }),
    }),
    dns: fc.array(ipv4, { maxLength: 2 }),
  },
  { requiredKeys: ['type', 'server'] },
);

const tunnelName = fc.oneof(
  fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,10}$/),
  fc.constantFrom('direct', 'block', 'Work', 'a.b', 'twelve-chars'),
);

const match = fc.oneof(
  fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9.-]{0,10}$/) }),
  fc.record({ path: fc.stringMatching(/^\/[a-z*/]{1,12}$/) }),
  fc.record({ dir: fc.stringMatching(/^\/[a-z/]{1,12}$/) }),
  fc.record({ regex: fc.constantFrom('^/usr/bin/.*', '(a+)+$', 'fire(fox|bird)', '[', 'x{2,3}') }),
);

/** A document shaped like the schema, mostly valid. */
const document: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.dictionary(
      tunnelName,
      fc.oneof({ weight: 4, arbitrary: wgTunnel }, { weight: 1, arbitrary: proxyTunnel }),
      { maxKeys: 3 },
    ),
    fc.array(
      fc.record(
        {
          match,
          fallback: fc.constantFrom('allow-direct', 'block', 'drop', 'failover'),
          enabled: fc.boolean(),
        },
        { requiredKeys: ['match'] },
      ),
      { maxLength: 3 },
    ),
    fc.nat(),
    fc.record(
      {
        killSwitch: fc.constantFrom('on', 'off', { enabled: true, allowLan: true }),
        ipv6: fc.constantFrom('tunnel', 'block', 'allow'),
        dns: fc.record({ perApp: fc.boolean(), leakProtection: fc.boolean() }),
      },
      { requiredKeys: [] },
    ),
  )
  .map(([tunnels, rules, pick, rest]) => {
    const names = Object.keys(tunnels);
    const targets = [...names, 'direct', 'block', 'nowhere'];
    return {
      version: 1,
      tunnels,
      rules: rules.map((r, i) => ({ ...r, target: targets[(pick + i) % targets.length] })),
      default: names.length > 0 && pick % 3 === 0 ? names[pick % names.length] : 'direct',
      ...rest,
    };
  });

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value in a JSON document. */
function paths(
  v: unknown,
  at: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

const breakage: fc.Arbitrary<Json> = fc.oneof(
  nastyString,
  fc.constantFrom<Json>(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    65536,
    4294967296,
    1e21,
    [],
    {},
    [null],
    { file: '' },
    { env: '1X' },
    { min: 5, max: 1 },
  ),
  fc.integer(),
  fc.double(),
);

/** A document with one value replaced, one key removed or one unknown key added. */
const brokenDocument = fc
  .tuple(document, fc.nat(), fc.constantFrom('replace', 'delete', 'add'), breakage, nastyString)
  .map(([doc, n, how, value, key]) => {
    const d = structuredClone(doc) as Record<string, unknown>;
    const ps = paths(d).filter((p) => p.length > 0);
    const p = ps[n % ps.length]!;
    type Node = Record<string | number, unknown>;
    const parent = p.slice(0, -1).reduce<Node>((o, k) => o[k] as Node, d);
    const last = p[p.length - 1]!;
    if (how === 'replace') parent[last] = value;
    else if (how === 'delete') {
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
    } else if (!Array.isArray(parent))
      Object.defineProperty(parent, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return d;
  });

/** What the loader must agree with: zod on the document, then the semantic checks. */
function reference(doc: unknown): Config | undefined {
  const z = Config.safeParse(structuredClone(doc));
  if (!z.success) return undefined;
  return checkSemantics(z.data).some((f) => f.severity === 'error') ? undefined : z.data;
}

function checkDocument(doc: Record<string, unknown>): void {
  const text = YAML.stringify(doc, { lineWidth: 0 });
  const r = loadConfigText(text, FILE);
  expectLocated(r.issues, text, true);
  const ref = reference(doc);
  if (ref === undefined) {
    expect(r.config, 'the loader accepted what zod + semantics refuse').toBeUndefined();
    expect(hasErrors(r.issues)).toBe(true);
  } else {
    expect(
      r.issues.filter((i) => i.severity === 'error'),
      'the loader refused what zod + semantics accept',
    ).toEqual([]);
    expect(r.config).toEqual(ref);
  }
}

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

// ---------------------------------------------------------------------------------------
// Text generators

const yamlToken = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'version: 1',
      'tunnels:',
      'rules:',
      'peers:',
      'type: wireguard',
      'type: amneziawg',
      'obfuscation:',
      'i1: <r 5>',
      'addresses: [10.0.0.2/32]',
      'allowedIPs: [0.0.0.0/0]',
      'privateKey: { file: k }',
      'publicKey: X8fMsm0V8OL6NWsUDcwE7TDoddctfOVCUdLJBOT5x0E=',
      'match: { name: x }',
      'target: vpn',
      'default: vpn',
      'killSwitch: on',
      '- ',
      '  ',
      '    ',
      ': ',
      '? ',
      '{',
      '}',
      '[',
      ']',
      ', ',
      '&a ',
      '*a',
      '<<: *a',
      '!!str ',
      '!!binary ',
      '!tag ',
      "'",
      '"',
      '"\\u0000"',
      '# c',
      '|',
      '>-',
      '---',
      '...',
      '%YAML 1.2',
      '%TAG ! tag:x:',
      '__proto__: 1',
      'constructor: 1',
      '\t',
      '\n',
      '\r\n',
      '\n  ',
      '\n- ',
      'vpn:',
      'x: &a [*a]',
      'a: &a {b: *a}',
    ),
  },
  { weight: 2, arbitrary: nastyString },
);
const yamlText = fc.array(yamlToken, { maxLength: 40 }).map((t) => t.join(''));

/** `[*a, *a, …]` nested: the alias-expansion bomb shape. */
const aliasBomb = fc.integer({ min: 1, max: 12 }).map((depth) => {
  const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i <= depth; i++)
    lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
  return `version: 1\n${lines.join('\n')}\n`;
});

const yamlCorpus = [
  ...corpus(new URL('../fixtures/valid/', import.meta.url), '.yaml'),
  ...corpus(new URL('../../examples/', import.meta.url), '.yaml'),
];
const yamlInput = fc.oneof(
  { weight: 3, arbitrary: yamlText },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.constantFrom(...yamlCorpus), edits).map(([t, e]) => applyEdits(t, e)),
  },
  { weight: 1, arbitrary: aliasBomb },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
);

const iniCorpus = corpus(new URL('../fixtures/import/valid/', import.meta.url), '.conf');
const iniLine = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '[Interface]',
      '[Peer]',
      '[ interface ]',
      '[PEER]',
      '[Other]',
      '[',
      '',
    ),
  },
  {
    weight: 8,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          'PrivateKey',
          'PublicKey',
          'PresharedKey',
          'Address',
          'DNS',
          'MTU',
          'ListenPort',
          'AllowedIPs',
          'Endpoint',
          'PersistentKeepalive',
          'Table',
          'FwMark',
          'PostUp',
          'SaveConfig',
          'Jc',
          'Jmin',
          'Jmax',
          'S1',
          'S2',
          'S3',
          'S4',
          'H1',
          'H2',
          'H3',
          'H4',
          'I1',
          'I5',
          'J1',
          'ITime',
          'HeaderProtectionKey',
          'RandomTrailers',
          'DisableCookies',
          'RekeyTimeout',
          'ContentPaddingAddition',
          'AdvancedSecurity',
          '__proto__',
          'constructor',
          'toString',
          '',
        ),
        fc.oneof(
          wgKey,
          cidr,
          endpoint,
          fc.nat({ max: 70000 }).map(String),
          tagString,
          nastyString,
          fc.array(cidr, { maxLength: 3 }).map((l) => l.join(', ')),
        ),
        fc.constantFrom(' = ', '=', ' =', '\t=\t', ' = ', ' == '),
        fc.constantFrom('', ' # c', '#', ' #x = y'),
      )
      .map(([k, v, eq, c]) => `${k}${eq}${v}${c}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('# comment', '   ', 'garbage', '= x', '\t') },
  { weight: 1, arbitrary: nastyString },
);
const iniText = fc
  .tuple(fc.array(iniLine, { maxLength: 24 }), fc.constantFrom('\n', '\r\n', '\r'), fc.boolean())
  .map(([l, nl, bom]) => (bom ? '\uFEFF' : '') + l.join(nl));
const iniInput = fc.oneof(
  { weight: 3, arbitrary: iniText },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(...iniCorpus), edits).map(([t, e]) => applyEdits(t, e)),
  },
  { weight: 1, arbitrary: fc.constantFrom(...iniCorpus) },
);

// ---------------------------------------------------------------------------------------

describe('fuzz: config', () => {
  it(
    'config/yaml-text: arbitrary text never crashes the loader; errors are located',
    { timeout: testTimeout(2) },
    () => {
      fuzzSync('config/yaml-text', 2, [yamlInput], (text) => {
        const r = loadConfigText(text, FILE);
        expectLocated(r.issues, text, false);
        if (r.config) {
          expect(hasErrors(r.issues)).toBe(false);
          // what was returned is a fixed point of the schema
          expect(Config.parse(structuredClone(r.config))).toEqual(r.config);
        } else expect(hasErrors(r.issues)).toBe(true);
      });
    },
  );

  it(
    'config/document: the loader accepts exactly what zod + semantic checks accept',
    { timeout: testTimeout(2) },
    () => {
      fuzzSync('config/document', 2, [fc.oneof(document, brokenDocument)], (doc) =>
        checkDocument(doc),
      );
    },
  );

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

  it(
    'config/ini-text: the importer never throws; positions are in the text; an import without errors loads',
    { timeout: testTimeout(2) },
    () => {
      fuzzSync(
        'config/ini-text',
        2,
        [iniInput, fc.constantFrom('wg0.conf', 'my vpn.conf', '.conf', 'direct.conf')],
        (text, file) => {
          const { doc } = parseIni(text, file);
          const src = text.replace(/^\uFEFF/, '');
          const lines = src.split(/\r\n|\n|\r/);
          for (const s of doc.sections) {
            expect(lines[s.line - 1]!.slice(s.col - 1).startsWith('[')).toBe(true);
            for (const e of s.entries) {
              const l = lines[e.line - 1]!;
              expect(
                l
                  .slice(e.col - 1)
                  .replace(/\s+/g, '')
                  .startsWith(e.key),
              ).toBe(true);
              if (e.raw !== '') expect(l.slice(e.valueCol - 1).startsWith(e.raw)).toBe(true);
              for (const item of splitList(e))
                expect(l.slice(item.col - 1).startsWith(item.value[0]!)).toBe(true);
            }
          }
          const r = importWgQuick(text, { file });
          expect(
            r.issues.filter((i) => i.message.startsWith('internal error')),
            'internal error',
          ).toEqual([]);
          expectLocated(r.issues, text, false);
          expect(r.ok).toBe(!hasErrors(r.issues));
          if (r.ok) {
            const loaded = loadConfigText(r.yaml, 'imported.yaml');
            expect(
              loaded.issues.filter((i) => i.severity === 'error'),
              r.yaml,
            ).toEqual([]);
            expect(lineCount(r.yaml)).toBeGreaterThan(1);
          }
        },
      );
    },
  );
});
