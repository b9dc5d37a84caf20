/**
 * DIOCNATLOOK (src/native/darwin/pfnatlook.ts): struct pfioc_natlook byte for byte. Facts
 * (Apple's bsd/net/pfvar.h with its extensions): pf_addr saddr @0, daddr @16, rsaddr @32,
 * rdaddr @48 (16 bytes each); union pf_state_xport {u16 port; u16 call_id; u32 spi} sxport
 * @64, dxport @68, rsxport @72, rdxport @76; sa_family_t (u8) af @80; u8 proto @81,
 * proto_variant @82, direction @83 → 84 bytes; DIOCNATLOOK = _IOWR('D', 23, 84) =
 * 0xc0544417; PF_OUT = 2; IPPROTO_TCP 6; AF_INET 2, AF_INET6 30.
 */
import { describe, expect, it } from 'vitest';
import {
  DIOCNATLOOK,
  PFIOC_NATLOOK_SIZE,
  PF_IN,
  PF_OUT,
  decodeNatlook,
  decodeNatlookSource,
  natlookRequest,
  udpNatlookRequests,
} from '../../../src/native/darwin/pfnatlook.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('struct pfioc_natlook', () => {
  it('constants', () => {
    expect([DIOCNATLOOK, PFIOC_NATLOOK_SIZE, PF_OUT]).toEqual([0xc0544417, 84, 2]);
  });
  it('IPv4: the client in saddr/sxport, our listener in daddr/dxport, TCP, PF_OUT', () => {
    const b = natlookRequest(
      { address: '127.0.0.1', port: 1081 },
      { address: '10.0.0.2', port: 50000 },
      4,
    );
    expect(hex(b)).toBe(
      '0a000002' +
        '00'.repeat(12) + // saddr
        '7f000001' +
        '00'.repeat(12) + // daddr
        '00'.repeat(32) + // rsaddr, rdaddr (the kernel's)
        'c3500000' +
        '04390000' +
        '00000000' +
        '00000000' + // sxport 50000, dxport 1081, rsxport, rdxport
        '02' +
        '06' +
        '00' +
        '02', // AF_INET, TCP, proto_variant, PF_OUT
    );
    // the kernel's answer: rdaddr 93.184.216.34, rdxport 443
    b.set([93, 184, 216, 34], 48);
    b.set([0x01, 0xbb], 76);
    expect(decodeNatlook(b)).toEqual({ address: '93.184.216.34', port: 443 });
  });
  it('a dual-stack listener reports IPv4 as ::ffff:a.b.c.d: looked up as IPv4', () => {
    const mapped = natlookRequest(
      { address: '::ffff:127.0.0.1', port: 1081 },
      { address: '::FFFF:10.0.0.2', port: 50000 },
      4,
    );
    expect(hex(mapped)).toBe(
      hex(
        natlookRequest(
          { address: '127.0.0.1', port: 1081 },
          { address: '10.0.0.2', port: 50000 },
          4,
        ),
      ),
    );
  });
  it('IPv6: 16-byte addresses, AF_INET6 30', () => {
    const b = natlookRequest(
      { address: '::1', port: 1081 },
      { address: 'fd00::2', port: 40000 },
      6,
    );
    expect(hex(b.subarray(0, 32))).toBe(
      'fd000000000000000000000000000002' + '00000000000000000000000000000001',
    );
    expect(hex(b.subarray(64))).toBe('9c400000' + '04390000' + '00'.repeat(8) + '1e060002');
    b.set(Buffer.from('20010db8000000000000000000000002', 'hex'), 48);
    b.set([0x00, 0x50], 76);
    expect(decodeNatlook(b)).toEqual({ address: '2001:db8::2', port: 80 });
  });
  it('families must agree', () => {
    expect(() =>
      natlookRequest({ address: '127.0.0.1', port: 1 }, { address: '10.0.0.2', port: 2 }, 6),
    ).toThrow(/not IPv6/);
    expect(() =>
      natlookRequest({ address: '::1', port: 1 }, { address: '10.0.0.2', port: 2 }, 4),
    ).toThrow(/families/);
    expect(() => decodeNatlook(new Uint8Array(83))).toThrow(/short/);
  });
  it("UDP: the rdr state from the flow's loopback port (PF_OUT, rdaddr), then the nat state from the destination (PF_IN, rsaddr)", () => {
    expect(PF_IN).toBe(1);
    const [first, second] = udpNatlookRequests(
      { address: '127.0.0.1', port: 50000 },
      { address: '127.0.0.1', port: 47321 },
      4,
    );
    expect(hex(first)).toBe(
      '7f000001' +
        '00'.repeat(12) + // saddr: the flow's loopback port
        '7f000001' +
        '00'.repeat(12) + // daddr: the relay
        '00'.repeat(32) +
        'c3500000' +
        'b8d90000' +
        '00'.repeat(8) +
        '02' +
        '11' + // UDP 17
        '00' +
        '02', // PF_OUT
    );
    const next = second({ address: '93.184.216.34', port: 443 });
    expect(hex(next.subarray(0, 32))).toBe(
      '7f000001' + '00'.repeat(12) + '5db8d822' + '00'.repeat(12),
    );
    expect(hex(next.subarray(64))).toBe('c3500000' + '01bb0000' + '00'.repeat(8) + '02110001');
    // the kernel's answer to the PF_IN lookup: rsaddr 192.168.1.175, rsxport 60001
    next.set([192, 168, 1, 175], 32);
    next.set([0xea, 0x61], 72);
    expect(decodeNatlookSource(next)).toEqual({ address: '192.168.1.175', port: 60001 });
    const [v6] = udpNatlookRequests({ address: '::1', port: 1 }, { address: '::1', port: 2 }, 6);
    expect(hex(v6.subarray(80))).toBe('1e110002');
    expect(() => decodeNatlookSource(new Uint8Array(83))).toThrow(/short/);
  });
});
