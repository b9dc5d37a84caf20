/**
 * The mmsg block (src/native/mmsg-block.ts) and the send ring's layout (udpsend-ring.ts),
 * without a socket: how a burst is grouped into messages (UDP GSO runs), what the headers
 * say, what `stripSource` leaves, and that the ring's slots fit side by side.
 */
import { describe, expect, it } from 'vitest';
import {
  BATCH_MAX,
  HEAD_BYTES,
  MMSG,
  MmsgBlock,
  SEG_ANY,
  stripSource,
} from '../../../src/native/mmsg-block.js';
import {
  RING,
  RING_INTS,
  RING_SLOTS,
  SLOT,
  burstEnds,
  ringSlot,
} from '../../../src/native/udpsend-ring.js';

const native = process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64');

describe('the send ring layout', () => {
  it('the header holds every flag, and the slots follow it without overlapping', () => {
    const flags = Object.entries(RING).filter(([k]) => k !== 'header' && k !== 'slot');
    for (const [, v] of flags) expect(v).toBeLessThan(RING.header);
    expect(new Set(flags.map(([, v]) => v)).size).toBe(flags.length);
    expect(SLOT.end + BATCH_MAX).toBe(RING.slot);
    for (const v of [SLOT.msgs, SLOT.srcSpace, SLOT.gso]) expect(v).toBeLessThan(SLOT.end);
    expect(ringSlot(0)).toBe(RING.header);
    expect(ringSlot(RING_SLOTS - 1) + RING.slot).toBe(RING_INTS);
  });

  it("a slot's end[] is a view of the ring", () => {
    const ring = new Int32Array(RING_INTS);
    const s = ringSlot(3);
    const end = burstEnds(ring, s);
    expect(end.length).toBe(BATCH_MAX);
    end[0] = 7;
    expect(ring[s + SLOT.end]).toBe(7);
    expect(ring[ringSlot(4)]).toBe(0);
  });
});

describe.runIf(native)('MmsgBlock', () => {
  const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
  /** message m's iov_len and, when it has one, its UDP_SEGMENT size */
  const msg = (b: MmsgBlock, m: number) => {
    const v = b.view;
    const iov = Number(v.readUIntLE(m * MMSG + 16, 6)) - b.address;
    const clen = v.readUInt32LE(m * MMSG + 40);
    const ctl = v.readUIntLE(m * MMSG + 32, 6) - b.address;
    return {
      len: v.readUInt32LE(iov + 8),
      seg: clen >= 24 ? v.readUInt16LE(ctl + clen - 24 + 16) : 0,
    };
  };

  it('GSO: a run of equal sizes (the last may be shorter) is one message; odd sizes go alone', () => {
    const b = new MmsgBlock(4);
    try {
      expect(b.setAddress(4, '127.0.0.1', 9)).toBe(true);
      const bufs = [
        ...Array.from({ length: 5 }, () => bytes(1200, 1)),
        bytes(300, 2), // the short last segment of the run
        bytes(77, 3),
        bytes(91, 4), // two random sizes never merge
      ];
      const end = new Int32Array(BATCH_MAX);
      const msgs = b.pack(bufs, 0, true, end);
      expect(msgs).toBe(3);
      expect([...end.subarray(0, msgs)]).toEqual([6, 7, 8]);
      expect(msg(b, 0)).toEqual({ len: 5 * 1200 + 300, seg: 1200 });
      expect(msg(b, 1)).toEqual({ len: 77, seg: 0 });
      expect(msg(b, 2)).toEqual({ len: 91, seg: 0 });
      // the data lies back to back
      expect(b.view[b.dataOff + 6000]).toBe(2);
      expect(b.view[b.dataOff + 6300]).toBe(3);
      // without GSO every datagram is a message
      expect(b.pack(bufs, 0, false, end)).toBe(bufs.length);
      // a learnt limit below the size keeps the run apart
      expect(b.pack(bufs, 0, true, end, 1199)).toBe(bufs.length);
      expect(b.pack(bufs, 0, true, end, SEG_ANY)).toBe(3);
    } finally {
      b.free();
    }
  });

  it('a source address puts a pktinfo cmsg ahead of UDP_SEGMENT; stripSource takes it out again', () => {
    const b = new MmsgBlock(6);
    try {
      expect(b.setAddress(6, '::1', 9)).toBe(true);
      b.setSource('::1', 0, true);
      expect(b.srcSpace).toBe(40);
      const bufs = [bytes(100, 1), bytes(100, 1), bytes(50, 2)];
      const end = new Int32Array(BATCH_MAX);
      expect(b.pack(bufs, 0, true, end)).toBe(1);
      expect(b.view.readUInt32LE(40)).toBe(40 + 24); // msg_controllen: both cmsgs
      expect(msg(b, 0)).toEqual({ len: 250, seg: 100 });
      const head = b.view.subarray(0, HEAD_BYTES);
      stripSource(head, 0, 1, b.srcSpace);
      expect(b.view.readUInt32LE(40)).toBe(24); // the UDP_SEGMENT cmsg alone
      expect(msg(b, 0)).toEqual({ len: 250, seg: 100 });
      // an address of the other family is not a source for this destination
      b.setSource('127.0.0.1', 0, true);
      expect(b.srcSpace).toBe(0);
    } finally {
      b.free();
    }
  });

  it("each message's control area holds the current source, also when it changes between packs", () => {
    const b = new MmsgBlock(4);
    /** the source address of message m's pktinfo cmsg, or '' without one */
    const sourceOf = (m: number): string => {
      const h = m * MMSG;
      if (b.view.readUInt32LE(h + 40) === 0) return '';
      const c = b.view.readUIntLE(h + 32, 6) - b.address;
      expect(b.view.readUInt32LE(c)).toBe(28); // CMSG_LEN(12)
      expect(b.view.readInt32LE(c + 12)).toBe(8); // IP_PKTINFO
      return [...b.view.subarray(c + 20, c + 24)].join('.');
    };
    const odd = (n: number) => Array.from({ length: n }, (_, k) => bytes(40 + k, k)); // no GSO runs
    const end = new Int32Array(BATCH_MAX);
    try {
      expect(b.setAddress(4, '127.0.0.1', 9)).toBe(true);
      b.setSource('10.0.0.1', 0, false);
      expect(b.pack(odd(2), 0, true, end)).toBe(2);
      expect([0, 1].map(sourceOf)).toEqual(['10.0.0.1', '10.0.0.1']);
      b.setSource('10.0.0.2', 0, false);
      expect(b.pack(odd(5), 0, true, end)).toBe(5);
      expect([0, 1, 2, 3, 4].map(sourceOf)).toEqual(Array(5).fill('10.0.0.2'));
      b.setSource('', 0, false);
      expect(b.pack(odd(3), 0, true, end)).toBe(3);
      expect([0, 1, 2].map(sourceOf)).toEqual(['', '', '']);
      b.setSource('10.0.0.1', 0, false);
      expect(b.pack(odd(BATCH_MAX), 0, true, end)).toBe(BATCH_MAX);
      for (let m = 0; m < BATCH_MAX; m++) expect(sourceOf(m)).toBe('10.0.0.1');
    } finally {
      b.free();
    }
  });

  it('refuses an address the socket cannot reach and an oversized first datagram', () => {
    const b = new MmsgBlock(4);
    try {
      expect(b.setAddress(4, '::1', 9)).toBe(false);
      expect(b.setAddress(4, 'localhost', 9)).toBe(false);
      expect(b.pack([bytes(65508, 0)], 0, true, new Int32Array(BATCH_MAX))).toBe(0);
    } finally {
      b.free();
    }
  });
});
