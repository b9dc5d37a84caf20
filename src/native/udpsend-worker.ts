/**
 * The UDP sender thread (udpsend-senders.ts ThreadedSender): runs the sendmmsg calls of the
 * bursts the engine's thread packed into a ring of native blocks (udpsend-ring.ts), in order,
 * so the kernel's transmit work (for a veth: the receiving namespace's stack too) runs beside
 * the engine instead of inside it. Holds no keys and no protocol state: only the socket's fd,
 * the blocks' addresses and the ring.
 *
 * Per burst: a short count goes on with the next message; EAGAIN waits for POLLOUT (up to 1 s,
 * then the rest is dropped); a refused source address is stripped from the burst's remaining
 * messages and reported (RING.refused); EIO/EINVAL on a GSO message is reported
 * (RING.gsoFailed) and that message dropped; EMSGSIZE on a GSO message (a segment larger than
 * the path MTU) sends its datagrams one at a time (fragmented by the kernel) and reports the
 * segment size (RING.segRefused); any other error drops the message, as dgram does.
 */
import { isMainThread, workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { E, POLLOUT, rawLibcFunc } from './libc.js';
import { HEAD_BYTES, MMSG, sendApart, stripSource } from './mmsg-block.js';
import { RING, RING_SLOTS, SLOT, WAIT_WRITABLE_MS, burstEnds, ringSlot } from './udpsend-ring.js';

interface Data {
  ring: Int32Array;
  fd: number;
  blocks: bigint[];
}

function run({ ring, fd, blocks }: Data): void {
  const sendmmsg = rawLibcFunc<(fd: number, vec: bigint, vlen: number, flags: number) => number>(
    'int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)',
  );
  const poll = rawLibcFunc<(fds: Buffer, n: number, timeout: number) => number>(
    'int poll(void *fds, unsigned long nfds, int timeout)',
  );
  if (!sendmmsg || !poll) throw new Error('sendmmsg/poll are not available');
  const headers = blocks.map((m) => Buffer.from(koffi.view(m as never, HEAD_BYTES) as ArrayBuffer));
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(POLLOUT, 4);

  const writable = (): boolean => {
    pfd.writeInt16LE(0, 6);
    return poll(pfd, 1, WAIT_WRITABLE_MS) > 0;
  };

  const sendBurst = (k: number): void => {
    const s = ringSlot(k);
    const msgs = ring[s + SLOT.msgs]!;
    let sp = ring[s + SLOT.srcSpace]!;
    const gso = ring[s + SLOT.gso] === 1;
    const end = burstEnds(ring, s);
    const count = (m: number) => end[m]! - (m > 0 ? end[m - 1]! : 0);
    const mem = blocks[k]!;
    let m = 0;
    while (m < msgs) {
      const r = sendmmsg(fd, mem + BigInt(m * MMSG), msgs - m, 0);
      if (r > 0) {
        m += r;
        continue;
      }
      const e = koffi.errno();
      if (e === E.EINTR) continue;
      if (r === 0 || e === E.EAGAIN) {
        if (writable()) continue;
        Atomics.add(ring, RING.dropped, end[msgs - 1]! - (m > 0 ? end[m - 1]! : 0));
        return;
      }
      if (sp && (e === E.EINVAL || e === E.EADDRNOTAVAIL || e === E.ENETUNREACH)) {
        stripSource(headers[k]!, m, msgs, sp);
        sp = 0;
        Atomics.store(ring, RING.refused, 1);
        continue;
      }
      if (gso && e === E.EMSGSIZE && count(m) > 1) {
        const r = sendApart(sendmmsg, fd, headers[k]!, Number(mem), m);
        const was = Atomics.load(ring, RING.segRefused);
        if (was === 0 || r.seg < was) Atomics.store(ring, RING.segRefused, r.seg);
        if (r.dropped) Atomics.add(ring, RING.dropped, r.dropped);
        m++;
        continue;
      }
      if (gso && (e === E.EIO || e === E.EINVAL) && count(m) > 1)
        Atomics.store(ring, RING.gsoFailed, 1);
      Atomics.add(ring, RING.dropped, count(m));
      m++;
    }
  };

  Atomics.store(ring, RING.ready, 1);
  let tail = Atomics.load(ring, RING.tail);
  for (;;) {
    const head = Atomics.load(ring, RING.head);
    if (head === tail) {
      if (Atomics.load(ring, RING.close)) break;
      Atomics.wait(ring, RING.head, head);
      continue;
    }
    sendBurst(tail % RING_SLOTS);
    tail++;
    Atomics.store(ring, RING.tail, tail);
    Atomics.notify(ring, RING.tail);
  }
}

// loaded anywhere else (a module scan, a bundler) it does nothing
if (!isMainThread && (workerData as Data | null)?.ring) run(workerData as Data);
