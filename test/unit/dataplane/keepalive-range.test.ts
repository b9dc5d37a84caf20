/**
 * AmneziaWG 3.x persistent keepalive ranges in the engine: as amneziawg-go 3.x
 * (timersAnyAuthenticatedPacketTraversal), each arming of the persistent-keepalive timer
 * draws a fresh interval from the range (lo + random in [0, hi − lo]). The random source is
 * injected and the clock simulated: no real time is measured.
 */
import { describe, expect, it } from 'vitest';
import { makePair } from './harness.js';
import type { Datagram } from '../../../src/dataplane/conn/memory.fake.js';
import type { RandomSource } from '../../../src/dataplane/awg/random.js';
import { seededRandom } from '../../../src/dataplane/awg/random.fake.js';
import { ZERO_RANGE, range } from '../../../src/dataplane/awg/range.js';
import { defaultAwgParams } from '../../../src/dataplane/awg/params.js';
import { Timing } from '../../../src/dataplane/device/timers.js';

const fromA = (d: Datagram) => d.from.address === '10.0.0.1';
const isKeepalive = (d: Datagram) => d.data.length === 32 && d.data[0] === 4;

/** a seeded source whose draws over `n` values come from `script`, cyclically; records every n */
function drawing(n: number, script: number[]): RandomSource & { asked: number[] } {
  const base = seededRandom(7);
  const asked: number[] = [];
  let i = 0;
  return {
    asked,
    bytes: (k) => base.bytes(k),
    intn(m) {
      asked.push(m);
      return m === n ? script[i++ % script.length]! : base.intn(m);
    },
  };
}

describe('persistent keepalive range: the interval is drawn each time the timer is armed', () => {
  it('Timing.persistentKeepalive: lo + a draw in [0, hi − lo], in ms; one value or off asks nothing', () => {
    const rng = drawing(11, [0, 10, 5]);
    const t = new Timing(() => defaultAwgParams(), rng);
    const r = range(20, 30);
    expect([1, 2, 3, 4].map(() => t.persistentKeepalive(r))).toEqual([
      20_000, 30_000, 25_000, 20_000,
    ]);
    expect(rng.asked).toEqual([11, 11, 11, 11]);
    expect(t.persistentKeepalive(range(25))).toBe(25_000);
    expect(t.persistentKeepalive(ZERO_RANGE)).toBe(0);
    expect(rng.asked).toHaveLength(4);
  });

  it('a device with 20-30 sends keepalives 20 to 30 s apart, each gap drawn anew', async () => {
    const rng = drawing(11, [0, 10]);
    const { net, clock, advance, a, b } = await makePair({
      persistentKeepaliveA: range(20, 30),
      deviceA: { random: rng },
    });
    net.flush();
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.hasSession).toBe(true);
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.persistentKeepalive).toEqual(range(20, 30));
    const count = () => net.sent.filter((d) => fromA(d) && isKeepalive(d)).length;
    const at: number[] = [];
    let seen = count();
    for (let i = 0; i < 3000; i++) {
      advance(100, 100);
      if (count() > seen) {
        at.push(clock.now());
        seen = count();
      }
    }
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    expect(gaps.length).toBeGreaterThanOrEqual(9);
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(20_000);
      expect(g).toBeLessThanOrEqual(30_100);
    }
    // the draws differ: both ends of the range occur
    expect(Math.min(...gaps)).toBeLessThan(21_000);
    expect(Math.max(...gaps)).toBeGreaterThan(29_000);
    // a draw per arming: at least one per keepalive sent
    expect(rng.asked.filter((n) => n === 11).length).toBeGreaterThanOrEqual(at.length);
  });

  it('configured over UAPI as "20-30" it reads back as the range; a single value stays a number', async () => {
    const { a, b } = await makePair({ persistentKeepaliveA: 25 });
    const key = Buffer.from(b.keys.publicKey).toString('hex');
    expect(a.dev.ipcGet()).toContain('persistent_keepalive_interval=25\n');
    await a.dev.ipcSet(
      `public_key=${key}\nupdate_only=true\npersistent_keepalive_interval=20-30\n`,
    );
    expect(a.dev.peerStatusByKey(b.keys.publicKey)!.persistentKeepalive).toEqual(range(20, 30));
    // a range is AmneziaWG output even without other AWG parameters (wg(8) could not read it)
    expect(a.dev.ipcGet()).toContain('persistent_keepalive_interval=20-30\n');
  });
});
