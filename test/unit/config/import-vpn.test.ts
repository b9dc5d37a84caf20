/**
 * AmneziaVPN `vpn://` keys: the published samples of the AmneziaVPN client, keys made as the
 * apps make them (test/helpers/amnezia-key.ts), each container ≡ the equivalent .conf,
 * fields that disagree with the text, several containers, gateway keys, SSH logins, and
 * damaged keys (every truncation, length headers, bombs, bad JSON). No message may quote a
 * private key.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { importWgQuick } from '../../../src/config/import/index.js';
import { importVpnKey } from '../../../src/config/import/vpn.js';
import {
  decodeVpnKey,
  VpnKeyError,
  VPN_KEY_MAX_BYTES,
} from '../../../src/config/import/vpn-key.js';
import {
  amneziaKey,
  awgParams,
  base64Key,
  clientText,
  documentOf,
  packKey,
  qtToJson,
  type ClientSpec,
  type Generation,
} from '../../helpers/amnezia-key.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/import/vpn');
const fixture = (f: string) => readFileSync(join(DIR, f), 'utf8');

// fixed test keys (never used anywhere else)
const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PUB = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const SERVER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';
const HPK = 'oK0rKs5CKXJsbVnRfZj8uI6ZdI0JLk3Ls/L2+E4bQ7o=';

function spec(gen: Generation, extra: Partial<ClientSpec> = {}): ClientSpec {
  return {
    gen,
    privateKey: PRIV,
    publicKey: PUB,
    serverPublicKey: SERVER,
    psk: PSK,
    clientIp: '10.8.1.3',
    host: 'vpn.example.com',
    port: 47600,
    dns1: '1.1.1.1',
    dns2: '1.0.0.1',
    description: 'office',
    ...(gen === 'wg' ? {} : { awg: awgParams(gen, HPK) }),
    ...extra,
  };
}

/** the YAML without its first two comment lines (the "Imported from …" line differs) */
const body = (yaml: string) => yaml.split('\n').slice(2).join('\n');

function noSecretIn(s: string): void {
  for (const k of [PRIV, PSK, HPK]) expect(s).not.toContain(k);
}

describe('published AmneziaVPN samples', () => {
  it('the client test suite key decodes: qCompress + base64url of the JSON the app reads', () => {
    const key = fixture('amnezia-client-awg2-full-access.key').trim();
    const d = decodeVpnKey(key);
    expect(d.kind).toBe('json');
    if (d.kind !== 'json') return;
    expect(d.packing).toBe('qcompress');
    // its header holds the compressed size; Qt reads it as a hint
    expect(d.headerMismatch).toEqual({ declared: 276, actual: 512 });
    expect(d.doc).toMatchObject({
      defaultContainer: 'amnezia-awg2',
      description: 'AWG Server',
      hostName: 'awg.example.com',
      containers: [
        {
          container: 'amnezia-awg2',
          awg: { protocol_version: '2', H1: '100000000-200000000', S4: '5', I1: '' },
        },
      ],
    });
    // the helper's Qt writer gives back the key's bytes (compact form): the cross-check
    const raw = inflateSync(Buffer.from(key.slice(6), 'base64url').subarray(4)).toString();
    expect(qtToJson(d.doc as never, true)).toBe(raw);
    // and the helper's packing decodes to the same document
    const again = decodeVpnKey(packKey(raw));
    expect(again.kind === 'json' && again.doc).toEqual(d.doc);
  });

  it('a full-access key without last_config: nothing to import, the login dropped and never printed', () => {
    for (const f of [
      'amnezia-client-awg2-full-access.key',
      'amnezia-client-wireguard-full-access.key',
    ]) {
      const r = importVpnKey(fixture(f), { file: f });
      expect(r.ok).toBe(false);
      expect(r.yaml).toBe('');
      expect(r.issues.map((i) => i.message).join('\n')).toMatch(
        /has no client config \(no last_config: a "full access" key carries the server login instead/,
      );
      expect(r.notes.join('\n')).toContain(
        "the key also holds the server's SSH login (userName, password, port)",
      );
      const all = JSON.stringify(r);
      expect(all).not.toMatch(/testpassword/);
    }
  });

  it('the client test suite JSON: its last_config is Qt-indented JSON, byte for byte as the helper writes it', () => {
    const doc = JSON.parse(fixture('amnezia-client-awg2-selfhosted.json')) as {
      containers: { awg: { last_config: string } }[];
    };
    const lc = doc.containers[0]!.awg.last_config;
    expect(qtToJson(JSON.parse(lc) as never)).toBe(lc);
  });

  it('imports the published JSON (and it packed as a key) to the golden YAML; the SSH password is nowhere', () => {
    const golden = fixture('amnezia-client-awg2-selfhosted.yaml');
    const json = fixture('amnezia-client-awg2-selfhosted.json');
    const file = 'amnezia-client-awg2-selfhosted.json';
    const a = importVpnKey(json, { file, nameHint: 'amnezia-client-awg2-selfhosted' });
    expect(a.ok).toBe(true);
    expect(a.yaml).toBe(golden);
    expect(a.tunnels).toEqual([{ name: 'amnezia-cli', container: 'amnezia-awg2' }]);
    // "Сервер 2" gives only "2", the host is an address: the file's name
    expect(a.notes).toContain(
      'tunnel named "amnezia-cli" after the file name "amnezia-client-awg2-selfhosted"; choose another with --name',
    );
    for (const packed of [packKey(json), base64Key(json), packKey(json, { padding: true })]) {
      const b = importVpnKey(packed, { file: 'k', nameHint: 'amnezia-client-awg2-selfhosted' });
      expect(b.yaml).toBe(golden);
    }
    expect(JSON.stringify(a)).not.toContain('XTqeScKWD+HwHFaU');
    // $PRIMARY_DNS/$SECONDARY_DNS: the apps' defaults (the document names no DNS)
    expect(YAML.parse(golden).tunnels['amnezia-cli'].dns).toEqual(['1.1.1.1', '1.0.0.1']);
    // the fields agree with the text: no warning but the .conf's own
    expect(a.issues.map((i) => i.message)).toEqual([
      'ipv6: tunnel, but tunnel "amnezia-cli" has no IPv6 address: IPv6 from its apps will be blocked',
    ]);
  });
});

describe('a container imports exactly as the equivalent .conf', () => {
  for (const gen of ['1.0', '2.0', '3.1', 'wg'] as const)
    it(`AmneziaWG ${gen}: same YAML, same warnings, same MTU advice`, () => {
      const s = spec(gen);
      const r = importVpnKey(amneziaKey([s]), { file: 'key' });
      expect(r.ok, JSON.stringify(r.issues)).toBe(true);
      const conf = clientText(s).replace('$PRIMARY_DNS, $SECONDARY_DNS', '1.1.1.1, 1.0.0.1');
      const c = importWgQuick(conf, { file: 'office.conf' });
      expect(body(r.yaml)).toBe(body(c.yaml));
      const located = (x: typeof r.issues) => x.map((i) => ({ ...i, file: '' }));
      expect(located(r.issues)).toEqual(located(c.issues));
      expect(
        r.issues.every(
          (i) =>
            i.file ===
            'key[' +
              (gen === 'wg'
                ? 'amnezia-wireguard'
                : gen === '1.0'
                  ? 'amnezia-awg'
                  : 'amnezia-awg2') +
              ']',
        ),
      ).toBe(true);
      expect(r.yaml.split('\n')[1]).toBe(
        `# Imported from an AmneziaVPN key ("office", container ${gen === 'wg' ? 'amnezia-wireguard' : gen === '1.0' ? 'amnezia-awg' : 'amnezia-awg2'}) by \`awg import\`.`,
      );
      const t = YAML.parse(r.yaml).tunnels.office;
      expect(t.type).toBe(gen === 'wg' ? 'wireguard' : 'amneziawg');
      if (gen === '3.1')
        expect(t.obfuscation).toMatchObject({
          headerProtectionKey: HPK,
          randomTrailers: true,
          contentPaddingAddition: '8-32',
        });
      if (gen === '2.0')
        expect(t.obfuscation).toMatchObject({ s3: 20, s4: 23, h1: '471800590-471800690' });
    });

  it('keeps the MTU advice of an explicit MTU in the text', () => {
    const s = spec('2.0');
    const doc = documentOf([s]);
    const c = doc.containers as { awg: { last_config: string } }[];
    const lc = JSON.parse(c[0]!.awg.last_config) as Record<string, string>;
    lc.config = lc.config!.replace('[Peer]', 'MTU = 1420\n\n[Peer]').replace(/\n\n\nMTU/, '\nMTU');
    lc.mtu = '1420';
    c[0]!.awg.last_config = qtToJson(lc);
    const r = importVpnKey(packKey(qtToJson(doc)), { file: 'key' });
    expect(r.ok).toBe(true);
    expect(r.issues.map((i) => i.message).join('\n')).toMatch(
      /tunnels\.office\.mtu: 1420 with obfuscation\.s4 = 23|1420 with obfuscation.s4 = 23/,
    );
  });
});

describe('the text wins over the separate fields', () => {
  it('names each field that disagrees, and never quotes a secret', () => {
    const other = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
    const r = importVpnKey(
      amneziaKey([
        spec('2.0', {
          fieldOverrides: {
            client_ip: '10.8.1.9',
            client_priv_key: other,
            psk_key: other,
            H1: '5-6',
            port: 1234,
            allowed_ips: ['10.0.0.0/8'],
          },
        }),
      ]),
      { file: 'key' },
    );
    expect(r.ok).toBe(true);
    const w = r.issues.filter((i) => i.file === 'key').map((i) => `${i.path}: ${i.message}`);
    expect(w).toEqual([
      "containers[0].awg.last_config.client_priv_key: client_priv_key is not the config text's PrivateKey; the config text is taken",
      'containers[0].awg.last_config.client_ip: client_ip = "10.8.1.9" but the config text has Address = 10.8.1.3/32; the config text is taken',
      "containers[0].awg.last_config.psk_key: psk_key is not the config text's PresharedKey; the config text is taken",
      'containers[0].awg.last_config.allowed_ips: allowed_ips = "10.0.0.0/8" but the config text has AllowedIPs = 0.0.0.0/0,::/0; the config text is taken',
      'containers[0].awg.last_config.hostName: hostName:port = "vpn.example.com:1234" but the config text has Endpoint = vpn.example.com:47600; the config text is taken',
      'containers[0].awg.last_config.H1: H1 = "5-6" but the config text has H1 = 471800590-471800690; the config text is taken',
    ]);
    const t = YAML.parse(r.yaml).tunnels.office;
    expect(t.addresses).toEqual(['10.8.1.3/32']);
    expect(t.privateKey).toBe(PRIV);
    expect(JSON.stringify(r.issues) + r.notes.join()).not.toContain(other);
  });

  it('without a text, the fields make one (the apps connect with them)', () => {
    const r = importVpnKey(amneziaKey([spec('1.0', { noText: true })]), { file: 'key' });
    expect(r.ok, JSON.stringify(r.issues)).toBe(true);
    expect(r.notes.join()).toContain('the tunnel was made from its separate fields');
    const t = YAML.parse(r.yaml).tunnels.office;
    expect(t).toMatchObject({
      privateKey: PRIV,
      addresses: ['10.8.1.3/32'],
      dns: ['1.1.1.1', '1.0.0.1'],
      mtu: 1376,
      obfuscation: { jc: 4, s1: 15, h1: 1020325451 },
      peers: [
        {
          publicKey: SERVER,
          presharedKey: PSK,
          endpoint: 'vpn.example.com:47600',
          persistentKeepalive: 25,
        },
      ],
    });
  });
});

describe('several containers', () => {
  const key = () =>
    amneziaKey([
      spec('2.0'),
      spec('1.0', { clientIp: '10.8.2.3' }),
      spec('wg', { clientIp: '10.8.3.3' }),
    ]);
  it('one tunnel each, names from the description with the container, the default container is the default', () => {
    const r = importVpnKey(key(), { file: 'key' });
    expect(r.ok, JSON.stringify(r.issues)).toBe(true);
    expect(r.tunnels).toEqual([
      { name: 'office-awg2', container: 'amnezia-awg2' },
      { name: 'office-awg', container: 'amnezia-awg' },
      { name: 'office-wg', container: 'amnezia-wireguard' },
    ]);
    const c = YAML.parse(r.yaml);
    expect(Object.keys(c.tunnels)).toEqual(['office-awg2', 'office-awg', 'office-wg']);
    expect(c.default).toBe('office-awg2');
    expect(r.yaml).toContain(
      "# From the key's container amnezia-awg (AmneziaWG 1.x); the default is office-awg2",
    );
  });

  it('--container picks one (named as the key is); an unknown one is an error that lists them', () => {
    const r = importVpnKey(key(), { file: 'key', container: 'amnezia-wireguard' });
    expect(r.tunnels).toEqual([{ name: 'office', container: 'amnezia-wireguard' }]);
    const bad = importVpnKey(key(), { file: 'key', container: 'amnezia-xray' });
    expect(bad.ok).toBe(false);
    expect(bad.issues.at(-1)!.message).toBe(
      '--container amnezia-xray: the key has no such container (it has amnezia-awg2, amnezia-awg, amnezia-wireguard)',
    );
  });

  it('other protocols are skipped with a note; only others is an error', () => {
    const doc = documentOf([spec('wg')]);
    (doc.containers as unknown[]).unshift({
      container: 'amnezia-openvpn',
      openvpn: { last_config: '{}' },
    });
    const r = importVpnKey(packKey(qtToJson(doc)), { file: 'key' });
    expect(r.ok).toBe(true);
    expect(r.notes.join('\n')).toContain(
      'container "amnezia-openvpn" is not WireGuard or AmneziaWG',
    );
    (doc.containers as unknown[]).pop();
    const none = importVpnKey(packKey(qtToJson(doc)), { file: 'key' });
    expect(none.ok).toBe(false);
    expect(none.issues.at(-1)!.message).toBe('no usable container in the key: nothing to import');
  });
});

describe('keys that cannot work offline, and SSH logins', () => {
  for (const [what, extra] of [
    ['api_key', { api_key: 'tok-123', config_version: 1 }],
    ['auth_data', { auth_data: { token: 'tok' } }],
    ['api_config', { api_config: { service_type: 'amnezia-premium' }, config_version: 2 }],
    ['config_version 2', { config_version: 2 }],
  ] as const)
    it(`refuses a gateway key (${what}) and says why`, () => {
      const r = importVpnKey(amneziaKey([spec('2.0', { extra: extra as never })]), { file: 'key' });
      expect(r.ok).toBe(false);
      expect(r.issues[0]!.message).toMatch(
        /^this is a key of Amnezia's VPN service \(.*\): it holds an access token, not a tunnel; .* cannot work offline/,
      );
      noSecretIn(JSON.stringify(r));
    });

  it('refuses a gateway template ($WIREGUARD_CLIENT_PRIVATE_KEY)', () => {
    const s = spec('1.0', { fieldOverrides: { client_priv_key: '$WIREGUARD_CLIENT_PRIVATE_KEY' } });
    const r = importVpnKey(amneziaKey([s]), { file: 'key' });
    expect(r.issues[0]!.message).toMatch(
      /Amnezia's gateway fills in when the app connects: the key cannot work offline/,
    );
  });

  it('imports the tunnel of a full-access key with last_config and drops the login', () => {
    const secret = 'hunter2-ssh-password';
    const sshKey =
      '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----';
    const r = importVpnKey(
      amneziaKey([
        spec('2.0', { extra: { userName: 'root', password: secret, port: 22, sshKey } }),
      ]),
      { file: 'key' },
    );
    expect(r.ok).toBe(true);
    expect(r.notes[0]).toBe(
      'the key also holds the server\'s SSH login (userName, password, port, sshKey): a "full access" key. awg needs only the tunnel; the login was dropped and is written nowhere',
    );
    const all = JSON.stringify(r);
    expect(all).not.toContain(secret);
    expect(all).not.toContain('b3BlbnNzaC1rZXktdjEAAAAA');
  });
});

describe('damaged keys: a clear error, nothing imported, no secret quoted', () => {
  const good = amneziaKey([spec('3.1')]);
  const err = (k: string): string => {
    const r = importVpnKey(k, { file: 'key' });
    expect(r.ok).toBe(false);
    expect(r.yaml).toBe('');
    noSecretIn(JSON.stringify(r));
    return r.issues[0]!.message;
  };

  it('truncated at every length', () => {
    const seen = new Set<string>();
    for (let n = 0; n < good.length; n++) seen.add(err(good.slice(0, n)));
    // every message is one of the decoder's own
    for (const m of seen)
      expect(m).toMatch(
        /^the key( is empty| is not base64url|'s base64 is cut short| holds \d+ bytes: too short|'s zlib data cannot be read: it (is cut short|is damaged|does not inflate)|'s JSON does not parse| holds JSON but not| inflates to nothing| holds no containers)/,
      );
    expect(seen.size).toBeGreaterThan(2);
  });

  it('tolerates padding, whitespace and line breaks, and the prefix in any case', () => {
    const wrapped = good.slice(0, 6) + good.slice(6).replace(/(.{60})/g, '$1\n  ') + '==\n';
    expect(importVpnKey(wrapped, { file: 'k' }).ok).toBe(true);
    expect(importVpnKey('VPN://' + good.slice(6), { file: 'k' }).ok).toBe(true);
    expect(importVpnKey(good.slice(6), { file: 'k' }).ok).toBe(true);
  });

  it('bad characters, and "=" inside', () => {
    expect(err(good.slice(0, 20) + '!' + good.slice(21))).toBe(
      'the key is not base64url: character 15 of its data is "!"',
    );
    expect(err(good.slice(0, 20) + '=' + good.slice(21))).toMatch(/"=" before the end/);
  });

  it('a length header past the cap, and a bomb: both refused within the cap', () => {
    const json = qtToJson(documentOf([spec('1.0')]));
    expect(err(packKey(json, { header: VPN_KEY_MAX_BYTES + 1 }))).toBe(
      `the key's length header declares ${VPN_KEY_MAX_BYTES + 1} bytes, more than the ${VPN_KEY_MAX_BYTES} awg reads (a real key holds a few KiB)`,
    );
    const bomb = Buffer.alloc(64 * 1024 * 1024, 0x20);
    const packed = Buffer.concat([Buffer.from([0, 0, 0x10, 0]), deflateSync(bomb, { level: 9 })]);
    expect(packed.length).toBeLessThan(100_000);
    const before = process.memoryUsage().arrayBuffers;
    expect(err('vpn://' + packed.toString('base64url'))).toBe(
      `the key's data inflates past ${VPN_KEY_MAX_BYTES} bytes (its header declares 4096): refused`,
    );
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });

  it('a header that is not the real size is a note (the apps accept it), not an error', () => {
    const r = importVpnKey(packKey(qtToJson(documentOf([spec('1.0')])), { header: 7 }), {
      file: 'k',
    });
    expect(r.ok).toBe(true);
    expect(r.notes[0]).toMatch(
      /^the key's length header says 7 bytes but its data inflates to \d+; AmneziaVPN reads the header as a size hint/,
    );
  });

  it('zlib damage, bad JSON, JSON that is no config, no containers, not UTF-8', () => {
    const b = Buffer.from(good.slice(6), 'base64url');
    b[40] = b[40]! ^ 0xff;
    expect(err('vpn://' + b.toString('base64url'))).toMatch(/^the key's zlib data cannot be read/);
    expect(
      err(packKey(`{"containers": [{"container": "amnezia-awg", "awg": {"last_config": "${PRIV}"`)),
    ).toMatch(/^the key's JSON does not parse/);
    expect(err(packKey('[1, 2]'))).toBe('the key holds JSON but not an AmneziaVPN config object');
    expect(err(packKey('{"description": "x"}'))).toBe(
      'the key holds no containers: nothing to import',
    );
    expect(err(packKey(Buffer.from([0xff, 0xfe, 0x41])))).toBe('the key does not hold UTF-8 text');
    expect(() => decodeVpnKey('vpn://AAAA')).toThrow(VpnKeyError);
  });

  it('a malformed line holding a key in the text: the error does not quote it', () => {
    const s = spec('1.0');
    const doc = documentOf([s]);
    const c = doc.containers as { awg: { last_config: string } }[];
    const lc = JSON.parse(c[0]!.awg.last_config) as Record<string, string>;
    lc.config = lc.config!.replace(`PrivateKey = ${PRIV}`, `PrivateKey ${PRIV}`);
    c[0]!.awg.last_config = qtToJson(lc);
    err(packKey(qtToJson(doc)));
    const r = importVpnKey(packKey(qtToJson(doc)), { file: 'key' });
    expect(r.issues.map((i) => i.message)).toContainEqual(
      expect.stringMatching(/^unknown key <\d+ characters, not shown> in \[Interface\]/),
    );
  });

  it('a key holding a wg-quick file goes through the .conf importer', () => {
    const conf = clientText(spec('1.0')).replace('$PRIMARY_DNS, $SECONDARY_DNS', '9.9.9.9');
    for (const k of [packKey(conf), base64Key(conf)]) {
      const r = importVpnKey(k, { file: 'k', name: 'home' });
      expect(r.ok).toBe(true);
      expect(body(r.yaml)).toBe(body(importWgQuick(conf, { file: 'home.conf' }).yaml));
    }
  });
});
