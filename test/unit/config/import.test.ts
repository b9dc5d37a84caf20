import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { canonicalPrefix } from '../../../src/config/cidr.js';
import { exportWgQuick } from '../../../src/config/export.js';
import {
  importWgQuick,
  type ImportOptions,
  type ImportResult,
} from '../../../src/config/import/index.js';
import { parseIni, splitList } from '../../../src/config/ini.js';
import { defaultMtu, effectiveMtu } from '../../../src/config/mtu.js';
import { formatIssue } from '../../../src/errors.js';
import { loadConfigText } from '../../../src/config/load.js';
import { Config, isWgLike, type Secret, type WgLikeTunnel } from '../../../src/config/schema.js';
import { buildDesired } from '../../../src/model/desired.js';
import type { RouteSpec } from '../../../src/model/resources.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/import/valid');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** Per-fixture options; every .conf is imported with defaults, plus these variants. */
const VARIANTS: { conf: string; golden: string; opts: Partial<ImportOptions> }[] = [
  { conf: 'se-got-wg-001.conf', golden: 'se-got-wg-001.yaml', opts: { name: 'se-got' } },
  { conf: 'psk.conf', golden: 'psk.keyfile.yaml', opts: { keyMode: 'file' } },
  { conf: 'wg0.conf', golden: 'wg0.amneziawg.yaml', opts: { type: 'amneziawg' } },
  { conf: 'awg3.conf', golden: 'awg3.keyfile.yaml', opts: { keyMode: 'file' } },
];

const confs = readdirSync(DIR)
  .filter((f) => f.endsWith('.conf'))
  .sort();
const cases = [
  ...confs
    .filter(
      (c) => !VARIANTS.some((v) => v.conf === c && v.golden === c.replace(/\.conf$/, '.yaml')),
    )
    .map((conf) => ({ conf, golden: conf.replace(/\.conf$/, '.yaml'), opts: {} })),
  ...VARIANTS,
];

/** Only the keys awg imports, normalized the way wg/wg-quick read them. */
const DROPPED = new Set([
  'fwmark',
  'table',
  'preup',
  'postup',
  'predown',
  'postdown',
  'saveconfig',
]);
const LISTS = new Set(['address', 'dns', 'allowedips']);
function semantic(text: string): {
  iface: Record<string, string[]>;
  peers: Record<string, string[]>[];
} {
  const { doc, issues } = parseIni(text, 'x.conf');
  expect(issues).toEqual([]);
  const norm = (section: (typeof doc.sections)[number]): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const e of section.entries) {
      if (DROPPED.has(e.lower)) continue;
      let vals = LISTS.has(e.lower) ? splitList(e).map((i) => i.value) : [e.value];
      if (e.lower === 'dns') vals = vals.filter((v) => /^[0-9.]+$|:/.test(v));
      if (e.lower === 'allowedips')
        vals = vals.map((v) => (v.includes('/') ? v : `${v}/${v.includes(':') ? 128 : 32}`));
      if (e.lower === 'persistentkeepalive' && e.value.toLowerCase() === 'off') vals = ['0'];
      // awg(8) switches: on/off/true/false or an integer, 0 = off
      if (e.lower === 'randomtrailers' || e.lower === 'disablecookies')
        vals = [/^(on|true)$|^0*[1-9]\d*$/i.test(e.value) ? 'on' : 'off'];
      (out[e.lower] ??= []).push(...vals);
    }
    // no MTU: awg's default (export writes it out)
    out.mtu ??= [String(defaultMtu({ obfuscation: { s4: Number(out.s4?.[0] ?? 0) } }))];
    return out;
  };
  const iface = doc.sections.find((s) => s.kind === 'interface')!;
  const peers = doc.sections
    .filter((s) => s.kind === 'peer')
    .map((p) => {
      const n = norm(p);
      delete n.mtu;
      return n;
    });
  // wg(8) gives a prefix (host bits cleared) to the last peer that lists it
  const owner = new Map<string, number>();
  peers.forEach((p, i) => p.allowedips?.forEach((a) => owner.set(canonicalPrefix(a).cidr, i)));
  peers.forEach((p, i) => {
    if (!p.allowedips) return;
    p.allowedips = p.allowedips.filter((a) => owner.get(canonicalPrefix(a).cidr) === i);
    if (p.allowedips.length === 0) delete p.allowedips;
  });
  return { iface: norm(iface), peers };
}

function resolver(r: ImportResult): (s: Secret) => string {
  return (s) => {
    if (typeof s === 'string') return s;
    if ('file' in s) return r.secretFiles.find((f) => f.file === s.file)!.content;
    throw new Error('env secrets not used here');
  };
}

function onlyTunnel(r: ImportResult): [string, WgLikeTunnel] {
  const c = Config.parse(YAML.parse(r.yaml));
  const [name, t] = Object.entries(c.tunnels)[0]!;
  if (!isWgLike(t)) throw new Error('not a wg tunnel');
  return [name, t];
}

describe('importWgQuick: valid corpus', () => {
  it('has at least 10 realistic files', () => expect(confs.length).toBeGreaterThanOrEqual(10));

  for (const { conf, golden, opts } of cases) {
    describe(`${conf} → ${golden}`, () => {
      const text = readFileSync(join(DIR, conf), 'utf8');
      const r = importWgQuick(text, { file: conf, ...opts });

      it('imports without errors and the YAML validates', () => {
        expect(r.issues.filter((i) => i.severity === 'error')).toEqual([]);
        expect(r.ok).toBe(true);
        expect(r.yaml.startsWith('# yaml-language-server: $schema=')).toBe(true);
        expect(r.yaml).toMatch(/schema\/config\.schema\.json\n/);
        const parsed = Config.safeParse(YAML.parse(r.yaml));
        expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
        expect(parsed.data?.version).toBe(1);
        expect(YAML.parse(r.yaml)).toEqual(r.config);
        const loaded = loadConfigText(r.yaml, golden);
        expect(loaded.issues.filter((i) => i.severity === 'error')).toEqual([]);
      });

      it('matches the golden YAML', () => {
        const path = join(DIR, golden);
        if (UPDATE) writeFileSync(path, r.yaml);
        expect(r.yaml).toBe(readFileSync(path, 'utf8'));
      });

      it('round-trips through exportWgQuick to semantically equal INI', () => {
        const [name, tunnel] = onlyTunnel(r);
        const ini = exportWgQuick(name, tunnel, resolver(r));
        expect(semantic(ini)).toEqual(semantic(text));
        const again = importWgQuick(ini, { ...opts, file: conf, name });
        expect(again.issues.filter((i) => i.severity === 'error')).toEqual([]);
        expect(onlyTunnel(again)[1]).toEqual({ ...tunnel, mtu: effectiveMtu(tunnel) });
      });
    });
  }
});

describe('importWgQuick: mapping details', () => {
  const load = (f: string, o: Partial<ImportOptions> = {}) =>
    importWgQuick(readFileSync(join(DIR, f), 'utf8'), { file: f, ...o });

  it('derives the tunnel name from the file name, directories and extension dropped', () => {
    const r = importWgQuick(readFileSync(join(DIR, 'wg0.conf'), 'utf8'), {
      file: '/etc/wireguard/wg0.conf',
    });
    expect(r.tunnelName).toBe('wg0');
    expect(Object.keys(r.config.tunnels ?? {})).toEqual(['wg0']);
  });

  it('sets a full tunnel as default, with ipv6: tunnel only when IPv6 prefixes are routed', () => {
    expect(load('wg0.conf').config).toMatchObject({
      default: 'wg0',
      ipv6: 'tunnel',
      dns: { system: 'default-tunnel' },
    });
    const psk = load('psk.conf').config;
    expect(psk.default).toBe('psk');
    expect(psk.ipv6).toBeUndefined();
    expect(load('se-got-wg-001.conf', { name: 'mullvad' }).config).toMatchObject({
      default: 'mullvad',
      ipv6: 'tunnel',
    });
  });

  it('imports a split config as default: <tunnel>, as wg-quick routed its prefixes for every process', () => {
    const office = load('office.conf');
    expect(office.config).toMatchObject({ default: 'office', dns: { system: 'default-tunnel' } });
    expect(office.config.ipv6).toBeUndefined();
    expect(office.issues).toEqual([]);
    expect(office.yaml).toContain(
      '# Split tunnel, as wg-quick routed it: traffic to 10.20.0.0/16, 172.16.0.0/12, 192.168.50.0/24 goes through office for every process;\n' +
        '# other destinations go direct (the tunnel table throws them back to the main table).\n',
    );
    // an IPv6 prefix is routed only with ipv6: tunnel; the rest of IPv6 falls through to main
    expect(load('roam.conf').config).toMatchObject({ default: 'roam', ipv6: 'tunnel' });
    // no DNS line: the system resolver is left alone, as wg-quick did
    expect(load('v6ep.conf').config.dns).toBeUndefined();
  });

  it('the split default builds a tunnel table that throws other destinations to main', () => {
    const c = Config.parse(YAML.parse(load('office.conf').yaml));
    const routes = buildDesired(c)
      .resources.filter((r) => r.kind === 'route')
      .map((r) => r.spec as RouteSpec)
      .filter((r) => r.family === 4);
    expect(routes.filter((r) => r.type === 'unicast').map((r) => r.dst)).toEqual([
      '10.20.0.0/16',
      '172.16.0.0/12',
      '192.168.50.0/24',
    ]);
    expect(routes.find((r) => r.type === 'throw')?.dst).toBe('0.0.0.0/0');
    expect(routes.some((r) => r.type === 'unicast' && r.dst === '0.0.0.0/0')).toBe(false);
    // IPv6 prefixes of a split config: routed (ipv6: tunnel), the rest of IPv6 thrown to main
    const roam = buildDesired(Config.parse(YAML.parse(load('roam.conf').yaml)))
      .resources.filter((r) => r.kind === 'route')
      .map((r) => r.spec as RouteSpec)
      .filter((r) => r.family === 6);
    expect(roam.filter((r) => r.type !== 'unreachable').map((r) => `${r.type} ${r.dst}`)).toEqual([
      'unicast fd66::/64',
      'throw ::/0',
    ]);
  });

  it('keeps default: direct where wg-quick routed nothing: Table = off, another table, no AllowedIPs', () => {
    const peer =
      '[Peer]\nPublicKey = GwrsUj8ontVTTu0OKTv1LnCCaf82VzwZuNZpjgsTmg0=\nEndpoint = 192.0.2.1:51820\n';
    const iface = (extra: string) =>
      `[Interface]\nPrivateKey = iE3OR6LY29wPxKEJxtFvMUfB17uzKF7BeJZ/+9jc3Xg=\nAddress = 10.0.0.2/32\nDNS = 10.0.0.1\n${extra}\n`;
    const off = importWgQuick(`${iface('Table = off')}${peer}AllowedIPs = 0.0.0.0/0\n`, {
      file: 't.conf',
    });
    expect(off.ok).toBe(true);
    expect(off.config.default).toBe('direct');
    expect(off.config.dns).toBeUndefined();
    expect(off.yaml).toContain(
      '# Table = off: wg-quick added no routes, so nothing went through t unless hooks routed it.',
    );
    expect(off.issues.find((i) => i.line === 4)).toMatchObject({
      col: 7,
      severity: 'warning',
      message: expect.stringMatching(
        /^DNS: wg-quick pointed the system resolver at 10\.0\.0\.1; awg does that only for the default tunnel .*\(Table = off\)/,
      ),
    });
    const custom = importWgQuick(`${iface('Table = 1234')}${peer}AllowedIPs = 10.9.0.0/16\n`, {
      file: 't.conf',
    });
    expect(custom.config.default).toBe('direct');
    expect(custom.yaml).toContain(
      '# Table = 1234: wg-quick put the routes in table 1234 and no rule sent traffic there',
    );
    const main = importWgQuick(`${iface('Table = main')}${peer}AllowedIPs = 10.9.0.0/16\n`, {
      file: 't.conf',
    });
    expect(main.config.default).toBe('t');
    const none = importWgQuick(`${iface('')}${peer}`, { file: 't.conf' });
    expect(none.ok).toBe(true);
    expect(none.config.default).toBe('direct');
    expect(none.issues.find((i) => i.severity === 'warning')!.message).toMatch(/\(no AllowedIPs\)/);
  });

  it('gives a prefix that several peers list to the last of them, warning at each earlier claim', () => {
    const r = load('twopeers.conf');
    expect(r.ok).toBe(true);
    expect(r.issues).toEqual([
      {
        file: 'twopeers.conf',
        line: 7,
        col: 1,
        path: 'tunnels.twopeers.peers[0].allowedIPs',
        severity: 'warning',
        message:
          'this [Peer] keeps no allowed IPs: later peers claim all of them, so, as under wg-quick, no traffic goes to it',
      },
      {
        file: 'twopeers.conf',
        line: 10,
        col: 14,
        path: 'tunnels.twopeers.peers[0].allowedIPs',
        severity: 'warning',
        message:
          'AllowedIPs 0.0.0.0/0 on line 10 is also claimed on line 16 by a later [Peer] (line 13); WireGuard gives a prefix to the last peer that claims it, so only that peer gets it',
      },
      {
        file: 'twopeers.conf',
        line: 10,
        col: 25,
        path: 'tunnels.twopeers.peers[0].allowedIPs',
        severity: 'warning',
        message:
          'AllowedIPs ::/0 on line 10 is also claimed on line 16 by a later [Peer] (line 13); WireGuard gives a prefix to the last peer that claims it, so only that peer gets it',
      },
    ]);
    const peers = (r.config.tunnels!.twopeers as { peers: { allowedIPs: string[] }[] }).peers;
    expect(peers.map((p) => p.allowedIPs)).toEqual([[], ['0.0.0.0/0', '::/0']]);
    expect(r.config).toMatchObject({ default: 'twopeers', ipv6: 'tunnel' });
    expect(r.yaml).toContain(
      '        # not imported: AllowedIPs 0.0.0.0/0 (line 10): the [Peer] on line 13 claims it too, and WireGuard gives it to the last claim (line 16)\n',
    );
    expect(r.yaml).toMatch(/# This peer keeps no allowed IPs.*\n\s+allowedIPs: \[\]\n/);
    const loaded = loadConfigText(r.yaml, 'twopeers.yaml');
    expect(loaded.issues.filter((i) => i.severity === 'error')).toEqual([]);
  });

  it('compares prefixes with host bits cleared, keeps what is not contested, and any number of peers', () => {
    const key = (k: string) => `PublicKey = ${k}\n`;
    const text = [
      '[Interface]\nPrivateKey = iE3OR6LY29wPxKEJxtFvMUfB17uzKF7BeJZ/+9jc3Xg=\nAddress = 10.0.0.2/32\n',
      `[Peer]\n${key('GwrsUj8ontVTTu0OKTv1LnCCaf82VzwZuNZpjgsTmg0=')}AllowedIPs = 10.1.0.0/16, 10.2.0.0/16\nAllowedIPs = 10.1.0.0/16\n`,
      `[Peer]\n${key('qwUHXBupbng1WMWUhffzEqqW8ItScMVN/OLi6aX6kxY=')}AllowedIPs = 10.1.2.3/16, 10.3.0.0/16\n`,
      `[Peer]\n${key('xjJTFAMrs9ErvuPMxndV6ej2Y3XC08ygfhys5eoHcwk=')}AllowedIPs = 10.1.0.0/16\n`,
    ].join('\n');
    const r = importWgQuick(text, { file: 'm.conf' });
    expect(r.ok).toBe(true);
    const peers = (r.config.tunnels!.m as { peers: { allowedIPs: string[] }[] }).peers;
    expect(peers.map((p) => p.allowedIPs)).toEqual([
      ['10.2.0.0/16'],
      ['10.3.0.0/16'],
      ['10.1.0.0/16'],
    ]);
    expect(
      r.issues
        .filter((i) => i.message.startsWith('AllowedIPs'))
        .map((i) => `${i.line}:${i.col} ${i.message.split(';')[0]}`),
    ).toEqual([
      '7:14 AllowedIPs 10.1.0.0/16 on line 7 is also claimed on line 16 by a later [Peer] (line 14)',
      '8:14 AllowedIPs 10.1.0.0/16 on line 8 is also claimed on line 16 by a later [Peer] (line 14)',
      '12:14 AllowedIPs 10.1.2.3/16 on line 12 is also claimed as 10.1.0.0/16 on line 16 by a later [Peer] (line 14)',
    ]);
    expect(r.config.default).toBe('m');
  });

  it('derives a valid tunnel name from a long file name and says so; --name wins', () => {
    const text = readFileSync(join(DIR, 'my-home-office-vpn.conf'), 'utf8');
    const r = importWgQuick(text, { file: '/etc/wireguard/my-home-office-vpn.conf' });
    expect(r.ok).toBe(true);
    expect(r.tunnelName).toBe('my-home-off');
    expect(Object.keys(r.config.tunnels!)).toEqual(['my-home-off']);
    expect(r.config.default).toBe('my-home-off');
    expect(r.issues).toEqual([
      {
        file: '/etc/wireguard/my-home-office-vpn.conf',
        path: 'tunnels.my-home-off',
        severity: 'warning',
        message:
          'the file name "my-home-office-vpn" is not a valid tunnel name (at most 11 characters, as the link awg-<name> has 15 at most); imported as tunnel "my-home-off", choose another with --name',
      },
    ]);
    const named = importWgQuick(text, { file: 'my-home-office-vpn.conf', name: 'home' });
    expect(named.tunnelName).toBe('home');
    expect(named.issues).toEqual([]);
    expect(Object.keys(named.config.tunnels!)).toEqual(['home']);
    const upper = importWgQuick(text, { file: 'Mullvad SE.conf' });
    expect(upper.tunnelName).toBe('mullvad-se');
    expect(upper.issues[0]!.message).toMatch(
      /^the file name "Mullvad SE" is not a valid tunnel name \(lower-case letters.*imported as tunnel "mullvad-se"/,
    );
    // the cut never leaves a trailing separator
    expect(importWgQuick(text, { file: 'home-office-2.conf' }).tunnelName).toBe('home-office');
    expect(importWgQuick(text, { file: 'work_vpn_de_1.conf' }).tunnelName).toBe('work_vpn_de');
    expect(importWgQuick(text, { file: 'abcdefghij-x.conf' }).tunnelName).toBe('abcdefghij');
  });

  it('types a file with AmneziaWG keys amneziawg and keeps H ranges as "a-b" and I-tag spacing', () => {
    const t = load('awg2.conf').config.tunnels!.awg2 as Record<string, unknown>;
    expect(t.type).toBe('amneziawg');
    expect(t.obfuscation).toMatchObject({
      jc: 6,
      s3: 23,
      s4: 9,
      h1: '100000000-100100000',
      i2: '<b 0x474554202f20485454502f312e31>  <rc 12>   <rd 4>',
      i3: '<r 32>',
    });
    expect(
      (load('awg1.conf').config.tunnels!.awg1 as { obfuscation: unknown }).obfuscation,
    ).toMatchObject({ h1: 1433713425 });
    expect(load('wg0.conf').config.tunnels!.wg0!.type).toBe('wireguard');
  });

  it('keeps an INI MTU that S4 pushes past a 1500-byte path, warning at its line; no MTU takes the default', () => {
    const r = load('awg2-mtu.conf');
    expect(r.ok).toBe(true);
    expect(r.issues.map(formatIssue)).toEqual([
      'awg2-mtu.conf:6:1: warning: tunnels.awg2-mtu.mtu: 1420 with obfuscation.s4 = 23 makes transport datagrams of 1475 bytes (1523 with IPv6 outer headers, 1503 with IPv4) that a 1500-byte path must fragment (TCP excepted: the engine lowers its MSS to fit); the largest MTU that fits is 1397',
    ]);
    expect((r.config.tunnels!['awg2-mtu'] as { mtu?: number }).mtu).toBe(1420);
    const auto = load('awg2-auto.conf');
    expect(auto.issues).toEqual([]);
    const t = auto.config.tunnels!['awg2-auto'] as { mtu?: number };
    expect(t.mtu).toBeUndefined();
    expect(auto.yaml).toContain("# No MTU in the file: awg's default, 1420 - s4 = 1397,");
    const [, loaded] = onlyTunnel(auto);
    expect(effectiveMtu(loaded)).toBe(1397);
    // past the default's floor the warning at S4 says it instead of the comment
    const text = readFileSync(join(DIR, 'awg2-auto.conf'), 'utf8').replace('S4 = 23', 'S4 = 150');
    const far = importWgQuick(text, { file: 'far.conf' });
    expect(far.yaml).not.toContain('No MTU in the file');
    expect(far.issues.map((i) => `${i.line}:${i.col} ${i.path} ${i.message.slice(0, 40)}`)).toEqual(
      ['12:1 tunnels.far.obfuscation.s4 150 makes transport datagrams of 1462 by'],
    );
  });

  it('normalizes bare AllowedIPs to /32 and PersistentKeepalive off to 0', () => {
    const peers = (
      load('mesh.conf').config.tunnels!.mesh as {
        peers: { allowedIPs: string[]; persistentKeepalive?: number }[];
      }
    ).peers;
    expect(peers[2]!.allowedIPs).toEqual(['10.99.0.4/32']);
    expect(peers[1]!.persistentKeepalive).toBe(0);
  });

  it('with keyMode file, refers to key files and returns their material', () => {
    const r = load('psk.conf', { keyMode: 'file' });
    const t = r.config.tunnels!.psk as { privateKey: unknown; peers: { presharedKey: unknown }[] };
    expect(t.privateKey).toEqual({ file: 'psk.key' });
    expect(t.peers[0]!.presharedKey).toEqual({ file: 'psk-peer1.psk' });
    expect(r.secretFiles).toEqual([
      { file: 'psk.key', content: 'OEoxnCUpUn+Uu/Pvis/vFN3By6S6veBwMqBWjhjyXmM=\n' },
      { file: 'psk-peer1.psk', content: 'DpfvLbBMKM8+99iqRiW2PJPAuqn6uE22QZGlc49Ihn8=\n' },
    ]);
    expect(r.yaml).not.toContain('OEoxnCUpUn');
    expect(load('psk.conf').secretFiles).toEqual([]);
  });

  it('warns about hooks, Table, FwMark, SaveConfig and search domains, and keeps them as comments', () => {
    const r = load('hooks.conf');
    const w = r.issues.filter((i) => i.severity === 'warning');
    expect(w.map((i) => [i.line, i.col])).toEqual([
      [4, 7],
      [4, 17],
      [5, 1],
      [6, 1],
      [8, 1],
      [9, 1],
      [10, 1],
      [11, 1],
    ]);
    // Table = 1234: wg-quick routed nothing by default, so the tunnel is not the default
    // and its DNS cannot become the system resolver
    expect(w[0]!.message).toMatch(
      /^DNS: wg-quick pointed the system resolver at 10\.5\.5\.1; .*\(Table = 1234\)/,
    );
    expect(w[1]!.message).toMatch(/search domain "corp.example.com" not imported/);
    expect(w[4]!.message).toMatch(/^PostUp = ip rule add .* not imported: .*runs no hooks/);
    expect(r.yaml).toContain(
      '# not imported: PostUp = iptables -I OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -j REJECT',
    );
    expect(r.yaml).toContain('# keep LAN reachable');
  });

  it('carries INI comments next to the keys they describe', () => {
    const y = load('messy.conf').yaml;
    expect(y).toMatch(/# two subnets\n\s+addresses:/);
    expect(y).toMatch(/# resolver on the router\n\s+dns:/);
    expect(y).toMatch(/# LAN behind the router\n\s+allowedIPs:/);
    expect(y).toMatch(/# trailing note at the end of the file\n$/);
    expect(load('mesh.conf').yaml).toMatch(/# build server\n\s+- publicKey: 6A1f/);
  });

  it('never throws, whatever the input', () => {
    const inputs = [
      '',
      '\u0000\u0001binary\uFFFF',
      '[',
      '=',
      '[Peer]\n=\n',
      'x'.repeat(10000),
      '[Interface]\nI1 = <<<>>>\nH1 = 99999999999-1\n',
      '\uFEFF[Interface]\r\nMTU=\r',
    ];
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const alphabet = '[]=#<>, \n\t:/.-0123456789abcdefABCDEFInterfacePeerAllowedIPsEndpointH1I1Jc';
    for (let n = 0; n < 300; n++)
      inputs.push(
        Array.from(
          { length: Math.floor(rnd() * 200) },
          () => alphabet[Math.floor(rnd() * alphabet.length)],
        ).join(''),
      );
    for (const text of inputs) {
      const r = importWgQuick(text, { file: 'fuzz.conf' });
      if (r.ok) expect(Config.safeParse(YAML.parse(r.yaml)).success).toBe(true);
      else
        expect(r.issues.some((i) => i.severity === 'error' && i.file === 'fuzz.conf')).toBe(true);
    }
  });
});

describe('exportWgQuick', () => {
  const tunnel = Config.parse({
    version: 1,
    tunnels: {
      t: {
        type: 'amneziawg',
        privateKey: { env: 'T_KEY' },
        addresses: ['10.0.0.2/32'],
        dns: ['10.0.0.1'],
        listenPort: 40000,
        obfuscation: { jc: 3, h1: { min: 10, max: 20 }, h2: '30-40', h3: 50, i1: '<r 8>  <t>' },
        peers: [
          {
            publicKey: 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=',
            presharedKey: 'p',
            allowedIPs: [],
          },
        ],
      },
    },
  }).tunnels.t as WgLikeTunnel;
  const resolve = (s: Secret) => (typeof s === 'object' && 'env' in s ? 'PRIV\n' : String(s));

  it('writes wg-quick INI with resolved secrets and ranges as a-b', () => {
    expect(exportWgQuick('t', tunnel, resolve)).toBe(
      [
        '# awg tunnel t',
        '[Interface]',
        'PrivateKey = PRIV',
        'Address = 10.0.0.2/32',
        'DNS = 10.0.0.1',
        'MTU = 1420',
        'ListenPort = 40000',
        'Jc = 3',
        'H1 = 10-20',
        'H2 = 30-40',
        'H3 = 50',
        'I1 = <r 8>  <t>',
        '',
        '[Peer]',
        'PublicKey = LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=',
        'PresharedKey = p',
        '',
      ].join('\n'),
    );
  });

  it('leaves out the wg-quick-only keys for setconf', () => {
    const ini = exportWgQuick('t', tunnel, resolve, { setconf: true });
    expect(ini).not.toMatch(/^(Address|DNS|MTU) =/m);
    expect(ini).toMatch(/^ListenPort = 40000$/m);
  });
});
