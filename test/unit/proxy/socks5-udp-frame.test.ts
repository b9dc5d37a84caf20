/**
 * The SOCKS5 UDP header (RFC 1928 §7) as we write and read it: strict about what comes from
 * the relay (fuzzed in test/fuzz/proxy.fuzz.ts, `proxy/socks5-udp-frame`).
 */
import { SocksClient } from 'socks';
import { describe, expect, it } from 'vitest';
import {
  buildUdpFrame,
  frameIsFrom,
  parseUdpFrame,
  udpHeaderLength,
  type UdpFrame,
} from '../../../src/proxy/socks5-udp-frame.js';

const data = Buffer.from('payload');

describe('SOCKS5 UDP frames', () => {
  it('writes what the socks package (and so RFC 1928 §7) writes, for IPv4, IPv6 and names', () => {
    for (const host of ['192.0.2.1', '2001:db8::1', 'example.com'])
      expect(buildUdpFrame({ host, port: 4433 }, data)).toEqual(
        SocksClient.createUDPFrame({ remoteHost: { host, port: 4433 }, data }),
      );
    expect(udpHeaderLength({ host: '192.0.2.1', port: 1 })).toBe(10);
    expect(udpHeaderLength({ host: '2001:db8::1', port: 1 })).toBe(22);
    expect(udpHeaderLength({ host: 'example.com', port: 1 })).toBe(18);
  });

  it('reads back what it writes', () => {
    for (const host of ['192.0.2.1', '2001:db8::1', 'example.com']) {
      const f = parseUdpFrame(buildUdpFrame({ host, port: 53 }, data)) as UdpFrame;
      expect(f).toMatchObject({ host, port: 53 });
      expect(f.data).toEqual(data);
    }
    // an empty payload is a datagram too
    expect(
      (parseUdpFrame(buildUdpFrame({ host: '192.0.2.1', port: 1 }, Buffer.alloc(0))) as UdpFrame)
        .data.length,
    ).toBe(0);
  });

  it('drops fragments (FRAG ≠ 0) and malformed headers', () => {
    const ok = buildUdpFrame({ host: '192.0.2.1', port: 53 }, data);
    const frag = Buffer.from(ok);
    frag[2] = 1;
    expect(parseUdpFrame(frag)).toBe('fragment');
    frag[2] = 0x81; // the end-of-sequence bit set: still a fragment
    expect(parseUdpFrame(frag)).toBe('fragment');
    const rsv = Buffer.from(ok);
    rsv[1] = 1;
    expect(parseUdpFrame(rsv)).toBe('malformed');
    const atyp = Buffer.from(ok);
    atyp[3] = 2;
    expect(parseUdpFrame(atyp)).toBe('malformed');
    for (let n = 0; n < 10; n++) expect(parseUdpFrame(ok.subarray(0, n))).toBe('malformed');
    expect(parseUdpFrame(Buffer.from([0, 0, 0, 4, ...Array(17).fill(0)]))).toBe('malformed');
    // a name of length 0, or longer than what follows
    expect(parseUdpFrame(Buffer.from([0, 0, 0, 3, 0, 0, 53]))).toBe('malformed');
    expect(parseUdpFrame(Buffer.from([0, 0, 0, 3, 9, 97, 98, 0, 53]))).toBe('malformed');
    // a fragment with a cut header is malformed
    expect(parseUdpFrame(Buffer.from([0, 0, 1, 1, 192]))).toBe('malformed');
  });

  it('a reply names the target only with the address type we sent, the same address and port', () => {
    const f = (host: string, port = 53) =>
      parseUdpFrame(SocksClient.createUDPFrame({ remoteHost: { host, port }, data })) as UdpFrame;
    const v4 = { host: '192.0.2.53', port: 53 };
    expect(frameIsFrom(f('192.0.2.53'), v4)).toBe(true);
    expect(frameIsFrom(f('192.0.2.53', 54), v4)).toBe(false);
    expect(frameIsFrom(f('192.0.2.54'), v4)).toBe(false);
    expect(frameIsFrom(f('::ffff:192.0.2.53'), v4)).toBe(false);
    expect(frameIsFrom(f('2001:db8::53'), v4)).toBe(false);
    const v6 = { host: 'fd00:200::72:2', port: 53 };
    expect(frameIsFrom(f('fd00:0200:0000:0000:0000:0000:0072:0002'), v6)).toBe(true);
    expect(frameIsFrom(f('fd00:200::72:3'), v6)).toBe(false);
    // a name in the reply: only for a name we sent (and never for an address)
    const name = parseUdpFrame(
      Buffer.concat([
        Buffer.from([0, 0, 0, 3, 10]),
        Buffer.from('192.0.2.53'),
        Buffer.from([0, 53]),
        data,
      ]),
    ) as UdpFrame;
    expect(name.atyp).toBe(3);
    expect(frameIsFrom(name, v4)).toBe(false);
    expect(frameIsFrom(f('DNS.example'), { host: 'dns.example', port: 53 })).toBe(true);
  });
});
