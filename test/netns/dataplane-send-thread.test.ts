/**
 * The opt-in UDP sender thread (AWG_UDP_SEND_THREAD=1, src/native/udpsend-worker.ts) on a real
 * data path: two engines of ours in this process, each on a TUN in its own namespace, their
 * UDP sockets on loopback, both binds forced to hand sendmmsg to their threads (started at
 * open and up before the transfers; UDP GSO on, the default). A 24 MiB TCP transfer each way
 * must arrive intact (sha256) and the threads must have carried it.
 */
import { describe, expect, it, vi } from 'vitest';
import { bulkTransfer } from '../helpers/bulk.js';
import { nsExec, requireNetnsPrereqs, withNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['ip']);
const mods = skip
  ? undefined
  : await Promise.all([
      import('../../src/dataplane/tun/file.js'),
      import('../../src/dataplane/conn/native-udp.js'),
      import('../../src/dataplane/device/device.js'),
      import('../../src/dataplane/crypto/keys.js'),
    ]);

const BYTES = 24 * 1024 * 1024;

describe.skipIf(skip)('UDP sender thread between two engines (TUNs in namespaces, sockets on loopback)', () => {
  it('24 MiB each way arrive intact with sendmmsg on the threads, GSO on', async () => {
    const [{ TunFile }, { NativeUdpBind }, { Device }, { generateKeyPair }] = mods!;
    await withNetns(['sthr-a', 'sthr-b'], async (a, b) => {
      const ka = generateKeyPair();
      const kb = generateKeyPair();
      const side = (ns: string, dev: string, addr: string) => {
        // started at open, not under load: a transfer can end before a thread started under
        // load is up (its module compiles through tsx in tests), and then proves nothing
        const bind = new NativeUdpBind('127.0.0.1', { sendThread: 'eager' });
        const device = new Device({ tun: TunFile.open(dev, { netns: ns }), bind });
        return { ns, dev, addr, bind, device };
      };
      const A = side(a, 'awg-sta', '10.201.62.1');
      const B = side(b, 'awg-stb', '10.201.62.2');
      try {
        await A.device.configure({ privateKey: ka.privateKey, listenPort: 0 });
        await B.device.configure({ privateKey: kb.privateKey, listenPort: 0 });
        await A.device.up();
        await B.device.up();
        const port = (d: typeof A) => d.device.snapshot().listenPort;
        await A.device.configure({ peers: [{ publicKey: kb.publicKey, endpoint: `127.0.0.1:${port(B)}`, allowedIps: ['10.201.62.2/32'] }] });
        await B.device.configure({ peers: [{ publicKey: ka.publicKey, endpoint: `127.0.0.1:${port(A)}`, allowedIps: ['10.201.62.1/32'] }] });
        for (const s of [A, B]) {
          await nsExec(s.ns, 'ip', ['addr', 'add', `${s.addr}/24`, 'dev', s.dev]);
          await nsExec(s.ns, 'ip', ['link', 'set', s.dev, 'mtu', '1420', 'up']);
        }
        const up = () => [A.bind.sendThreadReady, B.bind.sendThreadReady];
        await vi.waitFor(() => expect(up()).toEqual([true, true]), { timeout: 30_000, interval: 50 });
        for (const [from, to, s] of [
          [A, B, 9010],
          [B, A, 9011],
        ] as const) {
          const r = await bulkTransfer(from.ns, to.ns, to.addr, s, BYTES);
          expect(r.codes).toEqual([0, 0]);
          expect(r.sent).toMatch(new RegExp(`^${BYTES} [0-9a-f]{64}$`));
          expect(r.received).toBe(r.sent);
          expect(from.bind.sendThreaded).toBe(true);
        }
        expect(A.bind.segmenting).toBe(true);
      } finally {
        for (const s of [A, B]) await s.device.close();
      }
    });
  }, 120_000);
});
