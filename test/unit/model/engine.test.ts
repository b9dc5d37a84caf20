import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../../src/config/fingerprint.js';
import { Config } from '../../../src/config/schema.js';
import { allocate } from '../../../src/model/alloc.js';
import { buildDesired } from '../../../src/model/desired.js';
import { engineSpec, secretsWith } from '../../../src/model/engine.js';
import { isProxyEngine, type Resource } from '../../../src/model/resources.js';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const PEER = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

const config = Config.parse({
  version: 1,
  tunnels: {
    wg: {
      type: 'wireguard',
      privateKey: { env: 'WG_KEY' },
      addresses: ['10.9.0.2/32'],
      listenPort: 51900,
      peers: [
        {
          publicKey: PEER,
          presharedKey: { file: '/etc/awg/psk' },
          endpoint: 'vpn.example.com:51820',
          allowedIPs: ['10.0.0.7/8', 'fd00::1/64'],
          persistentKeepalive: 25,
        },
        { publicKey: KEY, allowedIPs: [] },
      ],
    },
    awg: {
      type: 'amneziawg',
      privateKey: KEY,
      addresses: ['10.9.1.2/32'],
      peers: [{ publicKey: PEER, endpoint: '192.0.2.1:51820', allowedIPs: ['0.0.0.0/0'] }],
      obfuscation: {
        jc: 4,
        jmin: 10,
        jmax: 50,
        s1: 16,
        s2: 16,
        s3: 16,
        s4: 16,
        h1: '100-200',
        headerProtectionKey: { env: 'HPK' },
        h2: { min: 300, max: 400 },
        randomTrailers: true,
      },
    },
    plain: {
      type: 'amneziawg',
      privateKey: KEY,
      addresses: ['10.9.2.2/32'],
      peers: [{ publicKey: PEER, allowedIPs: ['10.2.0.0/16'] }],
      obfuscation: { jc: 2, jmin: 10, jmax: 20 },
    },
    sx: {
      type: 'socks5',
      server: 'proxy.example.com',
      auth: { username: 'me', password: { env: 'PW' } },
      udp: true,
      dns: ['1.1.1.1'],
    },
    hp: { type: 'http', server: '192.0.2.9', port: 3128, tls: true },
  },
});
const alloc = allocate(config);
const secrets = new Map([
  ['tunnels.wg.privateKey', 'wg-private'],
  ['tunnels.wg.peers[0].presharedKey', 'wg-psk'],
  ['tunnels.awg.obfuscation.headerProtectionKey', 'hpk-value'],
  ['tunnels.sx.auth.password', 'pw-value'],
]);
/** a fixed host key: fingerprints are HMACs under it (the host's own lives in the state directory) */
const FP_KEY = Buffer.alloc(32, 7);
const fp = (v: string) => fingerprint(v, FP_KEY);
const spec = (name: string, s: Map<string, string> = secrets) =>
  engineSpec(
    name,
    config.tunnels[name]!,
    alloc,
    s.size ? { values: s, fingerprintKey: FP_KEY } : undefined,
  );

describe('engineSpec: the engine resource of a tunnel', () => {
  it('wireguard: UAPI-shaped fields, secrets as fingerprints, canonical prefixes, the bypass mark', () => {
    expect(spec('wg')).toEqual({
      tunnel: 'wg',
      type: 'wireguard',
      link: 'awg-wg',
      config: {
        privateKey: fp('wg-private'),
        listenPort: 51900,
        fwmark: alloc.bypassMark,
        peers: [
          {
            publicKey: PEER,
            presharedKey: fp('wg-psk'),
            endpoint: 'vpn.example.com:51820',
            allowedIPs: ['10.0.0.0/8', 'fd00::/64'],
            persistentKeepalive: 25,
          },
          {
            publicKey: KEY,
            presharedKey: null,
            endpoint: null,
            allowedIPs: [],
            persistentKeepalive: 0,
          },
        ],
      },
    });
    expect(JSON.stringify(spec('wg'))).not.toMatch(/wg-private|wg-psk/);
  });

  it('fingerprints are keyed: HMAC-SHA256 under the host key, not a bare hash of the value', () => {
    const v = 'pw-value';
    expect(fp(v)).toBe('hmac:' + createHmac('sha256', FP_KEY).update(v).digest('hex').slice(0, 12));
    expect(fp(v)).not.toContain(createHash('sha256').update(v).digest('hex').slice(0, 12));
    expect(fingerprint(v, Buffer.alloc(32, 8))).not.toBe(fp(v));
    // the same key, the same fingerprint: plans are deterministic on one host
    expect(fp(v)).toBe(fp(v));
    expect(() => fingerprint(v, Buffer.alloc(8))).toThrow(/16 bytes/);
  });

  it('secret values without a fingerprint key are a bug, never an unkeyed fingerprint', () => {
    expect(() => secretsWith(secrets, undefined)).toThrow(/without the fingerprint key/);
    expect(secretsWith(new Map(), undefined)).toBeUndefined();
  });

  it('secrets that were not resolved are described, never fingerprinted', () => {
    const s = spec('wg', new Map());
    expect(s.type === 'wireguard' && s.config.privateKey).toBe('unresolved:env WG_KEY');
    expect(s.type === 'wireguard' && s.config.peers[0]!.presharedKey).toBe(
      'unresolved:file /etc/awg/psk',
    );
  });

  it('amneziawg: the obfuscation as configured, the header protection key replaced in place by its fingerprint', () => {
    const s = spec('awg');
    if (isProxyEngine(s)) throw new Error('not a WireGuard engine');
    expect(s.config.obfuscation).toEqual({
      jc: 4,
      jmin: 10,
      jmax: 50,
      s1: 16,
      s2: 16,
      s3: 16,
      s4: 16,
      h1: '100-200',
      headerProtectionKey: fp('hpk-value'),
      h2: { min: 300, max: 400 },
      randomTrailers: true,
    });
    // key order is the parsed config's: plans and the state file print the spec as JSON
    expect(Object.keys(s.config.obfuscation!)).toEqual(
      Object.keys(config.tunnels.awg!.type === 'amneziawg' ? config.tunnels.awg!.obfuscation : {}),
    );
    expect(Object.keys(s.config.obfuscation!)).toContain('headerProtectionKey');
    const plain = spec('plain');
    expect(plain.config).toMatchObject({ obfuscation: { jc: 2, jmin: 10, jmax: 20 } });
    expect(Object.keys((plain.config as { obfuscation: object }).obfuscation)).toEqual([
      'jc',
      'jmin',
      'jmax',
    ]);
    expect('obfuscation' in spec('wg').config).toBe(false);
  });

  it('socks5 and http: upstream, the allocated redirect ports, the password as a fingerprint', () => {
    const sx = alloc.tunnels.get('sx')!;
    expect(spec('sx')).toEqual({
      tunnel: 'sx',
      type: 'socks5',
      config: {
        server: 'proxy.example.com',
        port: 1080,
        redirectPort: sx.redirectPort,
        redirectPortDirect: sx.redirectPortDirect,
        fwmark: alloc.bypassMark,
        dns: ['1.1.1.1'],
        auth: { username: 'me', password: fp('pw-value') },
        udp: true,
      },
    });
    const hp = spec('hp');
    expect(hp).toMatchObject({
      tunnel: 'hp',
      type: 'http',
      config: { server: '192.0.2.9', port: 3128, auth: null, dns: [], tls: true },
    });
    expect('link' in hp || 'udp' in hp.config).toBe(false);
    expect([spec('sx'), spec('hp'), spec('wg'), spec('awg')].map(isProxyEngine)).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });

  it('is what buildDesired plans for each tunnel', () => {
    const engines = buildDesired(config, { secrets, fingerprintKey: FP_KEY }).resources.filter(
      (r): r is Resource<'engine'> => r.kind === 'engine',
    );
    expect(engines.map((r) => r.spec.tunnel)).toEqual(['wg', 'awg', 'plain', 'sx', 'hp']);
    for (const r of engines)
      expect(JSON.stringify(r.spec)).toBe(JSON.stringify(spec(r.spec.tunnel)));
  });
});
