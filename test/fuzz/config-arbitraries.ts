/**
 * What the config fuzz targets (config-*.fuzz.ts) share: JSON documents shaped like the
 * schema (WireGuard, AmneziaWG with every obfuscation field, SOCKS5, HTTP, rules), mostly
 * valid; I-value strings (tags, and tags as people mistype them); and the check that an
 * issue's position lies inside the text it was read from.
 */
import { expect } from 'vitest';
import type { Issue } from '../../src/errors.js';
import { bytes, cidr, endpoint, hostname, ipv4, ipv6, port, wgKey } from './arbitraries.js';
import { fc } from './runner.js';

export const FILE = 'fuzz.yaml';

/** Every issue with a position points at a line of the text and a column of that line (+1). */
export function expectLocated(issues: Issue[], text: string, errorsMustHaveLine: boolean): void {
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

export const tagString: fc.Arbitrary<string> = fc
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
export const hostileTagString: fc.Arbitrary<string> = fc
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
export const iValue = fc.oneof(
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
export const document: fc.Arbitrary<Record<string, unknown>> = fc
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
