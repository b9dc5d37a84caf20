/**
 * fast-check generators of one-peer WireGuard / AmneziaWG (1.0, 2.0, 3.1) tunnels as the
 * wg-quick text a server hands out, for the vpn:// round-trip properties. Values stay inside
 * what awg accepts (S1–S4 ≥ 12 with header protection, H ranges in disjoint bands); 3.1
 * tunnels may have a PersistentKeepalive range.
 */
import fc from 'fast-check';
import YAML from 'yaml';

const key = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((b) => Buffer.from(b).toString('base64'));
const octet = fc.integer({ min: 1, max: 254 });
const hostName = fc
  .array(fc.stringMatching(/^[a-z][a-z0-9-]{0,6}[a-z0-9]$/), { minLength: 2, maxLength: 3 })
  .map((l) => l.join('.'));
const host = fc.oneof(
  hostName,
  fc.tuple(octet, octet, octet, octet).map((o) => o.join('.')),
  fc.tuple(fc.integer({ min: 1, max: 0xffff })).map(([x]) => `[2001:db8::${x.toString(16)}]`),
);
const range = (lo: number, span: number) =>
  fc
    .tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: span }))
    .map(([a, w]) => (w === 0 ? String(lo + a) : `${lo + a}-${lo + a + w}`));
const IPACKETS = [
  '<r 10>',
  '<b 0xc70000000108ce1bf31eec7d93360000449e><r 32><t>',
  '<b 0xdeadbeef><c><r 8>',
];

export type Gen = 'wg' | '1.0' | '2.0' | '3.1';

/** [generation, wg-quick text] */
export const tunnelIni: fc.Arbitrary<[Gen, string]> = fc
  .record({
    gen: fc.constantFrom<Gen>('wg', '1.0', '2.0', '3.1'),
    priv: key,
    server: key,
    psk: fc.option(key, { nil: undefined }),
    hpk: key,
    addr: fc.tuple(octet, octet, octet),
    v6: fc.boolean(),
    dns: fc.array(
      fc.tuple(octet, octet).map(([a, b]) => `10.9.${a}.${b}`),
      { maxLength: 2 },
    ),
    mtu: fc.option(fc.integer({ min: 1280, max: 1400 }), { nil: undefined }),
    allowed: fc.constantFrom('0.0.0.0/0', '0.0.0.0/0, ::/0', '10.0.0.0/8, 192.168.7.0/24'),
    host,
    port: fc.integer({ min: 1, max: 65535 }),
    keepalive: fc.option(fc.integer({ min: 1, max: 600 }), { nil: undefined }),
    // AmneziaWG 3.x: PersistentKeepalive may be a range (0: one value)
    keepaliveSpan: fc.integer({ min: 0, max: 60 }),
    jc: fc.integer({ min: 1, max: 10 }),
    jmin: fc.integer({ min: 10, max: 60 }),
    jspan: fc.integer({ min: 0, max: 200 }),
    s: fc.array(fc.integer({ min: 12, max: 64 }), { minLength: 4, maxLength: 4 }),
    h: fc.tuple(range(5, 0), range(200_000_000, 0), range(400_000_000, 0), range(600_000_000, 0)),
    hr: fc.tuple(
      range(5, 5000),
      range(200_000_000, 5000),
      range(400_000_000, 5000),
      range(600_000_000, 5000),
    ),
    i1: fc.constantFrom(...IPACKETS),
    trailers: fc.boolean(),
    padding: range(0, 40),
  })
  .map((r): [Gen, string] => {
    const l = ['[Interface]', `PrivateKey = ${r.priv}`];
    l.push(`Address = 10.${r.addr.join('.')}/32${r.v6 ? `, fd00::${r.addr[2]}/128` : ''}`);
    if (r.dns.length) l.push(`DNS = ${r.dns.join(', ')}`);
    if (r.mtu !== undefined) l.push(`MTU = ${r.mtu}`);
    if (r.gen !== 'wg') {
      l.push(`Jc = ${r.jc}`, `Jmin = ${r.jmin}`, `Jmax = ${r.jmin + r.jspan}`);
      l.push(`S1 = ${r.s[0]}`, `S2 = ${r.s[1]}`);
      if (r.gen !== '1.0') l.push(`S3 = ${r.s[2]}`, `S4 = ${r.s[3]}`);
      const h = r.gen === '1.0' ? r.h : r.hr;
      h.forEach((v, i) => l.push(`H${i + 1} = ${v}`));
      if (r.gen !== '1.0') l.push(`I1 = ${r.i1}`);
      if (r.gen === '3.1') {
        l.push(`HeaderProtectionKey = ${r.hpk}`, `ContentPaddingAddition = ${r.padding}`);
        l.push(`RandomTrailers = ${r.trailers ? 'on' : 'off'}`);
      }
    }
    l.push('', '[Peer]', `PublicKey = ${r.server}`);
    if (r.psk) l.push(`PresharedKey = ${r.psk}`);
    l.push(`AllowedIPs = ${r.allowed}`, `Endpoint = ${r.host}:${r.port}`);
    if (r.keepalive !== undefined)
      l.push(
        `PersistentKeepalive = ${r.gen === '3.1' && r.keepaliveSpan > 0 ? `${r.keepalive}-${r.keepalive + r.keepaliveSpan}` : r.keepalive}`,
      );
    return [r.gen, l.join('\n') + '\n'];
  });

/** the `tunnels:` block of an imported YAML (up to the next top-level line) */
export function tunnelSection(yaml: string): string {
  const lines = yaml.split('\n');
  const start = lines.findIndex((x) => x === 'tunnels:');
  let end = start + 1;
  while (end < lines.length && /^\s/.test(lines[end]!)) end++;
  return lines.slice(start, end).join('\n');
}

/** the one tunnel of an imported YAML as the loader's model reads it */
export function onlyTunnel(yaml: string): [string, Record<string, unknown>] {
  const t = (YAML.parse(yaml) as { tunnels: Record<string, Record<string, unknown>> }).tunnels;
  return Object.entries(t)[0]!;
}
