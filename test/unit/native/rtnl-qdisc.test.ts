import { describe, expect, it } from 'vitest';
import {
  buildGetQdiscDump,
  parseLinkName,
  parseQdiscMsg,
  qdiscRow,
  qdiscRows,
  RTM_GETQDISC,
  RTM_NEWQDISC,
  tcClassid,
  type QdiscMsg,
} from '../../../src/native/rtnl-qdisc.js';
import { parseMessages, RTM_NEWLINK, RTM_NEWROUTE } from '../../../src/native/rtnl.js';
import { parseQdiscJson } from '../../../src/resources/shaper/parse.js';

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
const u32s = (...n: number[]) => {
  const b = Buffer.alloc(4 * n.length);
  n.forEach((v, i) => b.writeUInt32LE(v >>> 0, 4 * i));
  return b;
};
function msg(type: number, header: Buffer, attrs: Buffer[]): Buffer {
  const body = Buffer.concat([header, ...attrs]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(type, 4);
  return Buffer.concat([h, body]);
}
/** struct tcmsg */
function tcmsg(ifindex: number, handle: number, parent: number, info = 1): Buffer {
  const b = Buffer.alloc(20);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(handle >>> 0, 8);
  b.writeUInt32LE(parent >>> 0, 12);
  b.writeUInt32LE(info, 16);
  return b;
}
const ROOT = 0xffffffff;
const INGRESS = 0xfffffff1;
/** RTM_NEWQDISC with its kind and options (and a TCA_STATS2-like attribute tc ignores here) */
const qdisc = (ifindex: number, handle: number, parent: number, kind: string, opts?: Buffer) =>
  msg(RTM_NEWQDISC, tcmsg(ifindex, handle, parent), [
    rta(1, str(kind)),
    ...(opts ? [rta(2, opts)] : []),
    rta(7, Buffer.alloc(12)),
  ]);
/** TCA_OPTIONS of an HTB: TCA_HTB_INIT's struct tc_htb_glob, TCA_HTB_DIRECT_QLEN */
const htbOpts = (defcls: number) =>
  Buffer.concat([rta(2, u32s(3, 10, defcls, 0, 0)), rta(4, u32s(1000))]);
const link = (ifindex: number, name: string) => {
  const h = Buffer.alloc(16);
  h.writeInt32LE(ifindex, 4);
  return msg(RTM_NEWLINK, h, [rta(3, str(name)), rta(4, u32s(1500))]);
};

describe('qdiscs as tc -j qdisc show prints them', () => {
  it('the dump request: RTM_GETQDISC, NLM_F_REQUEST|NLM_F_DUMP, a zeroed tcmsg (AF_UNSPEC, no TCA_DUMP_INVISIBLE)', () => {
    const b = buildGetQdiscDump(7, 99);
    expect(b.length).toBe(36);
    expect(b.readUInt32LE(0)).toBe(36);
    expect(b.readUInt16LE(4)).toBe(RTM_GETQDISC);
    expect(b.readUInt16LE(6)).toBe(0x301);
    expect(b.readUInt32LE(8)).toBe(7);
    expect(b.readUInt32LE(12)).toBe(99);
    expect(b.subarray(16).equals(Buffer.alloc(20))).toBe(true);
  });

  it('ids as print_tc_classid writes them: major only, major:minor, :minor, root, none; lower-case hex', () => {
    expect(
      [0x10000, 0x10011, 0xffff0000, INGRESS, 0x1, 0xabcd00ef, ROOT, 0].map(tcClassid),
    ).toEqual(['1:', '1:11', 'ffff:', 'ffff:fff1', ':1', 'abcd:ef', 'root', 'none']);
  });

  it('the entries parseQdiscJson makes of what tc 6.1 printed for the same qdiscs', () => {
    // captured: `tc -j qdisc show` in a namespace (lo; a veth with an HTB, a bfifo leaf and a
    // clsact, its peer with an ingress; a TUN's HTB with default 0x2; an ifb's HTB with
    // default 0; a multi-queue TUN's mq and a child; a pfifo with a handle of its own)
    const tc = `[{"kind":"noqueue","handle":"0:","dev":"lo","root":true,"refcnt":2,"options":{}},
      {"kind":"noqueue","handle":"0:","dev":"v0p","root":true,"refcnt":2,"options":{}},
      {"kind":"ingress","handle":"ffff:","dev":"v0p","parent":"ffff:fff1","options":{}},
      {"kind":"htb","handle":"1:","dev":"v0","root":true,"refcnt":3,"options":{"r2q":10,"default":"0x11","direct_packets_stat":0,"direct_qlen":1000}},
      {"kind":"bfifo","handle":"11:","dev":"v0","parent":"1:11","options":{"limit":30000}},
      {"kind":"clsact","handle":"ffff:","dev":"v0","parent":"ffff:fff1","options":{}},
      {"kind":"htb","handle":"1:","dev":"awg-t0","root":true,"refcnt":2,"options":{"r2q":10,"default":"0x2","direct_packets_stat":0,"direct_qlen":500}},
      {"kind":"htb","handle":"1:","dev":"awgq-x","root":true,"refcnt":2,"options":{"r2q":10,"default":"0","direct_packets_stat":0,"direct_qlen":32}},
      {"kind":"mq","handle":"0:","dev":"awg-m","root":true,"options":{}},
      {"kind":"pfifo_fast","handle":"0:","dev":"awg-m","parent":":1","options":{"bands":3,"priomap":[1,2,2,2,1,2,0,0,1,1,1,1,1,1,1,1],"multiqueue":false}},
      {"kind":"pfifo","handle":"802d:","dev":"v2","root":true,"refcnt":3,"options":{"limit":77}}]`;
    const names = new Map(
      parseMessages(
        Buffer.concat(
          [
            [1, 'lo'],
            [2, 'v0p'],
            [3, 'v0'],
            [4, 'awg-t0'],
            [5, 'awgq-x'],
            [6, 'awg-m'],
            [7, 'v2'],
          ].map(([i, n]) => link(i as number, n as string)),
        ),
      ).map((m) => parseLinkName(m)!),
    );
    const buf = Buffer.concat([
      qdisc(1, 0, ROOT, 'noqueue'),
      qdisc(2, 0, ROOT, 'noqueue'),
      qdisc(2, 0xffff0000, INGRESS, 'ingress'),
      qdisc(3, 0x10000, ROOT, 'htb', htbOpts(0x11)),
      qdisc(3, 0x110000, 0x10011, 'bfifo', u32s(30000)),
      qdisc(3, 0xffff0000, INGRESS, 'clsact'),
      qdisc(4, 0x10000, ROOT, 'htb', htbOpts(2)),
      qdisc(5, 0x10000, ROOT, 'htb', htbOpts(0)),
      qdisc(6, 0, ROOT, 'mq'),
      qdisc(6, 0, 1, 'pfifo_fast', Buffer.from([3, ...Array(16).fill(1), 0, 0, 0])),
      qdisc(7, 0x802d0000, ROOT, 'pfifo', u32s(77)),
    ]);
    const msgs = parseMessages(buf).map(parseQdiscMsg);
    expect(msgs.every((m) => m !== undefined)).toBe(true);
    expect(qdiscRows(msgs as QdiscMsg[], names)).toEqual(parseQdiscJson(tc));
  });

  it('a limit where tc prints one: the fifos’ and sfq’s and netem’s structs, the AQMs’ attributes; none for others', () => {
    const row = (kind: string, opts: Buffer) =>
      qdiscRow(parseQdiscMsg(parseMessages(qdisc(1, 0x10000, ROOT, kind, opts))[0]!)!, () => 'x');
    expect(row('pfifo_head_drop', u32s(9)).limit).toBe(9);
    expect(row('sfq', u32s(1514, 0, 127, 1024, 128)).limit).toBe(127);
    expect(row('netem', u32s(0, 1000, 0, 0, 0, 0)).limit).toBe(1000);
    expect(row('fq_codel', Buffer.concat([rta(1, u32s(4999)), rta(2, u32s(10240))])).limit).toBe(
      10240,
    );
    expect(row('fq', Buffer.concat([rta(1, u32s(10000)), rta(2, u32s(100))])).limit).toBe(10000);
    expect(row('tbf', rta(1, u32s(...Array(9).fill(7)))).limit).toBeUndefined();
    // too short a struct: none, as tc prints none
    expect(row('bfifo', Buffer.from([1, 2])).limit).toBeUndefined();
    // an HTB without TCA_HTB_INIT prints no default
    expect(row('htb', rta(4, u32s(1000))).default).toBeUndefined();
  });

  it('a handle’s minor is not printed, an unknown device is if<N>, a parent of 0 is none at all', () => {
    const q: QdiscMsg = { ifindex: 42, handle: 0x20003, parent: 0, kind: 'noqueue' };
    expect(qdiscRow(q, () => undefined)).toEqual({
      kind: 'noqueue',
      handle: '2:',
      dev: 'if42',
      root: false,
    });
  });

  it('messages of another type, and a qdisc without TCA_KIND, are not qdiscs (tc skips them)', () => {
    const noKind = msg(RTM_NEWQDISC, tcmsg(1, 0, ROOT), [rta(2, u32s(1))]);
    const other = msg(RTM_NEWROUTE, tcmsg(1, 0, ROOT), [rta(1, str('htb'))]);
    const short = msg(RTM_NEWQDISC, Buffer.alloc(8), []);
    expect(parseMessages(Buffer.concat([noKind, other, short])).map(parseQdiscMsg)).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect(parseLinkName(parseMessages(qdisc(1, 0, ROOT, 'x'))[0]!)).toBeUndefined();
  });

  it('options are copied out of the receive buffer', () => {
    const b = qdisc(3, 0x110000, 0x10011, 'bfifo', u32s(30000));
    const q = parseQdiscMsg(parseMessages(b)[0]!)!;
    b.fill(0);
    expect(qdiscRow(q, () => 'v0').limit).toBe(30000);
  });
});
