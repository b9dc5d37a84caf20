/**
 * Health that sees data (docs/architecture.md, "Tunnel health"): the DPI failure AmneziaWG
 * users meet — handshakes answered, data messages dropped — against the real product
 * (`awg daemon` from dist/) and a real external peer: t1's peer is upstream amneziawg-go when
 * AWG_TEST_AMNEZIAWG_GO_DIR names a directory of its builds, else Debian's `wireguard-go`
 * (health-data-rig.ts; never skipped for want of amneziawg-go).
 * An nft rule in the peer's namespace drops UDP to the WireGuard port whose payload starts
 * with 4 (a transport message: data or keepalive); handshakes (types 1-3) pass.
 * - with traffic present t1 goes down with reason `no-data` (the target is ≤ 10 s; measured
 *   times are printed); the allow-direct app goes direct and the failover app moves to t2;
 * - the rule removed: t1 comes back (the daemon's data probe, which the peer's kernel answers
 *   at once) and the apps return;
 * - the fault toggled again at once (AWG_HEALTH_TOGGLES cycles, default 2: the cycle right
 *   after a recovery is the one a stale keepalive used to slow down): exactly one `tunnel`
 *   event each way per toggle. The 5-minute no-flap run is bench/health-flap.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireNetnsPrereqs } from '../helpers/netns.js';
import { eventually } from './perapp-topology.js';
import {
  perToggle,
  startHealthRig,
  toggle,
  type HealthRig,
  type Toggle,
} from './health-data-rig.js';

const skip = requireNetnsPrereqs([
  'nft',
  'sysctl',
  'ping',
  ...(process.env.AWG_TEST_AMNEZIAWG_GO_DIR ? [] : ['wireguard-go']),
]);

/** fault cycles; the long no-flap run (a toggle every 30 s for 5 minutes) is bench/health-flap.ts */
const TOGGLES = Math.max(1, Number(process.env.AWG_HEALTH_TOGGLES ?? 2));
/**
 * Twice the target (≤ 10 s each way with traffic present): a bound that fails a broken rule
 * (the keepalive-paced recovery took 13-20 s, detection after a recovery up to 33 s) and not
 * a loaded CI machine; the measured times are printed, the target is judged in bench/.
 */
const BOUND_MS = 20_000;

describe.skipIf(skip)('tunnel health sees the data path (handshakes pass, data dropped)', () => {
  let rig: HealthRig;

  beforeAll(async () => {
    rig = await startHealthRig();
  }, 240_000);

  afterAll(async () => {
    await rig?.stop();
  }, 120_000);

  it('no-data: down within the bound, fallbacks taken; fault removed: back; toggled: one event each way', async () => {
    const times: Toggle[] = [];
    for (let i = 0; i < TOGGLES; i++) {
      const first = i === 0;
      times.push(
        await toggle(rig, i, {
          boundMs: 45_000,
          ...(first
            ? {
                afterDown: async () => {
                  await eventually(
                    async () => (await rig.pathOfApp('ad')) === 'direct',
                    'ad direct',
                  );
                  await eventually(
                    async () => (await rig.pathOfApp('fo')) === 't2',
                    `fo through t2`,
                  );
                },
                afterUp: async () => {
                  await eventually(
                    async () => (await rig.pathOfApp('ad')) === 't1',
                    'ad back on t1',
                  );
                  await eventually(
                    async () => (await rig.pathOfApp('fo')) === 't1',
                    'fo back on t1',
                  );
                },
              }
            : {}),
        }),
      );
    }
    // a flap after the last recovery would come within the hold and a data probe's answer
    await new Promise((r) => setTimeout(r, 5_000));
    console.log(
      `health-data (peer: ${rig.peer}): down/up ms ${JSON.stringify(times.map((t) => [t.down, t.up]))}`,
    );
    const events = rig.events();
    expect(events.map((e) => `${e.state}/${e.reason ?? ''}`)).toEqual(
      Array.from({ length: TOGGLES }, () => ['down/no-data', 'up/']).flat(),
    );
    expect(perToggle(events, times)).toEqual(
      Array.from({ length: TOGGLES }, () => ['down/no-data', 'up/']),
    );
    for (const [i, x] of times.entries()) {
      expect(x.down, `toggle ${i + 1}: detection took ${x.down} ms (target ≤ 10 s)`).toBeLessThan(
        BOUND_MS,
      );
      expect(x.up, `toggle ${i + 1}: recovery took ${x.up} ms (target ≤ 10 s)`).toBeLessThan(
        BOUND_MS,
      );
    }
  }, 300_000);
});
