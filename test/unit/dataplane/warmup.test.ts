import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Device, RX_SLAB, TX_SLAB } from '../../../src/dataplane/device/device.js';
import { defaultAwgParams } from '../../../src/dataplane/awg/params.js';
import { range } from '../../../src/dataplane/awg/range.js';

// The warm-up runs once per process: the unit project shares its workers' modules between
// files (isolate: false, vitest.config.ts), and another file's engine may have run it
// already. A fresh instance of the module (and of the codec it calls, whose prototype is
// spied on below) is this file's own process.
let warmUpHandshakes: typeof import('../../../src/dataplane/warmup.js').warmUpHandshakes;
let AwgCodec: typeof import('../../../src/dataplane/awg/codec.js').AwgCodec;

describe('warmUpHandshakes', () => {
  beforeAll(async () => {
    vi.resetModules();
    ({ warmUpHandshakes } = await import('../../../src/dataplane/warmup.js'));
    ({ AwgCodec } = await import('../../../src/dataplane/awg/codec.js'));
  });

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

  it("with an engine's AmneziaWG parameters it runs their code (junk, I-packets, prefixes), once per kind", async () => {
    const preamble = vi.spyOn(AwgCodec.prototype, 'preamble');
    const sealHandshake = vi.spyOn(AwgCodec.prototype, 'sealHandshake');
    const frame = vi.spyOn(AwgCodec.prototype, 'prepareInitiationFrame');
    const awg = {
      ...defaultAwgParams(),
      jc: 3,
      jmin: 40,
      jmax: 70,
      s1: 15,
      s2: 18,
      s3: 20,
      s4: 23,
      h1: range(471800590, 471800690),
      h2: range(1246894907, 1246895000),
      h3: range(923637689, 923637690),
      h4: range(1769581055, 1869581055),
      i: ['<b 0xc70000000108><r 32><t>', null, null, null, null] as ReturnType<
        typeof defaultAwgParams
      >['i'],
      headerProtectionKey: new Uint8Array(32).fill(7),
      randomTrailers: true,
      contentPaddingAddition: range(8, 32),
    };
    const p = warmUpHandshakes(2, awg);
    expect(warmUpHandshakes(5, { ...awg, jc: 4 })).toBe(p); // one obfuscated run per process
    expect(warmUpHandshakes(5, defaultAwgParams())).not.toBe(p); // plain WireGuard: its own run
    await expect(p).resolves.toBe(2);
    const junk = preamble.mock.results.filter(
      (r) => r.type === 'return' && (r.value as Uint8Array[]).length >= 4, // I1 + 3 junk
    );
    expect(junk.length).toBeGreaterThanOrEqual(2);
    // initiations and responses went out framed: their S1/S2 prefixes (and random trailers)
    const kinds = sealHandshake.mock.calls.map((c) => c[0]);
    expect(kinds).toContain(1);
    expect(kinds).toContain(2);
    // the first pair's initiation was prepared ahead (as a started or re-added peer's is), the
    // second's built when its packet came: both paths ran
    const firstInitiation = sealHandshake.mock.invocationCallOrder[kinds.indexOf(1)]!;
    expect(frame.mock.invocationCallOrder[0]).toBeLessThan(firstInitiation);
    sealHandshake.mock.calls.forEach((c, k) => {
      const d = sealHandshake.mock.results[k]!.value as Uint8Array;
      expect(d.length).toBeGreaterThanOrEqual(
        c[1].length + (c[0] === 1 ? 15 : c[0] === 2 ? 18 : 20),
      );
    });
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
