import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clampMss, innerLimit } from '../../../src/dataplane/tun/mss.js';
import { fold, pseudoSum, sumLE, tcpChecksumValid } from '../../../src/dataplane/tun/offload.js';

/** A TCP segment with a valid checksum: options bytes as given, then `payload` bytes. */
function segment(v6: boolean, flags: number, options: number[], payload = 0): Buffer {
  const iph = v6 ? 40 : 20;
  const tcph = 20 + options.length;
  const p = Buffer.alloc(iph + tcph + payload, 0x5a);
  p.fill(0, 0, iph + 20);
  if (v6) {
    p[0] = 0x60;
    p.writeUInt16BE(tcph + payload, 4);
    p[6] = 6;
    p[7] = 64;
    p[8] = 0xfd;
    p[23] = 1;
    p[24] = 0xfd;
    p[39] = 2;
  } else {
    p[0] = 0x45;
    p.writeUInt16BE(p.length, 2);
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p.set([10, 0, 0, 1], 12);
    p.set([10, 0, 0, 2], 16);
  }
  p.writeUInt16BE(40000, iph);
  p.writeUInt16BE(5201, iph + 2);
  p.writeUInt32BE(0x01020304, iph + 4);
  p[iph + 12] = (tcph / 4) << 4;
  p[iph + 13] = flags;
  p.writeUInt16BE(64240, iph + 14);
  p.set(options, iph + 20);
  const ps = pseudoSum(p, v6, 6, p.length - iph);
  p.writeUInt16BE(~fold(sumLE(p, iph, p.length, ps)) & 0xffff, iph + 16);
  return p;
}

const mssOpt = (v: number) => [2, 4, v >> 8, v & 0xff];
/** pads options with NOPs to a multiple of 4 (after them: a TCP header is whole words) */
const padded = (o: number[]) => [...o, ...Array<number>((4 - (o.length % 4)) % 4).fill(1)];
const mssOf = (p: Buffer, v6: boolean): number => {
  const t = v6 ? 40 : 20;
  for (let o = t + 20; o < t + (p[t + 12]! >> 4) * 4;) {
    if (p[o] === 1) o++;
    else if (p[o] === 2) return p.readUInt16BE(o + 2);
    else o += p[o + 1]!;
  }
  return -1;
};

describe('MSS clamping behind a transport prefix', () => {
  it('the inner limit keeps a padded transport datagram within the path', () => {
    // S4 = 23 at MTU 1420: 1500 − 48 − 32 − 23 = 1397 → 1392 on the 16-byte grid (IPv6 outer)
    expect(innerLimit(1420, 23, true)).toBe(1392);
    expect(innerLimit(1420, 23, false)).toBe(1408);
    // plain WireGuard at its MTU: never below what TCP already uses
    expect(innerLimit(1420, 0, true)).toBe(1420);
    expect(innerLimit(1440, 0, false)).toBe(1440);
    // a jumbo underlay is taken from the MTU (the WireGuard rule: MTU + 80)
    expect(innerLimit(8920, 23, true)).toBe((9000 - 48 - 32 - 23) & ~15);
    // content padding (3.x): its largest addition instead of the grid
    expect(innerLimit(1420, 23, false, 32)).toBe(1417 - 32);
    fc.assert(
      fc.property(
        fc.integer({ min: 576, max: 9000 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 200 }),
        (mtu, s4, v6, padMax) => {
          const lim = innerLimit(mtu, s4, v6, padMax);
          const path = Math.max(1500, mtu + 80);
          // the padded plaintext (to a multiple of 16, or + padMax; never past the MTU) + 32 +
          // S4 + the outer headers fit the path
          const padded = Math.min(padMax > 0 ? lim + padMax : Math.ceil(lim / 16) * 16, mtu);
          expect(lim).toBeLessThanOrEqual(mtu);
          expect(padded + 32 + s4 + (v6 ? 48 : 28)).toBeLessThanOrEqual(path);
        },
      ),
    );
  });

  it('lowers the MSS of a SYN and of a SYN-ACK, IPv4 and IPv6, keeping the checksum valid', () => {
    for (const v6 of [false, true])
      for (const flags of [0x02, 0x12]) {
        const p = segment(v6, flags, padded([...mssOpt(1380), 4, 2, 1, 3, 3, 7]));
        expect(clampMss(p, 0, p.length, 1392)).toBe(true);
        expect(mssOf(p, v6)).toBe(v6 ? 1332 : 1352);
        expect(tcpChecksumValid(p, v6 ? 40 : 20, v6)).toBe(true);
      }
  });

  it('handles an MSS at an odd offset (a NOP before it) and a packet at an offset in a buffer', () => {
    const p = segment(false, 0x02, padded([1, ...mssOpt(1460), 1, 1, 4, 2]), 3);
    const buf = Buffer.concat([Buffer.alloc(7, 0xee), p]);
    expect(clampMss(buf, 7, p.length, 1392)).toBe(true);
    const q = buf.subarray(7);
    expect(mssOf(q, false)).toBe(1352);
    expect(tcpChecksumValid(q, 20, false)).toBe(true);
    expect(buf.subarray(0, 7).every((b) => b === 0xee)).toBe(true);
  });

  it('leaves alone what it must not change', () => {
    const cases: Array<[string, Buffer, number]> = [
      ['not a SYN', segment(false, 0x10, padded(mssOpt(1380))), 1392],
      ['an MSS already small enough', segment(false, 0x02, padded(mssOpt(1300))), 1392],
      ['no MSS option', segment(false, 0x02, [1, 1, 4, 2]), 1392],
      ['options ending early', segment(false, 0x02, [0, 0, 0, 0, ...mssOpt(1380)]), 1392],
      ['an option running past the header', segment(false, 0x02, [3, 9, 1, 1]), 1392],
    ];
    const frag = segment(false, 0x02, padded(mssOpt(1380)));
    frag[7] = 8; // fragment offset 64: a later fragment
    cases.push(['a later fragment', frag, 1392]);
    const udp = segment(false, 0x02, padded(mssOpt(1380)));
    udp[9] = 17;
    cases.push(['UDP', udp, 1392]);
    const ext = segment(true, 0x02, padded(mssOpt(1380)));
    ext[6] = 0; // a hop-by-hop header first
    cases.push(['IPv6 extension headers', ext, 1392]);
    cases.push([
      'a truncated packet',
      segment(false, 0x02, padded(mssOpt(1380))).subarray(0, 30),
      1392,
    ]);
    for (const [what, p, limit] of cases) {
      const before = Buffer.from(p);
      expect(clampMss(p, 0, p.length, limit), what).toBe(false);
      expect(p.equals(before), what).toBe(true);
    }
  });

  it('any option layout: the MSS becomes min(MSS, limit − headers) and the checksum stays valid', () => {
    const other = fc.oneof(
      fc.constant([1]),
      fc.constant([4, 2]),
      fc.integer({ min: 0, max: 15 }).map((n) => [3, 3, n]),
      fc
        .tuple(fc.nat(0xffffffff), fc.nat(0xffffffff))
        .map(([a, b]) => [
          8,
          10,
          ...[a, b].flatMap((x) => [x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255]),
        ]),
    );
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(other, { maxLength: 4 }),
        fc.array(other, { maxLength: 3 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 100, max: 9000 }),
        fc.nat(40),
        (v6, before, after, mss, limit, payload) => {
          const opts = padded([...before.flat(), ...mssOpt(mss), ...after.flat()]);
          fc.pre(opts.length <= 40);
          const p = segment(v6, 0x02, opts, payload);
          const max = limit - (v6 ? 60 : 40);
          const changed = clampMss(p, 0, p.length, limit);
          expect(changed).toBe(max > 0 && mss > max);
          expect(mssOf(p, v6)).toBe(changed ? max : mss);
          expect(tcpChecksumValid(p, v6 ? 40 : 20, v6)).toBe(true);
        },
      ),
    );
  });
});
