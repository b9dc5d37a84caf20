import { afterEach, describe, expect, it, vi } from 'vitest';
import { Device, RX_SLAB, TX_SLAB } from '../../../src/dataplane/device/device.js';
import { warmUpHandshakes } from '../../../src/dataplane/warmup.js';

describe('warmUpHandshakes', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('runs in-memory handshakes once per process and never rejects, on one pair of slabs for all its devices', async () => {
    // each device used to allocate its own 384 KiB of slabs: 30 pairs left 13 MiB of freed
    // memory resident in glibc's heap (bench/RESULTS.md Step 10, the engine's RSS)
    const slow = vi.spyOn(Buffer, 'allocUnsafeSlow');
    const p = warmUpHandshakes(3);
    expect(warmUpHandshakes(50)).toBe(p); // once: the second call gets the same run
    await expect(p).resolves.toBe(3); // every pair handshook and carried packets both ways
    expect(slow.mock.calls.map((c) => c[0]).sort()).toEqual(
      [TX_SLAB, TX_SLAB, RX_SLAB, RX_SLAB].sort(),
    );
  });

  it('a device given slabs uses them; without, it has its own', () => {
    const slabs = { tx: Buffer.alloc(TX_SLAB), rx: Buffer.alloc(RX_SLAB) };
    const tun = {
      name: 't',
      mtu: () => 1420,
      onReceive: () => {},
      write: () => {},
      close: () => {},
    };
    const bind = { open: async () => 1, onReceive: () => {}, send: () => {}, close: () => {} };
    const d = new Device({ tun, bind, slabs, cryptoPool: null });
    expect(d.txSlab).toBe(slabs.tx);
    expect(d.rxSlab).toBe(slabs.rx);
    const own = new Device({ tun, bind, cryptoPool: null });
    expect([own.txSlab.length, own.rxSlab.length]).toEqual([TX_SLAB, RX_SLAB]);
    expect(own.txSlab).not.toBe(slabs.tx);
  });
});
