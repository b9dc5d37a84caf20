/**
 * Step 24: what the kernel's per-element nf_tables notifications cost a large set load, and
 * what leaving the group during our own loads saves (native/nftnl.ts
 * withoutOwnNftNotifications). In a namespace of its own, N interval elements (disjoint /30s,
 * N = 73,000 as the 100,000-line list's intervals; `--smoke`: 20,000, enough to overrun) are loaded into a fresh
 * interval set, alternating per round between:
 *
 * - nobody listening in this process: a bare set writer (the kernel's own floor);
 * - the daemon's network watch running (watchLinuxNetwork, joined to NFNLGRP_NFTABLES) and the
 *   load through the product's set kernel (resources/firewall/set-kernel.ts): the watch leaves
 *   the group for the load;
 * - the watch running and the load through a bare writer: the watch stays in the group, the
 *   kernel builds a notification per element and the watch overruns (the old behaviour).
 *
 * The kernel builds notifications when anything on the host listens (not per namespace):
 * the listeners other namespaces have (other awg daemons, `nft monitor`) are counted from each
 * named namespace's /proc/net/netlink and printed, since they make every case pay. Wakes of the
 * watch ("events lost") are counted per case; the run fails when the product's load has one.
 * Needs root and nft. `AWG_BENCH_SET_SIZE` and `AWG_BENCH_ROUNDS` override the sizes.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { NFT_MSG_NEWSETELEM, intervalElements, openSetWriter } from '../src/native/nftset.js';
import { nativeSetKernel } from '../src/resources/firewall/set-kernel.js';
import { watchLinuxNetwork } from '../src/resources/monitor/linux.js';
import { createNetns, destroyNetns, nsExec, sweepStaleNetns } from '../test/helpers/netns.js';
import { type Sample } from './lib.js';

const TABLE = 'awgnotify';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** sockets on the host (every named namespace and this one) in NFNLGRP_NFTABLES */
function nftListeners(): number {
  const count = (text: string) =>
    text
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f[1] === '12' && (parseInt(f[3] ?? '0', 16) & 0x40) !== 0).length;
  let n = count(readFileSync('/proc/net/netlink', 'utf8'));
  for (const ns of readdirSync('/var/run/netns'))
    try {
      n += count(
        execFileSync('nsenter', [`--net=/var/run/netns/${ns}`, 'cat', '/proc/net/netlink'], {
          encoding: 'utf8',
        }),
      );
    } catch {
      // gone meanwhile
    }
  return n;
}

export async function nftNotifyBench(smoke: boolean): Promise<Sample[]> {
  const n = smoke ? 20_000 : Number(process.env.AWG_BENCH_SET_SIZE ?? 73_000);
  const rounds = smoke ? 1 : Number(process.env.AWG_BENCH_ROUNDS ?? 5);
  const elements = Array.from({ length: n }, (_, i) => {
    const a = i * 4;
    return `10.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}/30`;
  });
  const raw = intervalElements(elements);
  await sweepStaleNetns();
  const ns = await createNetns('nfn');
  const wakes: string[] = [];
  const cases = ['no listener, bare writer', 'watch, product set kernel', 'watch, bare writer'];
  const ms: Record<string, number[]> = Object.fromEntries(cases.map((c) => [c, []]));
  const lost: Record<string, number> = Object.fromEntries(cases.map((c) => [c, 0]));
  const load0 = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  let others = 0;
  try {
    const kernel = await nativeSetKernel(ns);
    others = nftListeners();
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [...cases].reverse() : cases;
      for (const c of order) {
        await nsExec(ns, 'nft', [
          `add table inet ${TABLE}; add set inet ${TABLE} s { type ipv4_addr; flags interval; }`,
        ]);
        const watch = c.startsWith('watch')
          ? await watchLinuxNetwork({
              onChange: (d) => wakes.push(d),
              isEcho: () => false,
              claims: () => ({ linkPrefix: 'awgn', routeProtocol: 252, nftTable: TABLE }),
              netns: ns,
            })
          : undefined;
        wakes.length = 0;
        const t0 = process.hrtime.bigint();
        if (c === 'watch, product set kernel') kernel.fill(TABLE, 's', elements);
        else {
          const w = openSetWriter({ table: TABLE, netns: ns });
          try {
            w.write(NFT_MSG_NEWSETELEM, 's', raw);
          } finally {
            w.close();
          }
        }
        ms[c]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
        // let the watch read what reached it (a round trip through the loop), then count
        await new Promise((res) => setTimeout(res, 200));
        if (wakes.some((d) => d.includes('events lost'))) lost[c]!++;
        await watch?.close();
        await nsExec(ns, 'nft', ['delete', 'table', 'inet', TABLE]);
      }
    }
  } finally {
    await destroyNetns(ns);
  }
  // the smoke's point: the product's load never overruns the watch (netns nft-watch-quiet.test.ts
  // proves it with a foreign change as the synchronisation point)
  if (lost['watch, product set kernel'])
    throw new Error(`a set load through the product's set kernel overran the network watch`);
  const load1 = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const note = `${n.toLocaleString('en')} elements; NFNLGRP_NFTABLES listeners elsewhere on the host at the start: ${others}; load ${load0} → ${load1}`;
  return cases.map((c) => ({
    name: `set load of ${n.toLocaleString('en')} intervals, ${c} (runs with an events-lost wake: ${lost[c]}/${rounds})`,
    unit: 'ms',
    runs: ms[c]!,
    median: median(ms[c]!),
    note,
  }));
}

if (process.argv[1]?.endsWith('nft-notify.bench.ts')) {
  const { printSamples, machine } = await import('./lib.js');
  console.log(`machine: ${machine()}`);
  printSamples('nft-notify', await nftNotifyBench(process.argv.includes('--smoke')));
}
