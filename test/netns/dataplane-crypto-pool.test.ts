/**
 * The crypto pool (src/dataplane/crypto/pool.ts) on a real data path: two engines of ours in
 * this process, each on a TUN in its own namespace (TSO reads, coalesced writes), their UDP
 * sockets on loopback (recvmmsg with GRO, sendmmsg with GSO), sharing one pool whose threads
 * run every job of a parallel run (callerRuns: false: what the threads did is what arrives,
 * whatever the scheduler does). A 24 MiB TCP transfer each way must arrive intact (sha256):
 * the regions the threads see by address (the TUN's read slab, the bind's receive block, the
 * device's send and receive slabs) and the order the engine sends and writes in are right.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { bulkTransfer } from '../helpers/bulk.js';
import { requireNetnsPrereqs, withNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['ip']);
const helper = skip ? undefined : await import('../helpers/engine-pair.js');
const mods = skip
  ? undefined
  : await Promise.all([
      import('../../src/dataplane/conn/native-udp.js'),
      import('../../src/dataplane/crypto/pool.js'),
    ]);

const BYTES = 24 * 1024 * 1024;
let stop: (() => Promise<void>) | undefined;
afterAll(async () => stop?.());

describe.skipIf(skip)(
  'crypto pool between two engines (TUNs in namespaces, sockets on loopback)',
  () => {
    it('24 MiB each way arrive intact with every parallel job on the pool threads', async () => {
      const [{ NativeUdpBind }, { CryptoPool }] = mods!;
      const pool = CryptoPool.create({ threads: 2, eager: true, callerRuns: false });
      // AWG_AEAD=node (the diagnosis switch) turns the pool off, as documented: nothing to run
      if (process.env.AWG_AEAD === 'node') return void expect(pool).toBeNull();
      if (!pool) throw new Error('no libcrypto in this process: the pool cannot exist');
      stop = () => pool.stop();
      await vi.waitFor(() => expect(pool.running).toBe(2), { timeout: 30_000, interval: 50 });
      await withNetns(['cpool-a', 'cpool-b'], async (a, b) => {
        const opts = {
          devs: ['awg-cpa', 'awg-cpb'] as [string, string],
          net: '10.201.63',
          bind: () => new NativeUdpBind('127.0.0.1'),
          device: { cryptoPool: pool },
        };
        await helper!.withEnginePair(a, b, opts, async (A, B) => {
          for (const [from, to, s] of [
            [A, B, 9020],
            [B, A, 9021],
          ] as const) {
            const before = pool.stats.threadJobs;
            const r = await bulkTransfer(from.ns, to.ns, to.addr, s, BYTES);
            expect(r.codes).toEqual([0, 0]);
            expect(r.sent).toMatch(new RegExp(`^${BYTES} [0-9a-f]{64}$`));
            expect(r.received).toBe(r.sent);
            // 24 MiB is ≥ 17,700 full-size messages, each sealed and opened once; the sender's are
            // sealed in runs of a TSO super-packet's segments (≈ 45), far above MIN_PARALLEL
            // (AWG_BUFFER_REUSE=0, the diagnosis switch: no slabs, so the devices seal and open
            // inline, as documented; the bytes must arrive the same)
            if (process.env.AWG_BUFFER_REUSE === '0')
              expect(pool.stats.threadJobs - before).toBe(0);
            else expect(pool.stats.threadJobs - before).toBeGreaterThan(BYTES / 1420 / 2);
          }
          expect(pool.stats.threadJobs).toBe(pool.stats.parallelJobs);
          expect(pool.running).toBe(2); // never broken: no run timed out
        });
      });
    }, 120_000);
  },
);
