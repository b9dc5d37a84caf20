/**
 * The UDP sender off the engine's thread on a real data path, both kinds: the opt-in worker
 * thread (AWG_UDP_SEND_THREAD=1, src/native/udpsend-worker.ts) and libuv's pool (the pool
 * sender, udpbatch.ts startPoolSender): two engines of ours in this process, each on a TUN in its own namespace, their
 * UDP sockets on loopback, both binds forced to hand sendmmsg to their threads (started at
 * open and up before the transfers; UDP GSO on, the default). A 24 MiB TCP transfer each way
 * must arrive intact (sha256) and the threads must have carried it.
 */
import { describe, expect, it, vi } from 'vitest';
import { bulkTransfer } from '../helpers/bulk.js';
import { requireNetnsPrereqs, withNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['ip']);
const helper = skip ? undefined : await import('../helpers/engine-pair.js');
const native = skip ? undefined : await import('../../src/dataplane/conn/native-udp.js');

const BYTES = 24 * 1024 * 1024;

describe.skipIf(skip)(
  'UDP sender thread between two engines (TUNs in namespaces, sockets on loopback)',
  () => {
    it.each([
      ['the sender threads', false, 62],
      ["libuv's pool (the pool sender)", true, 67],
    ])(
      '24 MiB each way arrive intact with sendmmsg on %s, GSO on',
      async (_, pool, net) => {
        await withNetns([`sthr-a${net}`, `sthr-b${net}`], async (a, b) => {
          // started at open, not under load: a transfer can end before a thread started under
          // load is up, and then proves nothing
          const bind = () =>
            new native!.NativeUdpBind('127.0.0.1', { sendThread: 'eager', sendPool: pool });
          await helper!.withEnginePair(
            a,
            b,
            { devs: [`awg-sta${net}`, `awg-stb${net}`], net: `10.201.${net}`, bind },
            async (A, B) => {
              const up = () => [A.bind.sendThreadReady, B.bind.sendThreadReady];
              await vi.waitFor(() => expect(up()).toEqual([true, true]), {
                timeout: 30_000,
                interval: 50,
              });
              for (const [from, to, s] of [
                [A, B, 9010],
                [B, A, 9011],
              ] as const) {
                const r = await bulkTransfer(from.ns, to.ns, to.addr, s, BYTES);
                expect(r.codes).toEqual([0, 0]);
                expect(r.sent).toMatch(new RegExp(`^${BYTES} [0-9a-f]{64}$`));
                expect(r.received).toBe(r.sent);
                expect(from.bind.sendThreaded).toBe(true);
                expect(from.bind.sendPooled).toBe(pool);
              }
              expect(A.bind.segmenting).toBe(true);
            },
          );
        });
      },
      120_000,
    );
  },
);
