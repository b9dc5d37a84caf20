/**
 * Step 22: the no-flap run. The data-path fault of test/netns/health-data.test.ts (an nft rule
 * in t1's peer's namespace drops WireGuard transport messages, handshakes pass; the peer is a
 * real external engine: amneziawg-go from AWG_TEST_AMNEZIAWG_GO_DIR, else Debian's
 * wireguard-go — health-data-rig.ts), toggled every period: the rule in place for half of it,
 * removed for the other half, both apps sending all the time. Per toggle: detection (rule in →
 * `tunnel` down event, reason no-data) and recovery (rule out → up event), from the events'
 * own time stamps; and the t1 events in the toggle's period, which must be exactly one down
 * and one up. Prints every toggle, median and max of both times, and exits 1 on any toggle
 * with other events, or with a time over the target (10 s).
 *
 * By hand only (root, nft, wireguard-go; not CI, not `npm run bench`: its short form still
 * takes a minute, most of it the topology):
 *
 *   npx tsx bench/health-flap.ts                       # 5 minutes: a toggle every 30 s
 *   AWG_HEALTH_FLAP_SECONDS=60 AWG_HEALTH_FLAP_PERIOD=30 npx tsx bench/health-flap.ts
 *   AWG_TEST_AMNEZIAWG_GO_DIR=DIR npx tsx bench/health-flap.ts   # the peer: amneziawg-go
 */
import { loadavg } from 'node:os';
import { perToggle, startHealthRig, toggle, type Toggle } from '../test/netns/health-data-rig.js';
import { requireNetnsPrereqs } from '../test/helpers/netns.js';
import { machine, median } from './lib.js';

const TARGET_MS = 10_000;
const seconds = Number(process.env.AWG_HEALTH_FLAP_SECONDS ?? 300);
const periodS = Number(process.env.AWG_HEALTH_FLAP_PERIOD ?? 30);
const toggles = Math.max(1, Math.floor(seconds / periodS));

const missing = requireNetnsPrereqs([
  'nft',
  'sysctl',
  'ping',
  ...(process.env.AWG_TEST_AMNEZIAWG_GO_DIR ? [] : ['wireguard-go']),
]);
if (missing) {
  console.error(missing);
  process.exit(1);
}

console.log(`machine: ${machine()}`);
console.log(
  `load before: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
const rig = await startHealthRig();
const times: Toggle[] = [];
let failed = false;
try {
  console.log(
    `peer: ${rig.peer}; ${toggles} toggles, one every ${periodS} s (the rule in for ${periodS / 2} s)`,
  );
  for (let i = 0; i < toggles; i++) {
    const t = await toggle(rig, i, {
      boundMs: periodS * 500,
      holdMs: periodS * 500,
      periodMs: periodS * 1000,
    });
    times.push(t);
    console.log(`toggle ${i + 1}: down ${t.down} ms, up ${t.up} ms`);
  }
  // events after the last period's end would be a flap too
  await new Promise((r) => setTimeout(r, 5_000));
} catch (e) {
  failed = true;
  console.error(`failed: ${(e as Error).message}`);
} finally {
  const events = rig.events();
  await rig.stop();
  const per = perToggle(events, times);
  const counts = per.map((ev) => ({
    down: ev.filter((e) => e.startsWith('down/')).length,
    up: ev.filter((e) => e.startsWith('up/')).length,
    other: ev.filter((e) => !/^(down\/no-data|up\/)$/.test(e)).length,
  }));
  for (const [i, c] of counts.entries())
    if (c.down !== 1 || c.up !== 1 || c.other !== 0) {
      failed = true;
      console.log(`toggle ${i + 1}: events ${JSON.stringify(per[i])}`);
    }
  const downs = times.map((t) => t.down);
  const ups = times.map((t) => t.up);
  if (times.length) {
    console.log(
      `detection ms: median ${median(downs)}, max ${Math.max(...downs)}; ` +
        `recovery ms: median ${median(ups)}, max ${Math.max(...ups)}`,
    );
    console.log(
      `events per toggle (down/up): ${counts.map((c) => `${c.down}/${c.up}`).join(' ')}` +
        `; all events ${events.length} for ${times.length} toggles`,
    );
    if (Math.max(...downs, ...ups) > TARGET_MS) {
      failed = true;
      console.log(`over the ${TARGET_MS} ms target`);
    }
  }
  console.log(
    `load after: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
}
process.exit(failed ? 1 : 0);
