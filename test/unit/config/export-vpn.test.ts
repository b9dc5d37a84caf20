/**
 * `awg export --format vpn`: the key's shape (container by the tunnel's parameters, the
 * apps' JSON), the round trips — import(export(tunnel)) gives the tunnel section back byte
 * for byte, export(import(key)) an equivalent key — as properties over generated tunnels,
 * and the CLI end to end (argument, file, stdin; nothing secret in stdout/stderr beyond the
 * YAML asked for, nothing written on an error).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { exportVpnKey, qtJson, VpnExportError } from '../../../src/config/export-vpn.js';
import { importWgQuick } from '../../../src/config/import/index.js';
import { importVpnKey } from '../../../src/config/import/vpn.js';
import { decodeVpnKey } from '../../../src/config/import/vpn-key.js';
import { Config, type Secret, type WgLikeTunnel } from '../../../src/config/schema.js';
import { amneziaKey, awgParams, qtToJson, type Generation } from '../../helpers/amnezia-key.js';
import { tunnelIni, tunnelSection } from '../../helpers/tunnel-ini.js';
import { tempDir } from '../../helpers/tmp.js';

const inline = (s: Secret) => s as string;

/** the model of the one tunnel of an imported YAML */
function model(yaml: string): [string, WgLikeTunnel] {
  const c = Config.parse(YAML.parse(yaml));
  const [name, t] = Object.entries(c.tunnels)[0]!;
  return [name, t as WgLikeTunnel];
}

function docOf(key: string): Record<string, unknown> {
  const d = decodeVpnKey(key);
  if (d.kind !== 'json') throw new Error('not json');
  return d.doc;
}

const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const SERVER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';
const HPK = 'oK0rKs5CKXJsbVnRfZj8uI6ZdI0JLk3Ls/L2+E4bQ7o=';

function confOf(gen: Generation, extra: string[] = []): string {
  const awg = gen === 'wg' ? {} : awgParams(gen, HPK);
  return [
    '[Interface]',
    `PrivateKey = ${PRIV}`,
    'Address = 10.8.1.3/32',
    'DNS = 1.1.1.1, 1.0.0.1',
    ...Object.entries(awg)
      .filter(([, v]) => v !== '')
      .map(([k, v]) => `${k} = ${v}`),
    ...extra,
    '',
    '[Peer]',
    `PublicKey = ${SERVER}`,
    `PresharedKey = ${PSK}`,
    'AllowedIPs = 0.0.0.0/0, ::/0',
    'Endpoint = vpn.example.com:47600',
    'PersistentKeepalive = 25',
    '',
  ].join('\n');
}

describe('the key awg writes', () => {
  for (const [gen, container, version] of [
    ['wg', 'amnezia-wireguard', undefined],
    ['1.0', 'amnezia-awg', undefined],
    ['2.0', 'amnezia-awg2', '2'],
    ['3.1', 'amnezia-awg2', '3.1'],
  ] as const)
    it(`AmneziaWG ${gen} → ${container}${version ? ` protocol_version ${version}` : ''}, the apps' JSON`, () => {
      const a = importWgQuick(confOf(gen), { file: 'office.conf' });
      const [name, t] = model(a.yaml);
      const x = exportVpnKey(name, t, inline);
      expect(x.container).toBe(container);
      expect(x.protocolVersion).toBe(version);
      const doc = docOf(x.key);
      // Qt's indented form, as the helper writes it independently
      expect(x.json).toBe(qtToJson(doc as never));
      expect(qtJson(doc as never, true)).toBe(qtToJson(doc as never, true));
      const proto = gen === 'wg' ? 'wireguard' : 'awg';
      expect(doc).toMatchObject({
        defaultContainer: container,
        description: 'office',
        hostName: 'vpn.example.com',
        dns1: '1.1.1.1',
        dns2: '1.0.0.1',
        containers: [{ container, [proto]: { port: '47600', transport_proto: 'udp' } }],
      });
      const p = (doc.containers as Record<string, Record<string, string>>[])[0]![proto]!;
      expect(p.protocol_version).toBe(version);
      const lc = JSON.parse(p.last_config!) as Record<string, unknown>;
      expect(lc).toMatchObject({
        client_priv_key: PRIV,
        client_ip: '10.8.1.3',
        server_pub_key: SERVER,
        psk_key: PSK,
        hostName: 'vpn.example.com',
        port: 47600,
        allowed_ips: ['0.0.0.0/0', '::/0'],
        persistent_keep_alive: '25',
      });
      expect(lc.client_pub_key).toBe(lc.clientId);
      expect(lc.mtu).toBe(String(gen === 'wg' ? 1420 : 1420 - 23 * Number(gen !== '1.0')));
      if (gen === '3.1')
        expect(lc).toMatchObject({ HeaderProtectionKey: HPK, RandomTrailers: 'on' });
      if (gen === '2.0') expect(lc).toMatchObject({ H1: '471800590-471800690', I2: '', S4: '23' });
      if (gen === 'wg')
        expect(Object.keys(lc).some((k) => /^[JSHI]\d?/.test(k) && k !== 'hostName')).toBe(false);
    });

  it('refuses what AmneziaVPN cannot hold: several peers, a peer without endpoint', () => {
    const a = importWgQuick(confOf('1.0'), { file: 'office.conf' });
    const [name, t] = model(a.yaml);
    const two = { ...t, peers: [t.peers[0]!, { ...t.peers[0]!, publicKey: PSK }] } as WgLikeTunnel;
    expect(() => exportVpnKey(name, two, inline)).toThrow(
      new VpnExportError(
        'tunnel office has 2 peers; an AmneziaVPN key holds exactly one (a server)',
      ),
    );
    const { endpoint: _e, ...p } = t.peers[0]!;
    expect(() => exportVpnKey(name, { ...t, peers: [p] } as WgLikeTunnel, inline)).toThrow(
      /has no endpoint/,
    );
  });
});

describe('a keepalive range (AmneziaWG 3.x)', () => {
  it('a .conf with PersistentKeepalive = 20-30 goes into a 3.1 key with the range, and the key imports back to the same tunnel', () => {
    const conf = confOf('wg').replace('PersistentKeepalive = 25', 'PersistentKeepalive = 20-30');
    const a = importWgQuick(conf, { file: 'office.conf' });
    expect(a.ok, JSON.stringify(a.issues)).toBe(true);
    const [name, t] = model(a.yaml);
    expect(t.type).toBe('amneziawg');
    expect(t.peers[0]!.persistentKeepalive).toBe('20-30');
    const x = exportVpnKey(name, t, inline);
    expect([x.container, x.protocolVersion]).toEqual(['amnezia-awg2', '3.1']);
    const p = (docOf(x.key).containers as Record<string, Record<string, string>>[])[0]!.awg!;
    const lc = JSON.parse(p.last_config!) as Record<string, string>;
    expect(lc.persistent_keep_alive).toBe('20-30');
    expect(lc.config).toContain('\nPersistentKeepalive = 20-30\n');
    const b = importVpnKey(x.key, { file: 'key' });
    expect(b.ok, JSON.stringify(b.issues)).toBe(true);
    expect(tunnelSection(b.yaml)).toBe(tunnelSection(a.yaml));
    expect(model(b.yaml)[1].peers[0]!.persistentKeepalive).toBe('20-30');
  });
});

describe('round trips', () => {
  it('import(export(tunnel)) gives the tunnel section back byte for byte; export(import(key)) the same key', () => {
    fc.assert(
      fc.property(tunnelIni, ([, ini]) => {
        const a = importWgQuick(ini, { file: 'srv.conf' });
        if (!a.ok) return fc.pre(false);
        const [name, t] = model(a.yaml);
        const k1 = exportVpnKey(name, t, inline);
        const b = importVpnKey(k1.key, { file: 'key' });
        expect(b.ok, JSON.stringify(b.issues)).toBe(true);
        expect(tunnelSection(b.yaml)).toBe(tunnelSection(a.yaml));
        expect(b.yaml.split('\n').slice(2)).toEqual(a.yaml.split('\n').slice(2));
        const [name2, t2] = model(b.yaml);
        expect(exportVpnKey(name2, t2, inline).key).toBe(k1.key);
      }),
      { numRuns: 150 },
    );
  });

  it('export(import(key)) of keys made as the apps make them: an equivalent key', () => {
    for (const gen of ['wg', '1.0', '2.0', '3.1'] as const) {
      const key = amneziaKey([
        {
          gen,
          privateKey: PRIV,
          publicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
          serverPublicKey: SERVER,
          psk: PSK,
          clientIp: '10.8.1.3',
          host: 'vpn.example.com',
          port: 47600,
          dns1: '1.1.1.1',
          description: 'office',
          ...(gen === 'wg' ? {} : { awg: awgParams(gen, HPK) }),
        },
      ]);
      const a = importVpnKey(key, { file: 'k' });
      const [name, t] = model(a.yaml);
      const again = exportVpnKey(name, t, inline).key;
      const before = docOf(key);
      const after = docOf(again);
      const lcOf = (d: Record<string, unknown>) => {
        const c = (d.containers as Record<string, unknown>[])[0]!;
        const name = c.container as string;
        const p = c[name === 'amnezia-wireguard' ? 'wireguard' : 'awg'] as Record<string, string>;
        return {
          c: name,
          v: p.protocol_version,
          lc: JSON.parse(p.last_config!) as Record<string, unknown>,
        };
      };
      const x = lcOf(before);
      const y = lcOf(after);
      expect([y.c, y.v]).toEqual([x.c, x.v]);
      for (const f of [
        'client_priv_key',
        'client_ip',
        'client_pub_key',
        'server_pub_key',
        'psk_key',
        'hostName',
        'port',
        'persistent_keep_alive',
      ])
        expect(y.lc[f], f).toEqual(x.lc[f]);
      for (const [k, v] of Object.entries(gen === 'wg' ? {} : awgParams(gen, HPK)))
        expect(y.lc[k], k).toBe(v);
      expect(after).toMatchObject({
        description: 'office',
        hostName: 'vpn.example.com',
        dns1: '1.1.1.1',
      });
      // and it imports to the same tunnel
      expect(tunnelSection(importVpnKey(again, { file: 'k' }).yaml)).toBe(tunnelSection(a.yaml));
    }
  });
});

async function awg(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
  const code = await main(['node', 'awg', ...args], io);
  return { code, out, err };
}

describe('the CLI', () => {
  it('awg export --format vpn → awg import (argument, file, -o) gives the tunnel back', async () => {
    const dir = tempDir('awg-vpn-');
    const conf = join(dir, 'office.conf');
    writeFileSync(conf, confOf('3.1'));
    const cfg = join(dir, 'office.yaml');
    expect((await awg(['import', conf, '-o', cfg])).code).toBe(0);
    const e = await awg(['export', '-f', cfg, '--format', 'vpn']);
    expect(e.code, e.err).toBe(0);
    expect(e.out).toMatch(/^vpn:\/\/[A-Za-z0-9_-]+\n$/);
    const keyFile = join(dir, 'office.key');
    const w = await awg(['export', '-f', cfg, '--format', 'vpn', '-o', keyFile]);
    expect(w.err).toBe(
      `wrote ${keyFile} (tunnel office, vpn:// key, container amnezia-awg2 (AmneziaWG 3.1); mode 600: it holds the private key)\n`,
    );
    expect(readFileSync(keyFile, 'utf8')).toBe(e.out);
    // bare base64url that names no file is a key too (and is never quoted as a path)
    const bare = await awg(['import', e.out.trim().slice(6)]);
    expect(bare.code, bare.err).toBe(0);
    const fromArg = await awg(['import', e.out.trim()]);
    expect(fromArg.code, fromArg.err).toBe(0);
    expect(tunnelSection(fromArg.out)).toBe(tunnelSection(readFileSync(cfg, 'utf8')));
    const out = join(dir, 'back.yaml');
    const fromFile = await awg(['import', keyFile, '-o', out]);
    expect(fromFile.err).toContain(`wrote ${out} (tunnel office from amnezia-awg2)`);
    expect(tunnelSection(readFileSync(out, 'utf8'))).toBe(tunnelSection(readFileSync(cfg, 'utf8')));
    expect((await awg(['validate', '-f', out])).code).toBe(0);
    // the wg-quick export is what it was
    const c = await awg(['export', '-f', cfg]);
    expect(c.out).toContain('# awg tunnel office\n[Interface]\n');
  });

  it('an SSH password in the key reaches neither stdout, stderr nor the file', async () => {
    const dir = tempDir('awg-vpn-');
    const secret = 'S3cr3t-SSH-pa55';
    const key = amneziaKey([
      {
        gen: '2.0',
        privateKey: PRIV,
        publicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
        serverPublicKey: SERVER,
        clientIp: '10.8.1.3',
        host: 'vpn.example.com',
        port: 47600,
        awg: awgParams('2.0'),
        extra: { userName: 'root', password: secret, port: 22 },
      },
    ]);
    const out = join(dir, 'k.yaml');
    const r = await awg(['import', key, '-o', out, '--key-file']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(
      "note: the key also holds the server's SSH login (userName, password, port)",
    );
    for (const s of [r.out, r.err, readFileSync(out, 'utf8')]) {
      expect(s).not.toContain(secret);
      expect(s).not.toContain(PRIV);
    }
  });

  it('a damaged key: exit 1, nothing written, no key material printed', async () => {
    const dir = tempDir('awg-vpn-');
    const out = join(dir, 'x.yaml');
    const key = amneziaKey([
      {
        gen: '1.0',
        privateKey: PRIV,
        publicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
        serverPublicKey: SERVER,
        clientIp: '10.8.1.3',
        host: 'vpn.example.com',
        port: 47600,
        awg: awgParams('1.0'),
      },
    ]);
    const r = await awg(['import', key.slice(0, 200), '-o', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /^vpn-key: the key's zlib data cannot be read: it is cut short\nvpn-key: not imported\n$/,
    );
    expect(existsSync(out)).toBe(false);
    const k = join(dir, 'k.txt');
    writeFileSync(k, key.slice(0, 6 + 197)); // 197 base64 characters leave 6 bits over
    const f = await awg(['import', k, '--container', 'amnezia-awg']);
    expect(f.code).toBe(1);
    expect(f.err).toContain(`${k}: the key's base64 is cut short`);
    expect(f.out + f.err).not.toContain(PRIV);
  });

  it('reads a key from stdin (-)', async () => {
    const { importCommand } = await import('../../../src/cli/commands/import.js');
    const key = amneziaKey([
      {
        gen: 'wg',
        privateKey: PRIV,
        publicKey: 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=',
        serverPublicKey: SERVER,
        clientIp: '10.8.1.3',
        host: 'vpn.example.com',
        port: 47600,
        description: 'Home',
      },
    ]);
    let out = '';
    let err = '';
    const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
    const code = await importCommand(io, { file: '-', stdin: async () => key + '\n' });
    expect(code, err).toBe(0);
    expect(Object.keys(YAML.parse(out).tunnels)).toEqual(['home']);
  });

  it('awg export: several tunnels need --tunnel', async () => {
    const dir = tempDir('awg-vpn-');
    const a = importWgQuick(confOf('wg'), { file: 'a.conf' });
    const c = YAML.parse(a.yaml);
    c.tunnels.b = { ...c.tunnels.a, addresses: ['10.8.9.3/32'] };
    const cfg = join(dir, 'two.yaml');
    writeFileSync(cfg, YAML.stringify(c));
    const r = await awg(['export', '-f', cfg, '--format', 'vpn']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`${cfg}: several tunnels (a, b): name one with --tunnel\n`);
    expect((await awg(['export', '-f', cfg, '--format', 'vpn', '--tunnel', 'b'])).code).toBe(0);
  });
});
