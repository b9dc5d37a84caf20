import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  GSO_TCPV4,
  GSO_TCPV6,
  type GroGroup,
  VNET_HDR_LEN,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  assembleGroup,
  completeChecksum,
  fold,
  planGro,
  pseudoSum,
  readVnetHdr,
  splitTcp,
  sumLE,
  tcpChecksumValid,
} from '../../../src/dataplane/tun/offload.js';

/** Reference checksum: big-endian 16-bit words, the RFC 1071 way. */
function refSum(b: Uint8Array, start: number, end: number, initial = 0): number {
  let s = initial;
  for (let i = start; i < end; i += 2) s += (b[i]! << 8) | (i + 1 < end ? b[i + 1]! : 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

interface Flow {
  v6: boolean;
  src: number;
  dst: number;
  sport: number;
  dport: number;
  ack: number;
  options: readonly number[];
}

const flowA: Flow = { v6: false, src: 1, dst: 2, sport: 40000, dport: 5201, ack: 77, options: [] };

/** A TCP packet with a valid IP header checksum; the TCP checksum valid too unless `csum` is given. */
function tcpPacket(f: Flow, seq: number, payload: Uint8Array, flags = 0x10, csum?: number): Buffer {
  const iph = f.v6 ? 40 : 20;
  const tcph = 20 + f.options.length;
  const p = Buffer.alloc(iph + tcph + payload.length);
  if (f.v6) {
    p[0] = 0x60;
    p.writeUInt16BE(tcph + payload.length, 4);
    p[6] = 6;
    p[7] = 64;
    p[23] = f.src;
    p[39] = f.dst;
    p[8] = 0xfd;
    p[24] = 0xfd;
  } else {
    p[0] = 0x45;
    p.writeUInt16BE(p.length, 2);
    p.writeUInt16BE(0x1234, 4);
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p.set([10, 0, 0, f.src], 12);
    p.set([10, 0, 0, f.dst], 16);
    p.writeUInt16BE(~refSum(p, 0, 20) & 0xffff, 10);
  }
  p.writeUInt16BE(f.sport, iph);
  p.writeUInt16BE(f.dport, iph + 2);
  p.writeUInt32BE(seq >>> 0, iph + 4);
  p.writeUInt32BE(f.ack, iph + 8);
  p[iph + 12] = (tcph / 4) << 4;
  p[iph + 13] = flags;
  p.writeUInt16BE(65535, iph + 14);
  p.set(f.options, iph + 20);
  p.set(payload, iph + tcph);
  const ps = pseudoSum(p, f.v6, 6, p.length - iph);
  p.writeUInt16BE(csum ?? ~fold(sumLE(p, iph, p.length, ps)) & 0xffff, iph + 16);
  return p;
}

function ipChecksumOk(p: Uint8Array): boolean {
  return p[0]! >> 4 === 6 || refSum(p, 0, 20) === 0xffff;
}

/** The kernel's view of a GSO packet: what splitTcp makes of it. */
function split(p: Uint8Array, gsoSize: number, v6: boolean): Buffer[] {
  const iph = v6 ? 40 : 20;
  const out = Buffer.alloc(p.length + Math.ceil(p.length / gsoSize) * 128);
  const segs: Buffer[] = [];
  const r = splitTcp(
    Buffer.from(p),
    {
      flags: 1,
      gsoType: v6 ? GSO_TCPV6 : GSO_TCPV4,
      hdrLen: 0,
      gsoSize,
      csumStart: iph,
      csumOffset: 16,
    },
    out,
    0,
    (s, e) => segs.push(Buffer.from(out.subarray(s, e))),
  );
  expect(r).toBeGreaterThan(0);
  return segs;
}

describe('checksums', () => {
  it('sumLE + fold equals the big-endian reference for any bytes and range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), fc.nat(), (b, x, y) => {
        const a = b.length ? x % (b.length + 1) : 0;
        const e = b.length ? a + (y % (b.length - a + 1)) : 0;
        expect(fold(sumLE(b, a, e))).toBe(refSum(b, a, e));
      }),
    );
  });

  it('sumLE is the same on views at any offset of a shared buffer, across buffers, with a carried sum', () => {
    // the word path (a range starting on an even address, read through a Uint32Array over the
    // whole buffer) and the byte path must agree wherever the view and the range begin
    const bufs = [0, 1, 2].map(() => new Uint8Array(4200));
    const swap16 = (v: number) => ((v & 0xff) << 8) | (v >> 8);
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4200, maxLength: 4200 }),
        fc.nat(2),
        fc.nat(4200),
        fc.nat(),
        fc.nat(),
        fc.nat(0xffff),
        (bytes, which, off, x, y, carry) => {
          const buf = bufs[which]!;
          buf.set(bytes);
          const b = buf.subarray(off, off + (x % (4200 - off + 1)));
          const a = y % (b.length + 1);
          const e = a + ((x >>> 13) % (b.length - a + 1));
          expect(fold(sumLE(b, a, e))).toBe(refSum(b, a, e));
          expect(fold(sumLE(b, a, e, carry))).toBe(refSum(b, a, e, swap16(carry)));
        },
      ),
    );
  });

  it('sumLE over a 1,420-byte packet at each of the 8 alignments equals the reference', () => {
    const buf = new Uint8Array(1500);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 2654435761) >>> 24;
    for (let off = 0; off < 8; off++) {
      const p = buf.subarray(off, off + 1420);
      for (const start of [0, 1, 2, 3, 20, 40])
        expect(fold(sumLE(p, start, p.length))).toBe(refSum(p, start, p.length));
    }
  });

  it('completeChecksum finishes a CHECKSUM_PARTIAL packet (pseudo-header sum in the field)', () => {
    const p = tcpPacket(flowA, 1, Buffer.from('hello world!'));
    expect(tcpChecksumValid(p, 20, false)).toBe(true);
    p.writeUInt16BE(fold(pseudoSum(p, false, 6, p.length - 20)), 36);
    expect(tcpChecksumValid(p, 20, false)).toBe(false);
    expect(completeChecksum(p, 20, 16)).toBe(true);
    expect(tcpChecksumValid(p, 20, false)).toBe(true);
    expect(completeChecksum(p, p.length, 16)).toBe(false);
  });
});

describe('splitTcp (reads of a GSO super-packet)', () => {
  it('segments carry the payload in order, valid checksums, sequence numbers and flags', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: 1, max: 9000 }),
        fc.integer({ min: 1, max: 1460 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.constantFrom([], [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]),
        (v6, len, mss, seq, options) => {
          const f = { ...flowA, v6, options };
          const payload = Buffer.from(Array.from({ length: len }, (_, i) => (i * 7) & 0xff));
          const big = tcpPacket(f, seq, payload, 0x10 | 0x08 | 0x01); // ACK PSH FIN
          const segs = split(big, mss, v6);
          const iph = v6 ? 40 : 20;
          const hl = iph + 20 + options.length;
          expect(segs.length).toBe(Math.ceil(len / mss));
          expect(Buffer.concat(segs.map((s) => s.subarray(hl)))).toEqual(payload);
          segs.forEach((s, i) => {
            expect(ipChecksumOk(s)).toBe(true);
            expect(tcpChecksumValid(s, iph, v6)).toBe(true);
            expect(s.readUInt32BE(iph + 4)).toBe((seq + i * mss) >>> 0);
            const last = i === segs.length - 1;
            expect(s[iph + 13]).toBe(last ? 0x19 : 0x10);
            if (v6) expect(s.readUInt16BE(4)).toBe(s.length - 40);
            else {
              expect(s.readUInt16BE(2)).toBe(s.length);
              expect(s.readUInt16BE(4)).toBe((0x1234 + i) & 0xffff);
            }
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses headers that do not describe the packet', () => {
    const big = tcpPacket(flowA, 1, Buffer.alloc(3000));
    const out = Buffer.alloc(10000);
    const h = {
      flags: 1,
      gsoType: GSO_TCPV4,
      hdrLen: 40,
      gsoSize: 1000,
      csumStart: 20,
      csumOffset: 16,
    };
    const none = () => {};
    expect(splitTcp(big, { ...h, gsoType: GSO_TCPV6 }, out, 0, none)).toBe(-1);
    expect(splitTcp(big, { ...h, csumStart: 24 }, out, 0, none)).toBe(-1);
    expect(splitTcp(big, { ...h, csumOffset: 6 }, out, 0, none)).toBe(-1);
    expect(splitTcp(big, { ...h, gsoSize: 0 }, out, 0, none)).toBe(-1);
    expect(splitTcp(big, { ...h, gsoType: 3 }, out, 0, none)).toBe(-1);
    expect(splitTcp(big.subarray(0, 30), h, out, 0, none)).toBe(-1);
    expect(splitTcp(big, { ...h, gsoSize: 10 }, Buffer.alloc(3100), 0, none)).toBe(-1); // no room
  });
});

/** GRO: groups of `packets`, each assembled, as the kernel receives them. */
function gro(packets: Buffer[]): Array<{ hdr: ReturnType<typeof readVnetHdr>; pkt: Buffer }> {
  const groups: GroGroup[] = [];
  const n = planGro(packets, groups);
  const out = Buffer.alloc(70000);
  const res = [];
  for (let i = 0; i < n; i++) {
    const len = assembleGroup(groups[i]!, out);
    res.push({ hdr: readVnetHdr(out, 0), pkt: Buffer.from(out.subarray(VNET_HDR_LEN, len)) });
  }
  return res;
}

describe('planGro + assembleGroup (writes)', () => {
  it('a segmented stream coalesces back into packets the kernel segments into the same bytes', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: 1, max: 40000 }),
        fc.integer({ min: 100, max: 1400 }),
        (v6, len, mss) => {
          const f = { ...flowA, v6 };
          const payload = Buffer.from(Array.from({ length: len }, (_, i) => (i * 13) & 0xff));
          const segs = split(tcpPacket(f, 1000, payload, 0x18), mss, v6);
          const groups = gro(segs);
          const iph = v6 ? 40 : 20;
          const back: Buffer[] = [];
          for (const { hdr, pkt } of groups) {
            if (hdr.gsoType === 0) {
              back.push(pkt);
              continue;
            }
            expect(hdr.flags).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
            expect(hdr.csumStart).toBe(iph);
            expect(hdr.gsoSize).toBe(mss);
            expect(ipChecksumOk(pkt)).toBe(true);
            // the field holds the pseudo-header sum: completing it gives a valid packet
            const c = Buffer.from(pkt);
            expect(completeChecksum(c, iph, 16)).toBe(true);
            expect(tcpChecksumValid(c, iph, v6)).toBe(true);
            back.push(...split(c, hdr.gsoSize, v6));
          }
          expect(back).toEqual(segs);
          expect(groups.length).toBe(Math.ceil(segs.length / 64));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('keeps flows apart and in order, and joins a flow only to its last group', () => {
    const b = { ...flowA, sport: 40001 };
    const pay = Buffer.alloc(1000, 1);
    const pk = [
      tcpPacket(flowA, 0, pay),
      tcpPacket(b, 0, pay),
      tcpPacket(flowA, 1000, pay),
      tcpPacket(b, 1000, pay),
      tcpPacket(flowA, 5000, pay), // a gap: new group for A
      tcpPacket(flowA, 2000, pay), // would fit the first A group, but only the last is extended
    ];
    const g = gro(pk);
    expect(g.map((x) => x.pkt.length)).toEqual([2040, 2040, 1040, 1040]);
    expect(g.map((x) => x.pkt.readUInt16BE(20))).toEqual([40000, 40001, 40000, 40000]);
  });

  it('coalesces authenticated segments without verifying their checksums again (the AEAD tag covers them)', () => {
    const pay = Buffer.alloc(500, 2);
    for (const c of [
      [tcpPacket(flowA, 0, pay), tcpPacket(flowA, 500, pay, 0x10, 0xbeef)],
      [tcpPacket(flowA, 0, pay, 0x10, 0xbeef), tcpPacket(flowA, 500, pay)],
    ]) {
      const g = gro(c);
      expect(g.length).toBe(1);
      expect(g[0]!.hdr.flags).toBe(VIRTIO_NET_HDR_F_NEEDS_CSUM);
      // what the kernel makes of it: the segments' bytes with a checksum computed over them
      const done = Buffer.from(g[0]!.pkt);
      expect(completeChecksum(done, 20, 16)).toBe(true);
      expect(tcpChecksumValid(done, 20, false)).toBe(true);
      expect(done.subarray(40)).toEqual(Buffer.concat([pay, pay]));
    }
  });

  it('does not coalesce PSH in the middle, other flags, a different ACK or options', () => {
    const pay = Buffer.alloc(500, 2);
    const cases: Buffer[][] = [
      [tcpPacket(flowA, 0, pay, 0x18), tcpPacket(flowA, 500, pay)],
      [tcpPacket(flowA, 0, pay), tcpPacket(flowA, 500, pay, 0x11)],
      [tcpPacket(flowA, 0, pay), tcpPacket({ ...flowA, ack: 78 }, 500, pay)],
      [tcpPacket(flowA, 0, pay), tcpPacket({ ...flowA, options: [1, 1, 1, 1] }, 500, pay)],
      [tcpPacket(flowA, 0, pay.subarray(0, 100)), tcpPacket(flowA, 100, pay)], // larger after smaller
    ];
    for (const c of cases) {
      const g = gro(c);
      expect(g.length).toBe(2);
      expect(g.every((x) => x.hdr.gsoType === 0 && x.hdr.flags === 0)).toBe(true);
      expect(g.map((x) => x.pkt)).toEqual(c);
    }
    // PSH on the last joins and ends the group
    const g = gro([
      tcpPacket(flowA, 0, pay),
      tcpPacket(flowA, 500, pay, 0x18),
      tcpPacket(flowA, 1000, pay),
    ]);
    expect(g.map((x) => x.pkt.length)).toEqual([1040, 540]);
    expect(g[0]!.pkt[33]).toBe(0x18);
  });

  it('keeps at most GRO_MAX_OPEN_FLOWS flows open: many interleaved flows cost linear work and lose nothing', () => {
    const pay = Buffer.alloc(200, 3);
    const flows = Array.from({ length: 40 }, (_, i) => ({ ...flowA, sport: 30000 + i }));
    const pk: Buffer[] = [];
    for (let r = 0; r < 3; r++) for (const f of flows) pk.push(tcpPacket(f, r * 200, pay));
    const g = gro(pk);
    // every packet is written exactly once, and no flow's bytes are reordered
    const back = g.flatMap(({ hdr, pkt }) =>
      hdr.gsoType === 0 ? [pkt] : split(pkt, hdr.gsoSize, false),
    );
    expect(back.length).toBe(pk.length);
    for (const f of flows) {
      const seqs = back
        .filter((p) => p.readUInt16BE(20) === f.sport)
        .map((p) => p.readUInt32BE(24));
      expect(seqs).toEqual([0, 200, 400]);
    }
  });

  it('passes non-TCP, fragments and IPv4 options through unchanged', () => {
    const udp = Buffer.from(tcpPacket(flowA, 0, Buffer.alloc(100)));
    udp[9] = 17;
    const frag = Buffer.from(tcpPacket(flowA, 0, Buffer.alloc(100)));
    frag[6] = 0x20;
    const g = gro([udp, udp, frag, frag, Buffer.from([0x45])]);
    expect(g.length).toBe(5);
    expect(g.every((x) => x.hdr.gsoType === 0)).toBe(true);
  });
});
