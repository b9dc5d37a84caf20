/**
 * An idle device gives its buffers' pages back (src/dataplane/buffers.ts): two engines of ours
 * in this process on TUNs in namespaces (TSO reads, coalesced writes), their sockets on
 * loopback (recvmmsg with GRO into the 4 MiB receive block). After a transfer and one quiet
 * period both devices have released the pages the transfer wrote, and the next transfers
 * each way (through faulted-in zero pages) arrive intact — with the work inline and with every
 * parallel job on a crypto pool's threads (which see the slabs by address). While packets flow
 * the devices are busy, and the process settles without a garbage collection.
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
const { settleNow } = await import('../../src/native/settle.js');

const BYTES = 8 * 1024 * 1024;
const IDLE_MS = 300;
let stop: (() => Promise<void>) | undefined;
afterAll(async () => stop?.());

describe.skipIf(skip)(
  'idle release between two engines (TUNs in namespaces, sockets on loopback)',
  () => {
    for (const pooled of [false, true]) {
      it(`releases the pages a transfer wrote once idle, and later transfers arrive intact (${pooled ? 'crypto pool threads' : 'inline'})`, async () => {
        const [{ NativeUdpBind }, { CryptoPool }] = mods!;
        const pool = pooled
          ? CryptoPool.create({ threads: 2, eager: true, callerRuns: false })
          : null;
        if (pooled && !pool) {
          // AWG_AEAD=node (the diagnosis switch) turns the pool off, as documented
          if (process.env.AWG_AEAD === 'node') return;
          throw new Error('no libcrypto in this process: the pool cannot exist');
        }
        if (pool) {
          stop = () => pool.stop();
          await vi.waitFor(() => expect(pool.running).toBe(2), { timeout: 30_000, interval: 50 });
        }
        const off = process.env.AWG_IDLE_RELEASE === '0' || process.env.AWG_BUFFER_REUSE === '0';
        await withNetns([`idle-a${Number(pooled)}`, `idle-b${Number(pooled)}`], async (a, b) => {
          const net = pooled ? '10.201.65' : '10.201.64';
          const opts = {
            devs: [`awg-ir${Number(pooled)}a`, `awg-ir${Number(pooled)}b`] as [string, string],
            net,
            bind: () => new NativeUdpBind('127.0.0.1'),
            device: { cryptoPool: pool, idleReleaseMs: off ? 0 : IDLE_MS },
          };
          await helper!.withEnginePair(a, b, opts, async (A, B) => {
            const transfer = async (from: typeof A, to: typeof A, port: number, bytes = BYTES) => {
              const r = await bulkTransfer(from.ns, to.ns, to.addr, port, bytes);
              expect(r.codes).toEqual([0, 0]);
              expect(r.sent).toMatch(new RegExp(`^${bytes} [0-9a-f]{64}$`));
              expect(r.received).toBe(r.sent);
            };
            await transfer(A, B, 9030);
            if (off) {
              // the off switches (AWG_IDLE_RELEASE=0, or no reused buffers at all): nothing released
              await new Promise((r) => setTimeout(r, 3 * IDLE_MS));
              expect(A.device.idleReleasedBytes + B.device.idleReleasedBytes).toBe(0);
            } else {
              // the receiver's TUN slab (1 MiB) and receive block (GRO: 64 KiB slots) were written
              // by 8 MiB of TCP; the sender's TUN slab (TSO super-packets) and send slab too
              await vi.waitFor(
                () => expect(B.device.idleReleasedBytes).toBeGreaterThanOrEqual(1024 * 1024),
                { timeout: 10 * IDLE_MS, interval: 50 },
              );
              await vi.waitFor(
                () => expect(A.device.idleReleasedBytes).toBeGreaterThanOrEqual(512 * 1024),
                { timeout: 10 * IDLE_MS, interval: 50 },
              );
            }
            const released = B.device.idleReleasedBytes;
            await transfer(B, A, 9031);
            await transfer(A, B, 9032);
            // released once per quiet period: another round after the new traffic
            if (!off)
              await vi.waitFor(() => expect(B.device.idleReleasedBytes).toBeGreaterThan(released), {
                timeout: 10 * IDLE_MS,
                interval: 50,
              });
            if (pooled || off) return;
            // while packets flow the devices are busy (32 receive batches within a check period,
            // here: once B wrote 64 packets): the process settles without a collection
            // (native/settle.ts), a few ms of stopped main thread that would delay them
            const g = globalThis as { gc?: unknown };
            const had = g.gc;
            g.gc = () => {};
            try {
              const written = () =>
                (B.device.tun as unknown as { stats: { txPackets: number } }).stats.txPackets;
              const flowing: boolean[] = [];
              const start = written();
              let last = start;
              const t = setInterval(() => {
                const now = written();
                if (now > last && now - start >= 64) flowing.push(settleNow().collected);
                last = now;
              }, 10);
              await transfer(A, B, 9033, 32 * 1024 * 1024).finally(() => clearInterval(t));
              expect(flowing.length).toBeGreaterThan(0);
              expect(flowing.filter(Boolean)).toEqual([]);
              // and once both went quiet again it collects
              await vi.waitFor(() => expect(settleNow().collected).toBe(true), {
                timeout: 10 * IDLE_MS,
                interval: 50,
              });
            } finally {
              g.gc = had;
            }
          });
        });
      }, 120_000);
    }
  },
);
