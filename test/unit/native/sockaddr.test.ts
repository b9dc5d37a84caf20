/**
 * Address bytes (src/native/sockaddr.ts): numeric IPv4 / IPv6 text into network-order bytes,
 * and the sockaddr_in / sockaddr_in6 the batched sender and the native socket hand the kernel,
 * read back as written.
 */
import { describe, expect, it } from 'vitest';
import {
  SOCKADDR_IN,
  SOCKADDR_IN6,
  parseIPv4,
  parseIPv6,
  readSockaddr,
  writeSockaddr,
} from '../../../src/native/sockaddr.js';

describe('address parsing', () => {
  const v6 = (s: string) => {
    const b = new Uint8Array(16);
    return parseIPv6(s, b, 0) ? Buffer.from(b).toString('hex') : null;
  };
  it('parses v4 and v6 text forms', () => {
    const b = new Uint8Array(4);
    expect(parseIPv4('10.200.0.1', b, 0)).toBe(true);
    expect([...b]).toEqual([10, 200, 0, 1]);
    expect(parseIPv4('1.2.3', b, 0)).toBe(false);
    expect(parseIPv4('1.2.3.256', b, 0)).toBe(false);
    expect(v6('::1')).toBe('00000000000000000000000000000001');
    expect(v6('::')).toBe('0'.repeat(32));
    expect(v6('fe80::1:2')).toBe('fe800000000000000000000000010002');
    expect(v6('2001:db8:0:0:0:0:0:ff')).toBe('20010db80000000000000000000000ff');
    expect(v6('::ffff:1.2.3.4')).toBe('00000000000000000000ffff01020304');
    expect(v6('fe80::1%eth0')).toBe('fe800000000000000000000000000001');
    expect(v6('1::2::3')).toBeNull();
    expect(v6('1:2:3')).toBeNull();
    expect(v6('12345::')).toBeNull();
  });
});

describe('sockaddr bytes', () => {
  it('sockaddr_in: family, big-endian port, the address, zeros', () => {
    const b = Buffer.alloc(8 + SOCKADDR_IN, 0xee);
    expect(writeSockaddr(b, 8, 4, '192.0.2.7', 51820)).toBe(true);
    expect(b.subarray(8).toString('hex')).toBe('0200ca6cc0000207' + '00'.repeat(8));
    expect(b.subarray(0, 8).every((x) => x === 0xee)).toBe(true); // nothing before the offset
    expect(readSockaddr(b, 8)).toEqual({ family: 4, port: 51820, addressAt: 12 });
  });

  it('sockaddr_in6: family, port, zero flowinfo, the address, zero scope', () => {
    const b = Buffer.alloc(SOCKADDR_IN6, 0xee);
    expect(writeSockaddr(b, 0, 6, '2001:db8::1', 443)).toBe(true);
    expect(b.toString('hex')).toBe(
      '0a0001bb' + '00000000' + '20010db8000000000000000000000001' + '00000000',
    );
    expect(readSockaddr(b, 0)).toEqual({ family: 6, port: 443, addressAt: 8 });
  });

  it('an IPv4 peer on an IPv6 socket becomes v4-mapped; the other way round is refused', () => {
    const b = Buffer.alloc(SOCKADDR_IN6);
    expect(writeSockaddr(b, 0, 6, '10.0.0.1', 1)).toBe(true);
    expect(b.subarray(8, 24).toString('hex')).toBe('00000000000000000000ffff0a000001');
    expect(writeSockaddr(b, 0, 4, '::1', 1)).toBe(false);
    expect(writeSockaddr(b, 0, 4, 'example.org', 1)).toBe(false);
    expect(writeSockaddr(b, 0, 6, '1::2::3', 1)).toBe(false);
  });

  it('round trip: what is written reads back as the same address and port', () => {
    const cases: Array<[4 | 6, string, number, string]> = [
      [4, '127.0.0.1', 0, '7f000001'],
      [4, '255.255.255.255', 65535, 'ffffffff'],
      [6, 'fe80::1%eth0', 1, 'fe800000000000000000000000000001'],
      [6, '::ffff:1.2.3.4', 2, '00000000000000000000ffff01020304'],
    ];
    for (const [family, address, port, hex] of cases) {
      const b = Buffer.alloc(SOCKADDR_IN6);
      expect(writeSockaddr(b, 0, family, address, port)).toBe(true);
      const r = readSockaddr(b, 0);
      expect(r.family).toBe(family);
      expect(r.port).toBe(port);
      const len = family === 6 ? 16 : 4;
      expect(b.subarray(r.addressAt, r.addressAt + len).toString('hex')).toBe(hex);
    }
    expect(readSockaddr(Buffer.alloc(SOCKADDR_IN6), 0).family).toBe(0); // AF_UNSPEC
  });
});
