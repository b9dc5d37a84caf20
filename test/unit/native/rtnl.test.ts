import { describe, expect, it } from 'vitest';
import {
  AF_INET,
  AF_INET6,
  IFA_PROTO,
  IFLA_STATS64,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTA_DST,
  RTA_OIF,
  RTA_TABLE,
  attr,
  buildAddrRequest,
  buildMessage,
  buildNewLink,
  formatAddr,
  ifinfomsg,
  isOwnEvent,
  parseAddr,
  parseAttrs,
  parseEvent,
  parseMessages,
  strAttr,
  u32Attr,
} from '../../../src/native/rtnl.js';

function rtmsg(
  family: number,
  dstLen: number,
  table: number,
  protocol: number,
  scope: number,
  type: number,
): Buffer {
  return Buffer.from([family, dstLen, 0, 0, table, protocol, scope, type, 0, 0, 0, 0]);
}

describe('rtnl codec', () => {
  it('formats and parses addresses in network order', () => {
    expect(formatAddr(Buffer.from([10, 200, 0, 1]))).toBe('10.200.0.1');
    expect(formatAddr(parseAddr('fd00:200::7:1'))).toBe('fd00:200::7:1');
    expect(parseAddr('fd00:200::1').toString('hex')).toBe('fd000200000000000000000000000001');
  });

  it('builds the verified 44-byte RTM_NEWROUTE layout (docs/platform-linux.md#rtnetlink)', () => {
    const m = buildMessage(
      RTM_NEWROUTE,
      NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
      7,
      0,
      rtmsg(AF_INET, 24, 254, 99, 253, 1),
      [attr(RTA_DST, parseAddr('10.231.0.0')), u32Attr(RTA_OIF, 5)],
    );
    expect(m.length).toBe(44);
    expect(m.readUInt32LE(0)).toBe(44);
    expect(m.readUInt16LE(6)).toBe(0x605);
  });

  it('splits several messages in one datagram and honours 4-byte alignment', () => {
    const a = buildMessage(RTM_NEWLINK, 0, 1, 0, ifinfomsg(0, 3, 0x1, 0), [strAttr(3, 'awg-x')]);
    const b = buildMessage(RTM_NEWLINK, 0, 2, 42, ifinfomsg(0, 4, 0, 0), [strAttr(3, 'lo')]);
    const ms = parseMessages(Buffer.concat([a, b, Buffer.from([1, 2, 3])]));
    expect(ms.map((m) => [m.seq, m.portid])).toEqual([
      [1, 0],
      [2, 42],
    ]);
    expect(parseEvent(ms[0]!)).toMatchObject({
      type: 'newlink',
      ifindex: 3,
      ifname: 'awg-x',
      flags: 1,
    });
  });

  it('reads IFLA_STATS64 (rx/tx packets and bytes) and ignores a truncated one', () => {
    const st = Buffer.alloc(200);
    st.writeBigUInt64LE(7n, 0);
    st.writeBigUInt64LE(9n, 8);
    st.writeBigUInt64LE(2n ** 40n, 16);
    st.writeBigUInt64LE(1234n, 24);
    const full = parseMessages(
      buildMessage(RTM_NEWLINK, 0, 1, 0, ifinfomsg(0, 3, 0x1, 0), [
        strAttr(3, 'awg-x'),
        attr(IFLA_STATS64, st),
      ]),
    )[0]!;
    expect(parseEvent(full)).toMatchObject({
      stats: { rxPackets: 7, txPackets: 9, rxBytes: 2 ** 40, txBytes: 1234 },
    });
    const short = parseMessages(
      buildMessage(RTM_NEWLINK, 0, 1, 0, ifinfomsg(0, 3, 0x1, 0), [
        attr(IFLA_STATS64, st.subarray(0, 31)),
      ]),
    )[0]!;
    expect(parseEvent(short)).not.toHaveProperty('stats');
  });

  it('parses a route event with RTA_TABLE overriding rtm_table', () => {
    const m = buildMessage(RTM_NEWROUTE, 0x600, 9, 1234, rtmsg(AF_INET, 24, 252, 123, 0, 1), [
      attr(RTA_DST, parseAddr('10.200.60.0')),
      u32Attr(RTA_TABLE, 1234),
      u32Attr(RTA_OIF, 7),
    ]);
    expect(parseEvent(parseMessages(m)[0]!)).toEqual({
      type: 'newroute',
      portid: 1234,
      seq: 9,
      nlFlags: 0x600,
      family: AF_INET,
      ifindex: 7,
      table: 1234,
      protocol: 123,
      scope: 0,
      routeType: 1,
      dst: '10.200.60.0/24',
    });
  });

  it('default route without RTA_DST', () => {
    const m = buildMessage(RTM_NEWROUTE, 0, 0, 0, rtmsg(AF_INET6, 0, 254, 4, 0, 1), []);
    expect(parseEvent(parseMessages(m)[0]!)).toMatchObject({ dst: '::/0', family: AF_INET6 });
  });

  it('address request carries IFA_PROTO, nodad and create|excl', () => {
    const m = buildAddrRequest(
      'add',
      { ifindex: 5, cidr: 'fd00:200::2/128', proto: 99, nodad: true },
      3,
      77,
    );
    const [msg] = parseMessages(m);
    expect(msg!.type).toBe(RTM_NEWADDR);
    expect(msg!.flags).toBe(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    const ev = parseEvent(msg!);
    expect(ev).toMatchObject({
      type: 'newaddr',
      family: AF_INET6,
      prefixlen: 128,
      ifindex: 5,
      address: 'fd00:200::2',
      proto: 99,
    });
    expect(parseAttrs(msg!.payload, 8).get(IFA_PROTO)).toEqual(Buffer.from([99]));
    const del = parseMessages(
      buildAddrRequest('del', { ifindex: 5, cidr: '10.200.0.2/32' }, 4),
    )[0]!;
    expect(parseAttrs(del.payload, 8).has(IFA_PROTO)).toBe(false);
  });

  it('masks NLA_F_NESTED in attribute types and stops at a truncated attribute', () => {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(8, 0);
    b.writeUInt16LE(0x8000 | 18, 2);
    b.writeUInt16LE(100, 8); // claims more than is there
    const m = parseAttrs(b, 0);
    expect([...m.keys()]).toEqual([18]);
  });
});

describe('buildNewLink', () => {
  it('a wireguard link: CREATE|EXCL, the name, the MTU, IFLA_LINKINFO nest with IFLA_INFO_KIND', () => {
    const m = buildNewLink({ name: 'awg-work', kind: 'wireguard', mtu: 1380 }, 9, 0);
    const hex = (s: string) => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');
    expect(m).toEqual(
      hex(`
        4c000000 1000 0506 09000000 00000000  # len 76, RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE, seq 9
        00 00 0000 00000000 00000000 00000000 # ifinfomsg: AF_UNSPEC, index 0, flags 0, change 0
        0d00 0300 6177672d776f726b00 000000   # IFLA_IFNAME "awg-work\0" (13), pad
        0800 0400 64050000                    # IFLA_MTU 1380
        1400 1280                             # IFLA_LINKINFO (18) | NLA_F_NESTED, 20 bytes
          0e00 0100 776972656775617264 00 0000 #  IFLA_INFO_KIND "wireguard\0" (14), pad
      `),
    );
    // what the link parser reads back
    const [msg] = parseMessages(m);
    expect(parseEvent(msg!)).toMatchObject({
      type: 'newlink',
      ifname: 'awg-work',
      mtu: 1380,
      kind: 'wireguard',
    });
  });
});

describe('isOwnEvent', () => {
  const base = { seq: 1, family: AF_INET, ifindex: 3 };
  const tags = { portids: [4242], addrProto: 99, routeProtocol: 167 };
  it('uses the portid when the kernel reports one', () => {
    expect(
      isOwnEvent(
        {
          ...base,
          type: 'newroute',
          portid: 4242,
          table: 254,
          protocol: 4,
          dst: '10.0.0.0/24',
          routeType: 1,
          scope: 0,
          nlFlags: 0x600,
        },
        tags,
      ),
    ).toBe(true);
    expect(
      isOwnEvent(
        {
          ...base,
          type: 'newroute',
          portid: 777,
          table: 254,
          protocol: 167,
          dst: '10.0.0.0/24',
          routeType: 1,
          scope: 0,
          nlFlags: 0x600,
        },
        tags,
      ),
    ).toBe(false);
  });
  it('falls back to IFA_PROTO / rtm_protocol for pid-0 events', () => {
    expect(
      isOwnEvent(
        { ...base, type: 'newaddr', portid: 0, prefixlen: 128, flags: 0, scope: 0, proto: 99 },
        tags,
      ),
    ).toBe(true);
    expect(
      isOwnEvent({ ...base, type: 'newaddr', portid: 0, prefixlen: 128, flags: 0, scope: 0 }, tags),
    ).toBe(false);
    expect(
      isOwnEvent(
        {
          ...base,
          type: 'delroute',
          portid: 0,
          table: 52000,
          protocol: 167,
          dst: '0.0.0.0/0',
          routeType: 1,
          scope: 0,
          nlFlags: 0,
        },
        tags,
      ),
    ).toBe(true);
  });
  it('never claims link events or resyncs', () => {
    expect(isOwnEvent({ ...base, type: 'newlink', portid: 4242, flags: 1, change: 1 }, tags)).toBe(
      false,
    );
    expect(isOwnEvent({ type: 'resync' }, tags)).toBe(false);
  });
});
