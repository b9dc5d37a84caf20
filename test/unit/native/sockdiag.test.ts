/**
 * sock_diag on bytes. The layouts are written out by hand from linux/inet_diag.h,
 * linux/sock_diag.h and linux/tcp.h (struct inet_diag_req_v2 56 bytes, struct inet_diag_msg
 * 72 bytes, tcp_info's tcpi_bytes_acked @120 and tcpi_bytes_received @128) with the test's
 * own encoder (test/helpers/netlink-bytes.ts), never with the module under test.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ALL_STATES,
  buildInetDiagDump,
  DESTROY_GROUPS,
  inetAddr,
  InetNameCache,
  parseInetDiag,
} from '../../../src/native/sockdiag.js';
import { parseMessages } from '../../../src/native/rtnl.js';
import { ip4, le32, le64, nla, nlmsg } from '../../helpers/netlink-bytes.js';

const SOCK_DIAG_BY_FAMILY = 20;

interface MsgSpec {
  family: 2 | 10;
  state: number;
  sport: number;
  dport: number;
  src: Buffer;
  dst: Buffer;
  uid: number;
  inode: number;
  cookie: [number, number];
  attrs?: Buffer[];
}

/** struct inet_diag_msg, then attributes */
function diagMsg(m: MsgSpec): Buffer {
  const b = Buffer.alloc(72);
  b[0] = m.family;
  b[1] = m.state;
  b.writeUInt16BE(m.sport, 4);
  b.writeUInt16BE(m.dport, 6);
  m.src.copy(b, 8);
  m.dst.copy(b, 24);
  b.writeUInt32LE(3, 40); // idiag_if
  b.writeUInt32LE(m.cookie[0], 44);
  b.writeUInt32LE(m.cookie[1], 48);
  b.writeUInt32LE(m.uid, 64);
  b.writeUInt32LE(m.inode, 68);
  return nlmsg(SOCK_DIAG_BY_FAMILY, 2, 7, 0, Buffer.concat([b, ...(m.attrs ?? [])]));
}

/** a tcp_info of 232 bytes with the two payload counts set */
function tcpInfo(acked: bigint, received: bigint, len = 232): Buffer {
  const b = Buffer.alloc(len);
  b[0] = 1; // tcpi_state
  if (len >= 136) {
    le64(acked).copy(b, 120);
    le64(received).copy(b, 128);
  }
  return b;
}

const one = (buf: Buffer, proto?: 'tcp' | 'udp') => parseInetDiag(parseMessages(buf)[0]!, proto);

describe('sock_diag request', () => {
  it('is nlmsghdr + inet_diag_req_v2 asking for tcp_info and the states given', () => {
    const b = buildInetDiagDump(6, 'tcp', 0x01020304, 99, { states: 0x2 });
    expect(b.length).toBe(16 + 56);
    expect(b.readUInt32LE(0)).toBe(72);
    expect(b.readUInt16LE(4)).toBe(SOCK_DIAG_BY_FAMILY);
    expect(b.readUInt16LE(6)).toBe(0x301); // NLM_F_REQUEST | NLM_F_DUMP
    expect(b.readUInt32LE(8)).toBe(0x01020304);
    expect(b.readUInt32LE(12)).toBe(99);
    expect([...b.subarray(16, 24)]).toEqual([10, 6, 0x02, 0, 2, 0, 0, 0]);
    expect(b.subarray(24).every((x) => x === 0)).toBe(true);
  });

  it('asks UDP for no extension and every state by default', () => {
    const b = buildInetDiagDump(4, 'udp', 1, 0, { info: false });
    expect([...b.subarray(16, 20)]).toEqual([2, 17, 0, 0]);
    expect(b.readUInt32LE(20)).toBe(ALL_STATES);
  });

  it('joins the four destroy groups', () => {
    expect(DESTROY_GROUPS).toBe(0b1111);
  });
});

describe('inet_diag_msg', () => {
  it('reads a TCP socket with tcp_info, its cgroup id and mark', () => {
    const s = one(
      diagMsg({
        family: 2,
        state: 1,
        sport: 5201,
        dport: 40000,
        src: ip4('10.200.1.1'),
        dst: ip4('10.200.1.2'),
        uid: 1000,
        inode: 123456,
        cookie: [0xdeadbeef, 0x12],
        attrs: [nla(2, tcpInfo(123456789012n, 42n)), nla(15, le32(0x10000)), nla(21, le64(4321n))],
      }),
      'tcp',
    );
    expect(s).toEqual({
      family: 4,
      proto: 'tcp',
      state: 1,
      src: '10.200.1.1',
      sport: 5201,
      dst: '10.200.1.2',
      dport: 40000,
      ifindex: 3,
      uid: 1000,
      inode: 123456,
      cookie: '00000012deadbeef',
      cgroupId: 4321,
      mark: 0x10000,
      bytesAcked: 123456789012,
      bytesReceived: 42,
    });
  });

  it('leaves the counts out when tcp_info is older than Linux 4.1 (shorter)', () => {
    const s = one(
      diagMsg({
        family: 2,
        state: 1,
        sport: 1,
        dport: 2,
        src: ip4('10.0.0.1'),
        dst: ip4('10.0.0.2'),
        uid: 0,
        inode: 1,
        cookie: [1, 0],
        attrs: [nla(2, tcpInfo(5n, 5n, 104))],
      }),
      'tcp',
    );
    expect(s?.bytesAcked).toBeUndefined();
    expect(s?.bytesReceived).toBeUndefined();
  });

  it('writes an IPv4-mapped IPv6 address as ::ffff:a.b.c.d and IPv6 canonically', () => {
    const mapped = Buffer.from([...Array<number>(10).fill(0), 0xff, 0xff, 127, 0, 0, 1]);
    const v6 = Buffer.from('fd000200000000000000000000000001', 'hex');
    const s = one(
      diagMsg({
        family: 10,
        state: 1,
        sport: 1,
        dport: 2,
        src: mapped,
        dst: v6,
        uid: 0,
        inode: 0,
        cookie: [0, 0],
      }),
      'udp',
    );
    expect(s?.family).toBe(6);
    expect(s?.src).toBe('::ffff:127.0.0.1');
    expect(s?.dst).toBe('fd00:200::1');
    expect(inetAddr(Buffer.from([1, 2, 3, 4]))).toBe('1.2.3.4');
  });

  it('takes the protocol of a destroy notification from INET_DIAG_PROTOCOL', () => {
    const msg = diagMsg({
      family: 2,
      state: 7,
      sport: 1,
      dport: 2,
      src: ip4('10.0.0.1'),
      dst: ip4('10.0.0.2'),
      uid: 0,
      inode: 0,
      cookie: [9, 0],
      attrs: [nla(10, Buffer.from([6])), nla(2, tcpInfo(100n, 200n))],
    });
    expect(one(msg)).toMatchObject({ proto: 'tcp', state: 7, bytesAcked: 100, bytesReceived: 200 });
    const udp = diagMsg({
      family: 2,
      state: 7,
      sport: 1,
      dport: 2,
      src: ip4('10.0.0.1'),
      dst: ip4('10.0.0.2'),
      uid: 0,
      inode: 0,
      cookie: [9, 0],
      attrs: [nla(10, Buffer.from([17]))],
    });
    expect(one(udp)?.proto).toBe('udp');
    // without a protocol from either side there is no socket to report
    const none = diagMsg({
      family: 2,
      state: 7,
      sport: 1,
      dport: 2,
      src: ip4('10.0.0.1'),
      dst: ip4('10.0.0.2'),
      uid: 0,
      inode: 0,
      cookie: [9, 0],
    });
    expect(one(none)).toBeUndefined();
    expect(one(none, 'udp')?.proto).toBe('udp');
  });

  it('ignores other message types, other families and short messages', () => {
    const base = {
      state: 1,
      sport: 1,
      dport: 2,
      src: ip4('10.0.0.1'),
      dst: ip4('10.0.0.2'),
      uid: 0,
      inode: 0,
      cookie: [0, 0] as [number, number],
    };
    const unix = diagMsg({ ...base, family: 2 });
    unix[16] = 1; // AF_UNIX
    expect(one(unix, 'tcp')).toBeUndefined();
    const other = diagMsg({ ...base, family: 2 });
    other.writeUInt16LE(3, 4); // NLMSG_DONE
    expect(one(other, 'tcp')).toBeUndefined();
    const short = nlmsg(SOCK_DIAG_BY_FAMILY, 0, 0, 0, Buffer.alloc(40));
    expect(one(short, 'tcp')).toBeUndefined();
  });

  it('stops at an attribute that claims more than the message holds', () => {
    const bad = Buffer.concat([
      nla(21, le64(7n)),
      Buffer.from([0xff, 0x00, 0x02, 0x00]), // len 255, type INET_DIAG_INFO
      Buffer.alloc(8),
    ]);
    const s = one(
      diagMsg({
        family: 2,
        state: 1,
        sport: 1,
        dport: 2,
        src: ip4('10.0.0.1'),
        dst: ip4('10.0.0.2'),
        uid: 0,
        inode: 5,
        cookie: [0, 0],
        attrs: [bad],
      }),
      'tcp',
    );
    expect(s?.cgroupId).toBe(7);
    expect(s?.bytesAcked).toBeUndefined();
  });

  it('shares the text of a socket seen in the last round (the cache)', () => {
    const names = new InetNameCache();
    const msg = diagMsg({
      family: 2,
      state: 1,
      sport: 1,
      dport: 2,
      src: ip4('10.0.0.1'),
      dst: ip4('10.0.0.2'),
      uid: 0,
      inode: 5,
      cookie: [77, 0],
    });
    const m = parseMessages(msg)[0]!;
    const a = parseInetDiag(m, 'tcp', names)!;
    names.round();
    const b = parseInetDiag(m, 'tcp', names)!;
    expect(b).toEqual(a);
    // another socket under the same cookie (ports differ) is formatted anew
    const other = Buffer.from(msg);
    other.writeUInt16BE(9, 16 + 4);
    other.writeUInt8(9, 16 + 8 + 3);
    const c = parseInetDiag(parseMessages(other)[0]!, 'tcp', names)!;
    expect([c.src, c.sport]).toEqual(['10.0.0.9', 9]);
    names.round();
    names.round();
    // two rounds unseen: forgotten, and parsed as new
    expect(parseInetDiag(m, 'tcp', names)).toEqual(a);
  });

  it('never throws and never reports more than the bytes say, on arbitrary input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (raw, asTcp) => {
        const b = Buffer.from(raw);
        // as the payload of a sock_diag message, and as a datagram of messages
        const msgs = [
          { type: SOCK_DIAG_BY_FAMILY, flags: 0, seq: 0, portid: 0, payload: b },
          ...parseMessages(b),
        ];
        for (const m of msgs) {
          const s = parseInetDiag(m, asTcp ? 'tcp' : undefined);
          if (!s) continue;
          expect(m.payload.length).toBeGreaterThanOrEqual(72);
          expect([4, 6]).toContain(s.family);
          expect(s.sport).toBeLessThan(65536);
          if (s.bytesAcked !== undefined) expect(s.bytesAcked).toBeGreaterThanOrEqual(0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('survives every truncation and byte flip of a full message', () => {
    const msg = diagMsg({
      family: 10,
      state: 1,
      sport: 443,
      dport: 50000,
      src: Buffer.from('fd000200000000000000000000000001', 'hex'),
      dst: Buffer.from('fd000200000000000000000000000002', 'hex'),
      uid: 0,
      inode: 9,
      cookie: [1, 2],
      attrs: [nla(2, tcpInfo(1n, 2n)), nla(21, le64(3n)), nla(10, Buffer.from([6]))],
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: msg.length }),
        fc.integer({ min: 0, max: msg.length - 1 }),
        fc.integer({ min: 0, max: 255 }),
        (cut, at, v) => {
          const b = Buffer.from(msg);
          b[at] = v;
          const payload = b.subarray(16, Math.max(16, cut));
          expect(() =>
            parseInetDiag({ type: SOCK_DIAG_BY_FAMILY, flags: 0, seq: 0, portid: 0, payload }),
          ).not.toThrow();
        },
      ),
      { numRuns: 3000 },
    );
  });
});
