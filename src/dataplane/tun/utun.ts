/**
 * macOS utun for the data plane (wireguard-go `tun/tun_darwin.go`): a `TunDevice` over the
 * utun control socket (native/darwin/libsystem.ts opens it). Every frame carries a 4-byte
 * big-endian address family ahead of the IP packet (native/darwin/utun-abi.ts): stripped on
 * read, prepended on write from one reused buffer (no allocation per packet). A frame whose
 * family is unknown, or disagrees with the packet's version nibble, is dropped and counted.
 *
 * The frame handling is here and tested on Linux with a fake `UtunIo`; the socket behind
 * `UtunIo` on a real Mac has NEVER RUN (docs/platform-macos.md).
 */
import { AwgError } from '../../errors.js';
import { AF_HEADER_LEN } from '../../native/darwin/utun-abi.js';
import type { UtunIo } from '../../native/darwin/utun-io.js';
import type { TunDevice } from './tun.js';

export type { UtunIo };

const AF_INET = 2;
const AF_INET6 = 30;
/** Read batch limit (bounds latency for other work on the event loop) */
const MAX_BATCH = 256;
/** utun's largest frame: the header and a packet of the largest MTU */
const FRAME = AF_HEADER_LEN + 65535;

export interface UtunStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** frames read whose AF header was unknown, short, or disagreed with the IP version */
  rxDropped: number;
  /** packets not written: not IP, or refused by the kernel */
  txDropped: number;
}

function familyOf(packet: Uint8Array): number {
  const v = (packet[0] ?? 0) >> 4;
  return v === 4 ? AF_INET : v === 6 ? AF_INET6 : 0;
}

/** a TunDevice with the engine's `onError` (dataplane/engine.ts EngineTun) */
export class UtunDevice implements TunDevice {
  readonly stats: UtunStats = {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    rxDropped: 0,
    txDropped: 0,
  };
  private receiver: ((packets: Uint8Array[]) => void) | null = null;
  private stop: (() => void) | undefined;
  private readonly rbuf = new Uint8Array(MAX_BATCH * 2048);
  private readonly big = new Uint8Array(FRAME);
  private readonly wbuf = new Uint8Array(FRAME);
  private closed = false;
  private errorCb: ((e: AwgError) => void) | undefined;

  constructor(
    readonly name: string,
    private readonly io: UtunIo,
  ) {}

  mtu(): number {
    return this.io.mtu();
  }

  onError(cb: (e: AwgError) => void): void {
    this.errorCb = cb;
  }

  onReceive(cb: ((packets: Uint8Array[]) => void) | null): void {
    this.receiver = cb;
    if (this.closed) return;
    if (cb && !this.stop) this.stop = this.io.watch(() => this.drain());
    else if (!cb && this.stop) {
      this.stop();
      this.stop = undefined;
    }
  }

  /** Read what is waiting (up to MAX_BATCH frames) and hand the packets over as views. */
  drain(): void {
    const out: Uint8Array[] = [];
    let off = 0;
    while (out.length < MAX_BATCH && !this.closed) {
      // frames land in the batch slab while it has room for a full-size one, else in `big`
      const room = this.rbuf.length - off >= FRAME;
      const target = room ? this.rbuf.subarray(off) : this.big;
      const n = this.io.read(target);
      if (n === 0) break;
      if (n < 0) {
        this.fail(new AwgError('driver', `${this.name}: read failed (the utun is gone)`));
        return;
      }
      const frame = target.subarray(0, n);
      const packet = this.strip(frame);
      if (!packet) continue;
      this.stats.rxPackets++;
      this.stats.rxBytes += packet.length;
      out.push(packet);
      if (room) off += (n + 7) & ~7;
      else {
        // `big` is reused by the next read: deliver what we have first
        break;
      }
    }
    if (out.length) this.receiver?.(out);
  }

  private strip(frame: Uint8Array): Uint8Array | undefined {
    if (frame.length <= AF_HEADER_LEN) {
      this.stats.rxDropped++;
      return undefined;
    }
    const af = new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0, false);
    const packet = frame.subarray(AF_HEADER_LEN);
    if ((af !== AF_INET && af !== AF_INET6) || familyOf(packet) !== af) {
      this.stats.rxDropped++;
      return undefined;
    }
    return packet;
  }

  write(packets: Uint8Array[]): void {
    if (this.closed) return;
    for (const p of packets) {
      const af = familyOf(p);
      if (!af || p.length + AF_HEADER_LEN > this.wbuf.length) {
        this.stats.txDropped++;
        continue;
      }
      this.wbuf[0] = 0;
      this.wbuf[1] = 0;
      this.wbuf[2] = 0;
      this.wbuf[3] = af;
      this.wbuf.set(p, AF_HEADER_LEN);
      if (this.io.write(this.wbuf, AF_HEADER_LEN + p.length)) {
        this.stats.txPackets++;
        this.stats.txBytes += p.length;
      } else this.stats.txDropped++;
    }
  }

  private fail(e: AwgError): void {
    this.stop?.();
    this.stop = undefined;
    this.errorCb?.(e);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stop?.();
    this.stop = undefined;
    this.receiver = null;
    this.io.close();
  }
}
