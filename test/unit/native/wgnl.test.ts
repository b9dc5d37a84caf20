/**
 * Generic netlink and the kernel WireGuard family on bytes. The expected layouts are written
 * out by hand from `linux/netlink.h`, `linux/genetlink.h` and `linux/wireguard.h` (attribute
 * numbers, 4-byte alignment, NLA_F_NESTED on every nest, array entries of type 0, u64s after a
 * pad attribute, sockaddr_in/in6 with the port in network order); the dump replies are built
 * with the small encoder below, independent of the module under test.
 */
import { describe, expect, it } from 'vitest';
import {
  buildGetFamily,
  CTRL_CMD_NEWFAMILY,
  GENL_ID_CTRL,
  parseFamilyId,
} from '../../../src/native/genl.js';
import { parseMessages, NLMSG_DONE } from '../../../src/native/rtnl.js';
import {
  buildGetDevice,
  buildSetDevice,
  decodeSockaddr,
  encodeSockaddr,
  parseGetDevice,
  splitEndpoint,
  type WgDeviceSet,
} from '../../../src/native/wgnl.js';

/** hex with spaces, comments after `#` and line breaks ignored */
const hex = (s: string) =>
  Buffer.from(
    s
      .split('\n')
      .map((l) => l.replace(/#.*/, ''))
      .join('')
      .replace(/\s+/g, ''),
    'hex',
  );
const rep = (byte: string, n: number) => byte.repeat(n);

// ---- an encoder for the test's own replies (nlattr: len u16, type u16, value, pad to 4)
const le16 = (v: number) => Buffer.from([v & 0xff, v >> 8]);
const le32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const le64 = (v: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
function tlv(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const pad = (4 - (len % 4)) % 4;
  return Buffer.concat([le16(len), le16(type), value, Buffer.alloc(pad)]);
}
const nest = (type: number, ...children: Buffer[]) => tlv(type | 0x8000, Buffer.concat(children));
function nlmsg(type: number, flags: number, seq: number, body: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  h.writeUInt32LE(4242, 12);
  return Buffer.concat([h, body]);
}
const genl = (cmd: number, ...attrs: Buffer[]) =>
  Buffer.concat([Buffer.from([cmd, 1, 0, 0]), ...attrs]);

const K = (b: number) => Buffer.alloc(32, b);
const FAMILY = 0x1b;

describe('generic netlink control family', () => {
  it('CTRL_CMD_GETFAMILY "wireguard": header, genlmsghdr, the name attribute', () => {
    expect(buildGetFamily('wireguard', 7, 99)).toEqual(
      hex(`
        24000000 1000 0500 07000000 63000000  # len 36, GENL_ID_CTRL, REQUEST|ACK, seq 7, port 99
        03 01 0000                            # CTRL_CMD_GETFAMILY, version 1
        0e00 0200 776972656775617264 00 0000  # CTRL_ATTR_FAMILY_NAME "wireguard\\0", pad to 16
      `),
    );
  });

  it('reads the family id out of CTRL_CMD_NEWFAMILY (other attributes around it)', () => {
    const reply = nlmsg(
      GENL_ID_CTRL,
      0,
      7,
      genl(
        CTRL_CMD_NEWFAMILY,
        tlv(2, Buffer.from('wireguard\0')),
        tlv(1, le16(FAMILY)),
        tlv(3, le32(1)),
      ),
    );
    const [m] = parseMessages(reply);
    expect(parseFamilyId(m!)).toBe(FAMILY);
    expect(parseFamilyId({ ...m!, type: FAMILY })).toBeUndefined();
  });
});

describe('WG_CMD_SET_DEVICE', () => {
  const full: WgDeviceSet = {
    ifname: 'wg0',
    replacePeers: true,
    privateKey: K(0x11),
    listenPort: 51820,
    fwmark: 0x0f000000,
    peers: [
      {
        publicKey: K(0x22),
        replaceAllowedIps: true,
        presharedKey: K(0),
        endpoint: { address: '192.0.2.1', port: 51820 },
        persistentKeepalive: 25,
        allowedIps: ['10.1.0.0/16', 'fd00::/64'],
      },
    ],
  };

  it('a full configuration in one message, byte for byte', () => {
    const [m, ...more] = buildSetDevice(FAMILY, full, 5, 4242);
    expect(more).toEqual([]);
    expect(m).toEqual(
      hex(`
        14010000 1b00 0500 05000000 92100000  # len 276, family 0x1b, REQUEST|ACK, seq 5, port 4242
        01 01 0000                            # WG_CMD_SET_DEVICE, version 1
        0800 0200 77673000                    # WGDEVICE_A_IFNAME "wg0\\0"
        0800 0500 01000000                    # WGDEVICE_A_FLAGS REPLACE_PEERS
        2400 0300 ${rep('11', 32)}            # WGDEVICE_A_PRIVATE_KEY
        0600 0600 6cca 0000                   # WGDEVICE_A_LISTEN_PORT 51820 (host order), pad
        0800 0700 0000000f                    # WGDEVICE_A_FWMARK 0x0f000000
        bc00 0880                             # WGDEVICE_A_PEERS | NLA_F_NESTED, 188 bytes
          b800 0080                           #   entry 0 | NESTED, 184 bytes
            2400 0100 ${rep('22', 32)}        #     WGPEER_A_PUBLIC_KEY
            0800 0300 02000000                #     WGPEER_A_FLAGS REPLACE_ALLOWEDIPS
            2400 0200 ${rep('00', 32)}        #     WGPEER_A_PRESHARED_KEY (zeros: none)
            1400 0400                         #     WGPEER_A_ENDPOINT, struct sockaddr_in (16)
              0200 ca6c c0000201 0000000000000000  # AF_INET (host), port 51820 (network), 192.0.2.1
            0600 0500 1900 0000               #     WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL 25
            4800 0980                         #     WGPEER_A_ALLOWEDIPS | NESTED, 72 bytes
              1c00 0080                       #       entry | NESTED, 28 bytes
                0600 0100 0200 0000           #         WGALLOWEDIP_A_FAMILY AF_INET
                0800 0200 0a010000            #         WGALLOWEDIP_A_IPADDR 10.1.0.0
                0500 0300 10 000000           #         WGALLOWEDIP_A_CIDR_MASK 16
              2800 0080                       #       entry | NESTED, 40 bytes
                0600 0100 0a00 0000           #         AF_INET6
                1400 0200 fd00${rep('00', 14)} #        fd00::
                0500 0300 40 000000           #         /64
      `),
    );
  });

  it('a removed peer carries only its key and REMOVE_ME; absent fields are not sent', () => {
    const [m] = buildSetDevice(
      FAMILY,
      {
        ifname: 'awg-x',
        peers: [{ publicKey: K(0x33), remove: true, allowedIps: ['1.2.3.4/32'] }],
      },
      1,
    );
    expect(m).toEqual(
      hex(`
        54000000 1b00 0500 01000000 00000000  # len 84
        01 01 0000
        0a00 0200 6177672d7800 0000           # IFNAME "awg-x\\0" (10), pad
        3400 0880                             # PEERS | NESTED, 52
          3000 0080                           #   entry | NESTED, 48
            2400 0100 ${rep('33', 32)}
            0800 0300 01000000                #   WGPEER_F_REMOVE_ME
      `),
    );
  });

  it('cuts a large set into messages: REPLACE_PEERS and the device only first, a split peer repeats its key', () => {
    const ips = Array.from({ length: 40 }, (_, i) => `10.${i}.0.0/16`);
    const set: WgDeviceSet = {
      ifname: 'wg0',
      replacePeers: true,
      privateKey: K(1),
      peers: [
        { publicKey: K(2), replaceAllowedIps: true, persistentKeepalive: 0, allowedIps: ips },
        { publicKey: K(3), replaceAllowedIps: true, allowedIps: ['192.0.2.0/24'] },
      ],
    };
    const msgs = buildSetDevice(FAMILY, set, 10, 0, 512);
    expect(msgs.length).toBeGreaterThan(2);
    for (const [i, b] of msgs.entries()) {
      expect(b.length).toBeLessThanOrEqual(512);
      expect(b.readUInt32LE(0)).toBe(b.length);
      expect(b.readUInt32LE(8)).toBe(10 + i);
    }
    // read back with the dump parser's attribute walk: what each message says
    const parsed = msgs.map((b) => {
      const [m] = parseMessages(b);
      return parseGetDevice([m!]);
    });
    expect(parsed[0]!.privateKey).toEqual(K(1));
    for (const p of parsed.slice(1)) expect(p.privateKey).toBeUndefined();
    const flagsOf = (b: Buffer) => {
      const i = b.indexOf(hex('08000500'));
      return i < 0 ? undefined : b.readUInt32LE(i + 4);
    };
    expect(flagsOf(msgs[0]!)).toBe(1);
    for (const b of msgs.slice(1)) expect(flagsOf(b)).toBeUndefined();
    // the first part of peer 2 carries REPLACE_ALLOWEDIPS and the keepalive, later parts do not
    const peerFlags = (b: Buffer, k: number) =>
      b.includes(Buffer.concat([hex('24000100'), K(k), hex('08000300 02000000')]));
    expect(peerFlags(msgs[0]!, 2)).toBe(true);
    for (const b of msgs.slice(1)) expect(peerFlags(b, 2)).toBe(false);
    // every allowed IP once, in order, and peer 3 whole
    const all = parsed.flatMap((d) => d.peers.filter((p) => p.publicKey.equals(K(2))));
    expect(all.flatMap((p) => p.allowedIps)).toEqual(ips);
    const p3 = parsed.flatMap((d) => d.peers.filter((p) => p.publicKey.equals(K(3))));
    expect(p3.map((p) => p.allowedIps)).toEqual([['192.0.2.0/24']]);
  });

  it('refuses a key of the wrong length and an endpoint that is not an address', () => {
    expect(() =>
      buildSetDevice(FAMILY, { ifname: 'w', privateKey: K(1).subarray(1), peers: [] }, 1),
    ).toThrow(/31 bytes/);
    expect(() =>
      buildSetDevice(
        FAMILY,
        {
          ifname: 'w',
          peers: [{ publicKey: K(1), endpoint: { address: 'vpn.example.com', port: 1 } }],
        },
        1,
      ),
    ).toThrow();
  });
});

describe('sockaddr endpoints', () => {
  it('sockaddr_in6: family, port, flowinfo 0, address, scope 0 (28 bytes)', () => {
    expect(encodeSockaddr('2001:db8::1', 443)).toEqual(
      hex(`0a00 01bb 00000000 20010db8000000000000000000000001 00000000`),
    );
    expect(decodeSockaddr(encodeSockaddr('2001:db8::1', 443))).toBe('[2001:db8::1]:443');
    expect(decodeSockaddr(encodeSockaddr('192.0.2.7', 51820))).toBe('192.0.2.7:51820');
    expect(decodeSockaddr(Buffer.alloc(16))).toBeUndefined();
    expect(splitEndpoint('[2001:db8::1]:443')).toEqual({ address: '2001:db8::1', port: 443 });
    expect(splitEndpoint('192.0.2.7:51820')).toEqual({ address: '192.0.2.7', port: 51820 });
  });
});

describe('WG_CMD_GET_DEVICE', () => {
  it('the dump request: REQUEST|ACK|DUMP, command 0, the link by name', () => {
    expect(buildGetDevice(FAMILY, 'awg-work', 3, 1)).toEqual(
      hex(`
        24000000 1b00 0503 03000000 01000000  # len 36, REQUEST|ACK|DUMP (0x305)
        00 01 0000                            # WG_CMD_GET_DEVICE, version 1
        0d00 0200 6177672d776f726b00 000000   # IFNAME "awg-work\\0" (13), pad to 16
      `),
    );
  });

  it('joins a multipart dump: device attributes first, a peer continued by key, u64s after a pad', () => {
    const ts = Buffer.concat([le64(1_700_000_000n), le64(5_000n)]);
    const peerA1 = nest(
      0,
      tlv(1, K(0xaa)),
      tlv(2, K(0)),
      tlv(6, ts),
      tlv(5, le16(25)),
      tlv(0, Buffer.alloc(0)), // the pad attribute before an 8-aligned u64
      tlv(8, le64(2048n)),
      tlv(7, le64(4096n)),
      tlv(10, le32(1)),
      tlv(4, encodeSockaddr('198.51.100.9', 51820)),
      nest(9, nest(0, tlv(3, Buffer.from([24])), tlv(1, le16(2)), tlv(2, hex('0a000100')))),
    );
    const peerA2 = nest(
      0,
      tlv(1, K(0xaa)),
      nest(
        9,
        nest(
          0,
          tlv(3, Buffer.from([48])),
          tlv(1, le16(10)),
          tlv(2, hex(`20010db8${rep('00', 12)}`)),
        ),
      ),
    );
    const peerB = nest(
      0,
      tlv(1, K(0xbb)),
      tlv(2, K(0x0c)),
      tlv(5, le16(0)),
      tlv(4, Buffer.from([0, 0])),
    );
    const m1 = nlmsg(
      FAMILY,
      0x2,
      3,
      genl(
        0,
        tlv(6, le16(51820)),
        tlv(7, le32(0x0f000000)),
        tlv(1, le32(7)),
        tlv(2, Buffer.from('awg-work\0')),
        tlv(3, K(0x11)),
        tlv(4, K(0x12)),
        nest(8, peerA1),
      ),
    );
    const m2 = nlmsg(
      FAMILY,
      0x2,
      3,
      genl(0, tlv(2, Buffer.from('awg-work\0')), nest(8, peerA2, peerB)),
    );
    const done = nlmsg(NLMSG_DONE, 0x2, 3, le32(0));
    const msgs = parseMessages(Buffer.concat([m1, m2, done])).filter((m) => m.type === FAMILY);
    expect(msgs).toHaveLength(2);
    const dev = parseGetDevice(msgs);
    expect(dev).toMatchObject({
      ifindex: 7,
      ifname: 'awg-work',
      privateKey: K(0x11),
      publicKey: K(0x12),
      listenPort: 51820,
      fwmark: 0x0f000000,
    });
    expect(dev.peers).toEqual([
      {
        publicKey: K(0xaa),
        presharedKey: K(0),
        endpoint: '198.51.100.9:51820',
        persistentKeepalive: 25,
        lastHandshake: { sec: 1_700_000_000n, nsec: 5_000n },
        rxBytes: 4096n,
        txBytes: 2048n,
        protocolVersion: 1,
        allowedIps: ['10.0.1.0/24', '2001:db8::/48'],
      },
      {
        publicKey: K(0xbb),
        presharedKey: K(0x0c),
        persistentKeepalive: 0,
        lastHandshake: { sec: 0n, nsec: 0n },
        rxBytes: 0n,
        txBytes: 0n,
        allowedIps: [],
      },
    ]);
  });

  it('a device without a private key has none', () => {
    const m = nlmsg(
      FAMILY,
      0x2,
      1,
      genl(0, tlv(6, le16(0)), tlv(7, le32(0)), tlv(2, Buffer.from('wg0\0'))),
    );
    const dev = parseGetDevice(parseMessages(m));
    expect(dev.privateKey).toBeUndefined();
    expect(dev.peers).toEqual([]);
  });
});
