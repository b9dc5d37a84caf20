/** The tunnel MTU and datagram sizes (config/mtu.ts); the located corpus case is 13-warn-mtu-overhead.yaml. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkMtu,
  defaultMtu,
  effectiveMtu,
  fittingMtu,
  largestDatagrams,
  outerFamily,
} from '../../../src/config/mtu.js';
import { Config, type WgLikeTunnel } from '../../../src/config/schema.js';
import { buildDesired } from '../../../src/model/desired.js';
import type { LinkSpec } from '../../../src/model/resources.js';

const KEY = 'PTfknfo4VGstgmrDFrtlTjlwV76MhUC6gM1k/q9Nhk4=';

function tunnel(
  extra: Record<string, unknown> = {},
  obfuscation?: Record<string, unknown>,
  endpoint = 'vpn.example.com:443',
): WgLikeTunnel {
  const c = Config.parse({
    version: 1,
    tunnels: {
      t: {
        type: obfuscation ? 'amneziawg' : 'wireguard',
        privateKey: { file: 'k' },
        addresses: ['10.0.0.2/32'],
        peers: [{ publicKey: KEY, endpoint, allowedIPs: ['0.0.0.0/0'] }],
        ...extra,
        ...(obfuscation ? { obfuscation } : {}),
      },
    },
  });
  return c.tunnels.t as WgLikeTunnel;
}
const warnings = (t: WgLikeTunnel) =>
  checkMtu(t, ['tunnels', 't']).map((f) => `${f.path.join('.')}: ${f.message}`);

describe('defaultMtu / effectiveMtu', () => {
  it('is 1420 for WireGuard and AmneziaWG without s4, 1420 - s4 with it, never below 1280', () => {
    expect(effectiveMtu(tunnel())).toBe(1420);
    expect(effectiveMtu(tunnel({}, { jc: 4, jmin: 10, jmax: 50, s1: 15 }))).toBe(1420);
    expect(effectiveMtu(tunnel({}, { s4: 23 }))).toBe(1397);
    expect(effectiveMtu(tunnel({}, { s4: 140 }))).toBe(1280);
    expect(effectiveMtu(tunnel({}, { s4: 141 }))).toBe(1280);
    expect(effectiveMtu(tunnel({ mtu: 1420 }, { s4: 23 }))).toBe(1420);
    expect(fittingMtu(23, 4)).toBe(1417);
  });

  it('the link of the desired state gets it', () => {
    const c = Config.parse({
      version: 1,
      tunnels: {
        a: { ...tunnelInput(), type: 'amneziawg', obfuscation: { s4: 23 } },
        b: { ...tunnelInput('10.0.1.2/32'), type: 'wireguard' },
      },
    });
    const mtus = buildDesired(c)
      .resources.filter((r) => r.kind === 'link')
      .map((r) => `${(r.spec as LinkSpec).name} ${(r.spec as LinkSpec).mtu}`);
    expect(mtus).toEqual(['awg-a 1397', 'awg-b 1420']);
  });

  it('property: the fitting MTU is the largest whose transport datagrams fit 1500 bytes over IPv6', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65535 - 32 - 1 }), (s4) => {
        const safe = fittingMtu(s4);
        expect(safe + 80 + s4).toBeLessThanOrEqual(1500);
        expect(safe + 1 + 80 + s4).toBeGreaterThan(1500);
        const d = defaultMtu({ obfuscation: { s4 } });
        expect(d).toBeGreaterThanOrEqual(1280);
        // the default fits unless it had to stop at 1280
        if (d > 1280 || s4 <= 140) expect(d + 80 + s4).toBeLessThanOrEqual(1500);
      }),
    );
  });

  it('property: with mtu absent, only an s4 the default cannot make room for warns', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), (s4) => {
        const w = warnings(tunnel({}, { s4 }));
        expect(w.length).toBe(s4 > 140 ? 1 : 0);
        if (s4 > 140) expect(w[0]).toMatch(/^tunnels\.t\.obfuscation\.s4: /);
      }),
    );
  });
});

function tunnelInput(address = '10.0.0.2/32') {
  return {
    privateKey: { file: 'k' },
    addresses: [address],
    peers: [{ publicKey: KEY, allowedIPs: [address] }],
  };
}

describe('outerFamily', () => {
  it('is 4 only when every endpoint is an IPv4 address', () => {
    const t = tunnel();
    expect(outerFamily(t)).toBe(6);
    expect(outerFamily(tunnel({}, undefined, '192.0.2.1:51820'))).toBe(4);
    expect(outerFamily(tunnel({}, undefined, '[2001:db8::1]:51820'))).toBe(6);
    const mixed = {
      ...t,
      peers: [
        { publicKey: KEY, endpoint: '192.0.2.1:1', allowedIPs: [] },
        { publicKey: KEY, endpoint: 'x.example:1', allowedIPs: [] },
      ],
    };
    expect(outerFamily(mixed)).toBe(6);
    expect(outerFamily({ ...t, peers: [{ ...t.peers[0]!, endpoint: undefined }] })).toBe(6);
  });
});

describe('largestDatagrams', () => {
  it('lists transport, handshake, junk and I-packet sizes', () => {
    const t = tunnel(
      { mtu: 1400 },
      { jc: 2, jmin: 10, jmax: 70, s1: 15, s2: 18, s3: 20, s4: 23, i1: '<b 0xc0ffee><r 16><t>' },
    );
    expect(largestDatagrams(t).map((d) => `${d.field} ${d.bytes}`)).toEqual([
      'mtu 1455',
      's1 163',
      's2 110',
      's3 84',
      'jmax 70',
      'i1 23',
    ]);
    expect(largestDatagrams(tunnel()).map((d) => `${d.field} ${d.bytes}`)).toEqual(['mtu 1452']);
  });
});

describe('checkMtu messages', () => {
  it('says nothing for the defaults and for MTUs that fit', () => {
    expect(warnings(tunnel())).toEqual([]);
    expect(warnings(tunnel({}, { s4: 23 }))).toEqual([]);
    expect(warnings(tunnel({ mtu: 1397 }, { s4: 23 }))).toEqual([]);
    expect(warnings(tunnel({ mtu: 1417 }, { s4: 23 }, '192.0.2.1:443'))).toEqual([]);
  });

  it('names the MTU that fits, over IPv4 when every endpoint is IPv4', () => {
    expect(warnings(tunnel({ mtu: 1420 }, { s4: 23 }))).toEqual([
      'tunnels.t.mtu: 1420 with obfuscation.s4 = 23 makes transport datagrams of 1475 bytes (1523 with IPv6 outer headers, 1503 with IPv4) that a 1500-byte path must fragment (TCP excepted: the engine lowers its MSS to fit); the largest MTU that fits is 1397',
    ]);
    // AmneziaWG 3.x content padding: the clamped segments lose their batches
    expect(warnings(tunnel({ mtu: 1420 }, { s4: 23, contentPaddingAddition: '8-32' }))).toEqual([
      'tunnels.t.mtu: 1420 with obfuscation.s4 = 23 makes transport datagrams of 1475 bytes (1523 with IPv6 outer headers, 1503 with IPv4) that a 1500-byte path must fragment (TCP excepted: the engine lowers its MSS to fit; with contentPaddingAddition the segments the peer sends are then padded to random sizes it cannot send in batches, about half the throughput); the largest MTU that fits is 1397',
    ]);
    expect(
      warnings(tunnel({ mtu: 1397 }, { s4: 23, contentPaddingAddition: { min: 8, max: 32 } })),
    ).toEqual([]);
    expect(warnings(tunnel({ mtu: 1420 }, { s4: 23, contentPaddingAddition: 0 }))[0]).not.toContain(
      'contentPadding',
    );
    expect(warnings(tunnel({ mtu: 1418 }, { s4: 23 }, '192.0.2.1:443'))).toEqual([
      'tunnels.t.mtu: 1418 with obfuscation.s4 = 23 makes transport datagrams of 1473 bytes (1521 with IPv6 outer headers, 1501 with IPv4) that a 1500-byte path must fragment (TCP excepted: the engine lowers its MSS to fit); the largest MTU that fits is 1417 (every endpoint is an IPv4 address)',
    ]);
    expect(warnings(tunnel({ mtu: 1500 }))).toEqual([
      'tunnels.t.mtu: 1500 makes transport datagrams of 1532 bytes (1580 with IPv6 outer headers, 1560 with IPv4) that a 1500-byte path must fragment; the largest MTU that fits is 1420',
    ]);
    // an external engine clamps nothing: no TCP exception is promised
    expect(
      warnings({
        ...tunnel({ mtu: 1420 }, { s4: 23 }),
        engine: { external: '/usr/bin/amneziawg-go' },
      }),
    ).toEqual([
      'tunnels.t.mtu: 1420 with obfuscation.s4 = 23 makes transport datagrams of 1475 bytes (1523 with IPv6 outer headers, 1503 with IPv4) that a 1500-byte path must fragment; the largest MTU that fits is 1397',
    ]);
  });

  it('when no MTU fits, asks for a smaller s4', () => {
    expect(warnings(tunnel({ mtu: 1280 }, { s4: 900 }))).toEqual([
      'tunnels.t.mtu: 1280 with obfuscation.s4 = 900 makes transport datagrams of 2212 bytes (2260 with IPv6 outer headers, 2240 with IPv4) that a 1500-byte path must fragment (TCP excepted: the engine lowers its MSS to fit); no MTU of at least 576 fits, so lower s4 to at most 844',
    ]);
    const v6 = tunnel({ mtu: 1280, addresses: ['fd00::2/128'] }, { s4: 200 });
    expect(warnings(v6)).toEqual([
      'tunnels.t.mtu: 1280 with obfuscation.s4 = 200 makes transport datagrams of 1512 bytes (1560 with IPv6 outer headers, 1540 with IPv4) that a 1500-byte path must fragment (TCP excepted: the engine lowers its MSS to fit); no MTU of at least 1280 fits, so lower s4 to at most 140',
    ]);
  });

  it('at the default floor, offers a lower mtu only to a tunnel without IPv6 addresses', () => {
    expect(warnings(tunnel({ addresses: ['fd00::2/128'] }, { s4: 150 }))).toEqual([
      'tunnels.t.obfuscation.s4: 150 makes transport datagrams of 1462 bytes (1510 with IPv6 outer headers, 1490 with IPv4) at the default MTU 1280 (the default stops at the IPv6 minimum) that a 1500-byte path must fragment over IPv6 (TCP excepted: the engine lowers its MSS to fit); lower s4 to at most 140',
    ]);
    expect(warnings(tunnel({}, { s4: 150 }, '192.0.2.1:443'))).toEqual([]);
    expect(warnings(tunnel({}, { s4: 170 }, '192.0.2.1:443'))).toEqual([
      'tunnels.t.obfuscation.s4: 170 makes transport datagrams of 1482 bytes (1530 with IPv6 outer headers, 1510 with IPv4) at the default MTU 1280 (the default stops at the IPv6 minimum) that a 1500-byte path must fragment (TCP excepted: the engine lowers its MSS to fit); lower s4 to at most 160 (every endpoint is an IPv4 address) or, as the tunnel has no IPv6 address, set mtu: 1270',
    ]);
  });

  it('handshake, junk and I-packet datagrams, each at its own field', () => {
    const t = tunnel(
      { mtu: 1280 },
      { s1: 1305, s2: 1361, s3: 1389, i2: '<r 1000><r 453>', i3: '<r 1000><r 452>' },
    );
    expect(warnings(t)).toEqual([
      'tunnels.t.obfuscation.s1: 1305 makes handshake initiations of 1453 bytes (1501 with IPv6 outer headers, 1481 with IPv4) that a 1500-byte path must fragment over IPv6; the largest s1 that fits is 1304',
      'tunnels.t.obfuscation.s2: 1361 makes handshake responses of 1453 bytes (1501 with IPv6 outer headers, 1481 with IPv4) that a 1500-byte path must fragment over IPv6; the largest s2 that fits is 1360',
      'tunnels.t.obfuscation.s3: 1389 makes cookie replies of 1453 bytes (1501 with IPv6 outer headers, 1481 with IPv4) that a 1500-byte path must fragment over IPv6; the largest s3 that fits is 1388',
      'tunnels.t.obfuscation.i2: the tag chain makes datagrams of 1453 bytes (1501 with IPv6 outer headers, 1481 with IPv4) that a 1500-byte path must fragment over IPv6; at most 1452 bytes fit',
    ]);
    // the schema caps jmax at 1280, which always fits; the check does not rely on that
    const junk = tunnel({}, { jc: 4, jmin: 10, jmax: 50 });
    if (junk.type !== 'amneziawg') throw new Error('type');
    junk.obfuscation.jmax = 1480;
    expect(warnings(junk)).toEqual([
      'tunnels.t.obfuscation.jmax: 1480 allows junk datagrams of up to 1480 bytes (1528 with IPv6 outer headers, 1508 with IPv4) that a 1500-byte path must fragment; the largest jmax that fits is 1452',
    ]);
  });
});
