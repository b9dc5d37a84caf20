/**
 * The handshake boost on the real kernel (src/dataplane/boost.ts): two engines of ours in this
 * process on TUNs in namespaces, their sockets on loopback; A's device has a boost that makes
 * the real sched_setscheduler calls on this thread and reads the policy back after each. A
 * ping from A's namespace waits for A's handshake: the thread ran SCHED_FIFO from the
 * initiation and is SCHED_OTHER again once the reply came, a window ended by the reply. With
 * B gone, the window ends at its bound instead; the thread is SCHED_OTHER either way, with the
 * engine's short EEVDF slice (100 µs) kept across both windows.
 */
import { describe, expect, it } from 'vitest';
import { requireNetnsPrereqs, withNetns, nsExec } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['ip', 'ping']);
const helper = skip ? undefined : await import('../helpers/engine-pair.js');
const mods = skip
  ? undefined
  : await Promise.all([
      import('../../src/dataplane/conn/native-udp.js'),
      import('../../src/dataplane/boost.js'),
      import('../../src/native/sched.js'),
    ]);

describe.skipIf(skip)('the handshake boost, real scheduling calls', () => {
  it('SCHED_FIFO from our initiation until the reply, SCHED_OTHER after; bounded when the peer never answers', async () => {
    const [{ NativeUdpBind }, { HandshakeBoost }, sched] = mods!;
    if (process.env.AWG_HANDSHAKE_BOOST === '0') return; // the off switch: engines get no boost (engine.ts)
    const seen: number[] = [];
    const boost = new HandshakeBoost(
      {
        fifo: () => {
          const r = sched.setFifo(1);
          seen.push(sched.currentPolicy());
          return r;
        },
        other: () => {
          const r = sched.setOtherSlice(100); // as sharedBoost() does for an engine with its slice
          seen.push(sched.currentPolicy());
          return r;
        },
        policy: sched.currentPolicy,
      },
      300,
    );
    expect(sched.currentPolicy()).toBe(sched.SCHED_OTHER);
    // the engine's short EEVDF slice (boost.ts applyEngineSlice), kept across the windows
    const defaultSlice = sched.currentSliceUs();
    expect(sched.setOtherSlice(100)).toBe(0);
    expect(sched.currentSliceUs()).toBe(100);
    await withNetns(['boost-a', 'boost-b'], async (a, b) => {
      const opts = {
        devs: ['awg-bst-a', 'awg-bst-b'] as [string, string],
        net: '10.201.66',
        bind: () => new NativeUdpBind('127.0.0.1'),
        deviceA: { boost },
      };
      await helper!.withEnginePair(a, b, opts, async (A, B) => {
        const r = await nsExec(A.ns, 'ping', ['-n', '-c', '1', '-W', '3', B.addr], {
          allowFail: true,
        });
        expect(r.code).toBe(0);
        await new Promise((res) => setTimeout(res, 20)); // the leave runs after the reply's batch
        expect(seen).toEqual([sched.SCHED_FIFO, sched.SCHED_OTHER]);
        expect(boost.state()).toMatchObject({
          enabled: true,
          active: false,
          windows: 1,
          expired: 0,
        });
        expect(sched.currentPolicy()).toBe(sched.SCHED_OTHER);
        expect(sched.currentSliceUs()).toBe(100);

        // B gone and A's peer reset (its session dropped): A's next handshake goes unanswered
        await B.device.down();
        const peer = A.device.snapshot().peers[0]!;
        await A.device.configure({ peers: [{ publicKey: peer.publicKey, remove: true }] });
        await A.device.configure({
          peers: [
            {
              publicKey: peer.publicKey,
              endpoint: `${peer.endpoint!.address}:${peer.endpoint!.port}`,
              allowedIps: peer.allowedIps,
            },
          ],
        });
        const lost = await nsExec(A.ns, 'ping', ['-n', '-c', '1', '-W', '1', B.addr], {
          allowFail: true,
        });
        expect(lost.code).not.toBe(0);
        expect(boost.state()).toMatchObject({ active: false, windows: 2, expired: 1 });
        expect(seen).toEqual([
          sched.SCHED_FIFO,
          sched.SCHED_OTHER,
          sched.SCHED_FIFO,
          sched.SCHED_OTHER,
        ]);
      });
    }).finally(() => sched.setOtherSlice(0));
    expect(sched.currentPolicy()).toBe(sched.SCHED_OTHER);
    expect(sched.currentSliceUs()).toBe(defaultSlice);
  });
});
