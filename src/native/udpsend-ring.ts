/**
 * The send ring: RING_SLOTS bursts packed into native blocks (mmsg-block.ts, block k for slot
 * k) waiting for their sendmmsg calls, described in an Int32Array. The sender thread
 * (udpsend-worker.ts) shares it with the batcher through a SharedArrayBuffer: the batcher packs
 * a burst, advances `head` and notifies; the thread sends the burst at `tail`, advances `tail`
 * and notifies, and reports what the batcher must learn (a refused source address, a GSO
 * failure, a refused segment size) in the header's flags. The pool sender keeps the same
 * layout in a plain Int32Array of its own (nothing else reads it).
 *
 *   header  RING.head … RING.segRefused                     (RING.header ints)
 *   slot k  at ringSlot(k): msgs, srcSpace, gso, (unused), end[BATCH_MAX]   (RING.slot ints)
 *
 * `end[m]`: the index, relative to the burst, after message m's last datagram (as
 * MmsgBlock.pack writes it).
 */
import { BATCH_MAX } from './mmsg-block.js';

export const RING = {
  head: 0,
  tail: 1,
  close: 2,
  ready: 3,
  /** datagrams the thread dropped (kernel refusal, no room in the socket buffer for 1 s) */
  dropped: 4,
  /** set by the thread: a source address was refused (cleared by the batcher) */
  refused: 5,
  /** set by the thread: UDP GSO failed on this path */
  gsoFailed: 6,
  /** set by the thread: the smallest segment size the kernel refused with EMSGSIZE (0: none) */
  segRefused: 7,
  header: 8,
  slot: 4 + BATCH_MAX,
} as const;

/** Where each burst's description sits in its slot (ints from `ringSlot(k)`). */
export const SLOT = {
  /** messages of the burst */
  msgs: 0,
  /** bytes of the pktinfo cmsg ahead of each UDP_SEGMENT one (0: no source address) */
  srcSpace: 1,
  /** 1 when the burst was packed with UDP GSO */
  gso: 2,
  /** end[BATCH_MAX] */
  end: 4,
} as const;

/** Bursts the ring holds. */
export const RING_SLOTS = 8;
/** Int32 elements of a ring: the header and every slot. */
export const RING_INTS = RING.header + RING_SLOTS * RING.slot;
/** Longest a burst waits for room in the socket buffer (the sender thread, the pool sender). */
export const WAIT_WRITABLE_MS = 1000;
/** Longest the caller waits for a free slot before dropping the rest of a send. */
export const RING_WAIT_MS = 20;

/** The first int of slot `k`. */
export function ringSlot(k: number): number {
  return RING.header + k * RING.slot;
}

/** The `end[]` of the burst whose slot starts at `s` (a view of the ring, no copy). */
export function burstEnds(ring: Int32Array, s: number): Int32Array {
  return ring.subarray(s + SLOT.end, s + SLOT.end + BATCH_MAX);
}
