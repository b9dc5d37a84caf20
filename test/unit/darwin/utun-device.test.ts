/**
 * The data plane's utun device (src/dataplane/tun/utun.ts) over a fake utun socket: the
 * 4-byte address-family header is stripped on read and prepended on write, malformed frames
 * are dropped and counted, a dead socket stops delivery. The real socket is macOS's only.
 */
import { describe, expect, it } from 'vitest';
import { UtunDevice, type UtunIo } from '../../../src/dataplane/tun/utun.js';

function fakeIo(frames: Uint8Array[]) {
  const written: number[][] = [];
  const buffers = new Set<Uint8Array>();
  let watcher: (() => void) | undefined;
  let closed = false;
  const io: UtunIo = {
    read(buf) {
      const f = frames.shift();
      if (!f) return 0;
      if (f.length === 0) return -1; // the socket died
      buf.set(f);
      return f.length;
    },
    write: (buf, len) => (buffers.add(buf), written.push([...buf.subarray(0, len)]), buf[3] !== 99),
    mtu: () => 1420,
    watch(cb) {
      watcher = cb;
      return () => (watcher = undefined);
    },
    close: () => void (closed = true),
  };
  return {
    io,
    written,
    buffers,
    fire: () => watcher?.(),
    isClosed: () => closed,
    watching: () => watcher !== undefined,
  };
}

const v4 = (n: number) =>
  Uint8Array.from([0x45, 0, 0, 20 + n, ...new Array<number>(16 + n).fill(n)]);
const v6 = () => Uint8Array.from([0x60, 0, 0, 0, ...new Array<number>(36).fill(6)]);
const frame = (af: number, p: Uint8Array) => Uint8Array.from([0, 0, 0, af, ...p]);

describe('utun device', () => {
  it('strips the AF header; drops short, unknown-family and mismatched frames', () => {
    const f = fakeIo([
      frame(2, v4(1)),
      frame(30, v6()),
      Uint8Array.of(0, 0, 0),
      frame(7, v4(2)),
      frame(30, v4(3)),
      frame(2, v4(4)),
    ]);
    const tun = new UtunDevice('utun5', f.io);
    const got: number[][] = [];
    tun.onReceive((ps) => got.push(...ps.map((p) => [...p])));
    f.fire();
    expect(got).toEqual([[...v4(1)], [...v6()], [...v4(4)]]);
    expect(tun.stats).toMatchObject({
      rxPackets: 3,
      rxDropped: 3,
      rxBytes: v4(1).length + v6().length + v4(4).length,
    });
    expect(tun.mtu()).toBe(1420);
  });

  it('prepends AF_INET / AF_INET6 on write; drops what is not IP; counts refusals', () => {
    const f = fakeIo([]);
    const tun = new UtunDevice('utun5', f.io);
    tun.write([v4(1), v6(), Uint8Array.of(0x10, 1, 2), v4(2)]);
    expect(f.written).toEqual([
      [0, 0, 0, 2, ...v4(1)],
      [0, 0, 0, 30, ...v6()],
      [0, 0, 0, 2, ...v4(2)],
    ]);
    expect(tun.stats).toMatchObject({ txPackets: 3, txDropped: 1 });
    // every frame went out of one reused buffer
    expect(f.buffers.size).toBe(1);
  });

  it('batches of at most 256 packets, each intact and in order; a header-only frame is dropped', () => {
    const big = Uint8Array.from({ length: 9000 }, (_, i) => (i === 0 ? 0x45 : i & 0xff));
    const frames = [
      ...Array.from({ length: 299 }, (_, i) => frame(2, v4(i % 50))),
      frame(2, big),
      Uint8Array.of(0, 0, 0, 2),
    ];
    const f = fakeIo(frames.map((x) => Uint8Array.from(x)));
    const tun = new UtunDevice('utun5', f.io);
    const batches: number[][][] = [];
    tun.onReceive((ps) => batches.push(ps.map((p) => [...p])));
    f.fire();
    f.fire();
    f.fire();
    expect(batches.map((b) => b.length)).toEqual([256, 44]);
    const all = batches.flat();
    expect(all.slice(0, 299)).toEqual(Array.from({ length: 299 }, (_, i) => [...v4(i % 50)]));
    expect(all[299]).toEqual([...big]);
    expect(tun.stats).toMatchObject({ rxPackets: 300, rxDropped: 1 });
  });

  it('a frame the kernel refuses is counted, the next still goes out', () => {
    const f = fakeIo([]);
    let refuse = true;
    const io = {
      ...f.io,
      write: (buf: Uint8Array, len: number) =>
        refuse ? ((refuse = false), false) : f.io.write(buf, len),
    };
    const tun = new UtunDevice('utun5', io);
    tun.write([v4(1), v6()]);
    expect(f.written).toEqual([[0, 0, 0, 30, ...v6()]]);
    expect(tun.stats).toMatchObject({ txPackets: 1, txDropped: 1, txBytes: v6().length });
  });

  it('a dead socket stops delivery and reports once; close closes the socket', () => {
    const f = fakeIo([frame(2, v4(1)), new Uint8Array(0)]);
    const tun = new UtunDevice('utun5', f.io);
    const errors: string[] = [];
    tun.onError((e) => errors.push(e.message));
    tun.onReceive(() => {});
    f.fire();
    expect(errors).toEqual(['utun5: read failed (the utun is gone)']);
    expect(f.watching()).toBe(false);
    tun.close();
    expect(f.isClosed()).toBe(true);
    tun.write([v4(1)]);
    expect(f.written).toEqual([]);
  });
});
