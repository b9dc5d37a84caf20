import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clampMss, innerLimit, pathPlaintext } from '../../../src/dataplane/tun/mss.js';
import { fold, pseudoSum, sumLE, tcpChecksumValid } from '../../../src/dataplane/tun/offload.js';
import { range } from '../../../src/dataplane/awg/range.js';
import type { AwgParams } from '../../../src/dataplane/awg/params.js';
import { ipv4, makePair } from './harness.js';

/**
 * A TCP segment with a valid checksum: options bytes as given, then `payload` bytes; IPv4
 * from 10.0.0.1 to 10.0.0.2 unless `addrs` says otherwise.
 */
function segment(
  v6: boolean,
  flags: number,
  options: number[],
  payload = 0,
  addrs: [number[], number[]] = [
    [10, 0, 0, 1],
    [10, 0, 0, 2],
  ],
): Buffer {
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
    p.set(addrs[0], 12);
    p.set(addrs[1], 16);
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

/** AmneziaWG 3.1's sizes: S4 = 23 on every transport message, content padding 8–32 */
const AWG31: Partial<AwgParams> = {
  s1: 15,
  s2: 18,
  s3: 20,
  s4: 23,
  h1: range(100000, 200000),
  h2: range(300000, 400000),
  h3: range(500000, 600000),
  h4: range(700000, 800000),
  headerProtectionKey: new Uint8Array(32).fill(0x5c),
  contentPaddingAddition: range(8, 32),
};

describe('the clamp in the engine, AmneziaWG 3.1 at MTU 1420 over an IPv4 endpoint', () => {
  it('the path plaintext is the MTU or what fits the path, whichever is smaller', () => {
    expect(pathPlaintext(1420, 23, false)).toBe(1417);
    expect(pathPlaintext(1420, 23, true)).toBe(1397);
    expect(pathPlaintext(1397, 23, true)).toBe(1397);
    expect(pathPlaintext(1280, 23, false)).toBe(1280);
    expect(pathPlaintext(8920, 23, true)).toBe(9000 - 48 - 32 - 23);
  });

  it('segments the peer sends leave room for its padding; ours fill the path and leave in equal datagrams', async () => {
    const { a, b, net } = await makePair({ awgA: AWG31 });
    a.tun.setMtu(1420);
    b.tun.setMtu(1420);
    // B plays a peer that clamps nothing (amneziawg-go)
    (b.dev as unknown as { mssClamp: boolean }).mssClamp = false;
    const [hostA, hostB] = [
      [192, 168, 0, 1],
      [192, 168, 0, 2],
    ];
    a.tun.inject(ipv4('192.168.0.1', '192.168.0.2'));
    net.flush();
    expect(b.tun.written).toHaveLength(1);
    // A's host opens a connection: the SYN sets what the peer sends, which it pads at
    // random up to its MTU (1417 − 32 fits)
    a.tun.inject(segment(false, 0x02, mssOpt(1380), 0, [hostA, hostB]));
    net.flush();
    const syn = Buffer.from(b.tun.written.at(-1)!);
    expect(mssOf(syn, false)).toBe(1417 - 32 - 40);
    expect(tcpChecksumValid(syn, 20, false)).toBe(true);
    // the peer's SYN-ACK sets what A's host sends: the whole 1417 bytes
    b.tun.inject(segment(false, 0x12, mssOpt(1380), 0, [hostB, hostA]));
    net.flush();
    const synAck = Buffer.from(a.tun.written.at(-1)!);
    expect(mssOf(synAck, false)).toBe(1417 - 40);
    expect(tcpChecksumValid(synAck, 20, false)).toBe(true);
    // full-size segments get no padding: every datagram 1417 + 32 + 23 bytes, a 1500-byte
    // IPv4 packet, the same size as the next (one UDP GSO run); shorter ones are padded
    // at random within the path
    const before = net.sent.length;
    for (let i = 0; i < 8; i++) a.tun.inject(segment(false, 0x10, [], 1417 - 40, [hostA, hostB]));
    for (let i = 0; i < 8; i++) a.tun.inject(segment(false, 0x10, [], 1300 - 40, [hostA, hostB]));
    net.flush();
    const sizes = net.sent
      .slice(before)
      .filter((d) => d.from.address === '10.0.0.1')
      .map((d) => d.data.length);
    expect(sizes.slice(0, 8)).toEqual(Array<number>(8).fill(1472));
    for (const n of sizes.slice(8)) expect(n >= 1300 + 55 + 8 && n <= 1300 + 55 + 32).toBe(true);
    expect(b.tun.written).toHaveLength(1 + 1 + 16);
  });
});
