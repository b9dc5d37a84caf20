import os from 'node:os';
import { AwgError } from '../../../src/errors.js';
import { describe, expect, it } from 'vitest';
import {
  NFT_MSG_DELSETELEM,
  NFT_MSG_NEWSETELEM,
  NFT_SET_ELEM_INTERVAL_END,
  addrKey,
  buildSetElemBatch,
  cidrElements,
  cgroupIdKey,
  intervalElements,
} from '../../../src/native/nftset.js';
import ipaddr from '../../../src/util/ipaddr.js';
import { parseMessages } from '../../../src/native/rtnl.js';
import { be16, be32, be64, ip4, nest, nla, nlmsg } from '../../helpers/netlink-bytes.js';

const str = (s: string): Buffer => Buffer.from(`${s}\0`);

describe('buildSetElemBatch', () => {
  it('encodes BEGIN, one NEWSETELEM with key, timeout and expiration, END', () => {
    const b = buildSetElemBatch(
      NFT_MSG_NEWSETELEM,
      'inet',
      'awg',
      'l4_web',
      [{ key: ip4('203.0.113.7'), timeoutMs: 30_000 }, { key: ip4('203.0.113.8') }],
      100,
      7,
    );
    const begin = nlmsg(0x10, 1, 100, 7, Buffer.concat([Buffer.from([0, 0]), be16(10)]));
    const elem = (key: Buffer, ...rest: Buffer[]): Buffer => nest(1, nest(1, nla(1, key)), ...rest);
    const body = Buffer.concat([
      Buffer.from([1, 0, 0, 0]),
      nla(1, str('awg')),
      nla(2, str('l4_web')),
      nest(
        3,
        elem(ip4('203.0.113.7'), nla(4, be64(30_000n)), nla(5, be64(30_000n))),
        elem(ip4('203.0.113.8')),
      ),
    ]);
    // NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, never NLM_F_EXCL
    const add = nlmsg((10 << 8) | 12, 0x1 | 0x4 | 0x400, 101, 7, body);
    const end = nlmsg(0x11, 1, 102, 7, Buffer.concat([Buffer.from([0, 0]), be16(10)]));
    expect(Buffer.concat(b.msgs).toString('hex')).toBe(
      Buffer.concat([begin, add, end]).toString('hex'),
    );
    expect(b.acked).toEqual([101]);
  });

  it('a delta: DELSETELEM (no CREATE), then NEWSETELEM (CREATE), one batch with both acknowledged', () => {
    const b = buildSetElemBatch(
      NFT_MSG_DELSETELEM,
      'inet',
      'awg',
      'd4_r',
      [{ key: ip4('192.0.2.0') }],
      200,
      7,
      false,
      { cmd: NFT_MSG_NEWSETELEM, elements: [{ key: ip4('198.51.100.0') }] },
    );
    const types = b.msgs.map((m) => [m.readUInt16LE(4), m.readUInt16LE(6), m.readUInt32LE(8)]);
    expect(types).toEqual([
      [0x10, 1, 200],
      [(10 << 8) | 14, 0x1 | 0x4, 201],
      [(10 << 8) | 12, 0x1 | 0x4 | 0x400, 202],
      [0x11, 1, 203],
    ]);
    expect(b.acked).toEqual([201, 202]);
  });

  it('splits a long element list over messages whose attributes fit 16 bits', () => {
    const els = Array.from({ length: 10_000 }, (_, i) => ({
      key: Buffer.from([10, 0, i >> 8, i & 255]),
      timeoutMs: 1000,
    }));
    const b = buildSetElemBatch(NFT_MSG_NEWSETELEM, 'inet', 't', 's', els, 1);
    expect(b.msgs.length).toBeGreaterThan(3);
    expect(b.acked.length).toBe(b.msgs.length - 2);
    let count = 0;
    for (const m of parseMessages(Buffer.concat(b.msgs.slice(1, -1)))) {
      // nfgenmsg, table "t", set "s" (8 bytes each), then the elements nest: its length field must not have wrapped
      const list = m.payload.subarray(4 + 8 + 8);
      expect(list.readUInt16LE(2)).toBe(3 | 0x8000);
      expect(list.readUInt16LE(0)).toBe(list.length);
      // each element of a v4 key with timeout + expiration takes 40 bytes (4 + key 12 + timeout 12 + expiration 12)
      count += (list.length - 4) / 40;
    }
    expect(count).toBe(10_000);
  });

  it('deletes carry keys only and no NLM_F_CREATE', () => {
    const b = buildSetElemBatch(
      NFT_MSG_DELSETELEM,
      'ip6',
      't',
      's',
      [{ key: addrKey('2001:db8::1') }],
      5,
    );
    const [m] = parseMessages(b.msgs[1]!);
    expect(m!.type).toBe((10 << 8) | 14);
    expect(m!.flags).toBe(0x1 | 0x4);
    expect(m!.payload[0]).toBe(10);
  });
});

describe('cidrElements', () => {
  const show = (cidrs: string[]): string[] =>
    cidrElements(cidrs).map(
      (e) =>
        (e.flags === NFT_SET_ELEM_INTERVAL_END ? 'end ' : '') +
        (e.key.length === 4 ? [...e.key].join('.') : e.key.toString('hex')),
    );
  it('gives start and first-after-end of each prefix', () => {
    expect(show(['10.1.0.0/16', '192.0.2.5/32', '10.0.0.255/24'])).toEqual([
      '10.1.0.0',
      'end 10.2.0.0',
      '192.0.2.5',
      'end 192.0.2.6',
      '10.0.0.0',
      'end 10.0.1.0',
    ]);
  });
  it('has no end element for a prefix reaching the last address', () => {
    expect(show(['255.255.255.0/24', '0.0.0.0/0'])).toEqual(['255.255.255.0', '0.0.0.0']);
    expect(show(['ffff::/16'])).toEqual(['ffff0000000000000000000000000000']);
    expect(show(['2001:db8::/127'])).toEqual([
      '20010db8000000000000000000000000',
      'end 20010db8000000000000000000000002',
    ]);
  });
  it('keeps a timeout on both ends and rejects what is not a CIDR', () => {
    expect(cidrElements(['10.0.0.0/8'], 5000).map((e) => e.timeoutMs)).toEqual([5000, 5000]);
    expect(() => cidrElements(['10.0.0.0'])).toThrow(/not a CIDR/);
    expect(() => addrKey('nope')).toThrow(/not an IP address/);
  });
});

it('be32 flags are network order', () => {
  const b = buildSetElemBatch(
    NFT_MSG_NEWSETELEM,
    'inet',
    't',
    's',
    [{ key: ip4('10.0.0.0'), flags: NFT_SET_ELEM_INTERVAL_END }],
    1,
  );
  expect(b.msgs[1]!.includes(nla(3, be32(1)))).toBe(true);
});

describe('set replace and cgroupsv2 keys', () => {
  it('replace: BEGIN, a DELSETELEM without elements (flush), the NEWSETELEM, END', () => {
    const key = cgroupIdKey(189531n);
    const b = buildSetElemBatch(NFT_MSG_NEWSETELEM, 'inet', 'awg', 'w_web', [{ key }], 10, 3, true);
    const begin = nlmsg(0x10, 1, 10, 3, Buffer.concat([Buffer.from([0, 0]), be16(10)]));
    const head = Buffer.concat([
      Buffer.from([1, 0, 0, 0]),
      nla(1, str('awg')),
      nla(2, str('w_web')),
    ]);
    // NLM_F_REQUEST | NLM_F_ACK, no element list: the kernel flushes the set
    const flush = nlmsg((10 << 8) | NFT_MSG_DELSETELEM, 0x1 | 0x4, 11, 3, head);
    const add = nlmsg(
      (10 << 8) | 12,
      0x1 | 0x4 | 0x400,
      12,
      3,
      Buffer.concat([head, nest(3, nest(1, nest(1, nla(1, key))))]),
    );
    const end = nlmsg(0x11, 1, 13, 3, Buffer.concat([Buffer.from([0, 0]), be16(10)]));
    expect(Buffer.concat(b.msgs).toString('hex')).toBe(
      Buffer.concat([begin, flush, add, end]).toString('hex'),
    );
    expect(b.acked).toEqual([11, 12]);
    // an empty replace is a flush alone
    const empty = buildSetElemBatch(NFT_MSG_NEWSETELEM, 'inet', 'awg', 'w_web', [], 10, 3, true);
    expect(empty.msgs.length).toBe(3);
    expect(empty.acked).toEqual([11]);
  });
  it('a cgroup id key is the 8-byte id in host byte order', () => {
    const k = cgroupIdKey(0x0102030405060708n);
    expect(k.length).toBe(8);
    const want = Buffer.alloc(8);
    if (os.endianness() === 'LE') want.writeBigUInt64LE(0x0102030405060708n);
    else want.writeBigUInt64BE(0x0102030405060708n);
    expect(k.toString('hex')).toBe(want.toString('hex'));
    expect(cgroupIdKey(189531).toString('hex')).toBe(cgroupIdKey(189531n).toString('hex'));
  });
});

describe('intervalElements (static sets: addresses, prefixes, ranges)', () => {
  const keys = (els: string[]) =>
    intervalElements(els).map((e) => `${e.key.toString('hex')}${e.flags ? ' end' : ''}`);

  it('an address, a prefix (host bits cleared) and a range: start, and the address after flagged end', () => {
    expect(keys(['192.0.2.7', '198.51.100.9/24', '203.0.113.5-203.0.113.9'])).toEqual([
      'c0000207',
      'c0000208 end',
      'c6336400',
      'c6336500 end',
      'cb007105',
      'cb00710a end',
    ]);
    expect(keys(['0.0.0.0/0'])).toEqual(['00000000']);
    expect(keys(['255.255.255.0-255.255.255.255'])).toEqual(['ffffff00']);
    expect(keys(['2001:db8::/32'])).toEqual([
      '20010db8000000000000000000000000',
      '20010db9000000000000000000000000 end',
    ]);
    expect(keys(['ffff::/16'])).toEqual(['ffff0000000000000000000000000000']);
  });

  it('reads every IPv6 text form as ipaddr does', () => {
    for (const a of [
      '::',
      '::1',
      '1::',
      '2001:db8::5',
      '2001:DB8:0:0:0:0:0:1',
      '1:2:3:4:5:6:7::',
      '::2:3:4:5:6:7:8',
      '::ffff:192.0.2.1',
    ])
      expect(intervalElements([a])[0]!.key).toEqual(Buffer.from(ipaddr.parse(a).toByteArray()));
  });

  it('rejects what is not an element', () => {
    for (const bad of [
      '1.2.3',
      '1.2.3.256',
      '10.0.0.9-10.0.0.1',
      '10.0.0.0/33',
      '1:2:3:4:5:6:7:8:9',
      '::1::',
      'g::1',
      '1:2:3:4:5:6:7',
      '10.0.0.0/x',
    ])
      expect(() => intervalElements([bad]), bad).toThrow(AwgError);
  });
});
