import { describe, expect, it } from 'vitest';
import {
  addrInfo,
  linkFlags,
  linkRows,
  parseAddrMsg,
  parseLinkMsg,
  scopeName,
} from '../../../src/native/rtnl-links.js';
import { parseMessages, RTM_NEWADDR, RTM_NEWLINK } from '../../../src/native/rtnl.js';

/** one rtattr: u16 length, u16 type, the value, padded to 4 */
function rta(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}
const str = (s: string) => Buffer.from(`${s}\0`);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};
const u8 = (n: number) => Buffer.from([n]);
function msg(type: number, header: Buffer, attrs: Buffer[]): Buffer {
  const body = Buffer.concat([header, ...attrs]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  return Buffer.concat([h, body]);
}
function ifinfo(ifindex: number, flags: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(flags, 8);
  return b;
}
function ifaddr(family: number, prefixlen: number, flags: number, scope: number, ifindex: number) {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefixlen, 1);
  b.writeUInt8(flags, 2);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(ifindex, 4);
  return b;
}

describe('links and addresses as ip -j -d prints them', () => {
  it('flags in iproute2’s order: NO-CARRIER for up without running, RUNNING never, unknown bits in hex, M-DOWN last', () => {
    expect(linkFlags(0x1 | 0x8 | 0x40 | 0x10000)).toEqual(['LOOPBACK', 'UP', 'LOWER_UP']);
    expect(linkFlags(0x1 | 0x2 | 0x1000)).toEqual(['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP']);
    expect(linkFlags(0x10 | 0x80 | 0x1 | 0x40, true)).toEqual([
      'POINTOPOINT',
      'NOARP',
      'UP',
      'M-DOWN',
    ]);
    expect(linkFlags(0x100000)).toEqual(['100000']);
  });

  it('scopes by name, others as numbers', () => {
    expect([0, 200, 253, 254, 255, 100].map(scopeName)).toEqual([
      'global',
      'site',
      'link',
      'host',
      'nowhere',
      '100',
    ]);
  });

  it('a TUN with its info_data, a veth naming its peer, addresses in the dump’s order under their link', () => {
    const linkinfo = (kind: string, data?: Buffer[]) =>
      rta(18, Buffer.concat([rta(1, str(kind)), ...(data ? [rta(2, Buffer.concat(data))] : [])]));
    const buf = Buffer.concat([
      msg(RTM_NEWLINK, ifinfo(7, 0x1 | 0x10 | 0x80 | 0x40 | 0x10000), [
        rta(3, str('awg-t')),
        rta(4, u32(1420)),
        rta(16, u8(0)),
        rta(20, str('awg:managed')),
        linkinfo('tun', [
          rta(3, u8(1)),
          rta(4, u8(0)),
          rta(6, u8(1)),
          rta(1, u32(0)),
          rta(7, u8(0)),
        ]),
      ]),
      msg(RTM_NEWLINK, ifinfo(8, 0x1 | 0x2 | 0x1000), [
        rta(3, str('d0')),
        rta(5, u32(9)),
        rta(16, u8(2)),
        linkinfo('veth'),
      ]),
      msg(RTM_NEWLINK, ifinfo(9, 0x2 | 0x1000), [rta(3, str('d0p')), rta(5, u32(8))]),
    ]);
    const links = parseMessages(buf).map(parseLinkMsg);
    const addrs = parseMessages(
      Buffer.concat([
        msg(RTM_NEWADDR, ifaddr(2, 32, 0x80, 0, 7), [
          rta(2, Buffer.from([10, 0, 0, 2])),
          rta(1, Buffer.from([10, 0, 0, 2])),
          rta(3, str('awg-t')),
        ]),
        msg(RTM_NEWADDR, ifaddr(10, 128, 0, 0, 7), [
          rta(1, Buffer.from('fd000000000000000000000000000002', 'hex')),
          rta(8, u32(0x80 | 0x02)),
        ]),
      ]),
    ).map(parseAddrMsg);
    const rows = linkRows(
      links.map((l) => l!),
      addrs.map((a) => a!),
      (uid) => (uid === 0 ? 'root' : undefined),
    );
    expect(rows[0]).toEqual({
      ifindex: 7,
      ifname: 'awg-t',
      flags: ['POINTOPOINT', 'NOARP', 'UP', 'LOWER_UP'],
      mtu: 1420,
      operstate: 'UNKNOWN',
      ifalias: 'awg:managed',
      linkinfo: {
        info_kind: 'tun',
        info_data: { type: 'tun', pi: false, multi_queue: false, persist: true, user: 'root' },
      },
      addr_info: [
        { family: 'inet', local: '10.0.0.2', prefixlen: 32, scope: 'global', label: 'awg-t' },
        { family: 'inet6', local: 'fd00::2', prefixlen: 128, scope: 'global', nodad: true },
      ],
    });
    expect(rows[1]).toMatchObject({
      ifname: 'd0',
      link: 'd0p',
      flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP', 'M-DOWN'],
      operstate: 'DOWN',
      linkinfo: { info_kind: 'veth' },
      addr_info: [],
    });
    expect(rows[2]!.flags).toEqual(['BROADCAST', 'MULTICAST']);
  });

  it('an address with a peer prints both; one not permanent is dynamic; IPv6 secondary is temporary', () => {
    expect(
      addrInfo({
        family: 2,
        prefixlen: 32,
        flags: 0x80,
        scope: 0,
        ifindex: 1,
        local: '10.0.0.1',
        address: '10.0.0.2',
      }),
    ).toEqual({
      family: 'inet',
      local: '10.0.0.1',
      address: '10.0.0.2',
      prefixlen: 32,
      scope: 'global',
    });
    expect(
      addrInfo({
        family: 10,
        prefixlen: 64,
        flags: 0x01,
        scope: 0,
        ifindex: 1,
        address: '2001:db8::1',
      }),
    ).toEqual({
      family: 'inet6',
      local: '2001:db8::1',
      prefixlen: 64,
      scope: 'global',
      dynamic: true,
      temporary: true,
    });
    expect(addrInfo({ family: 17, prefixlen: 0, flags: 0, scope: 0, ifindex: 1 })).toBeUndefined();
  });
});
