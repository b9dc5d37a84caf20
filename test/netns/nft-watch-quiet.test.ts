/**
 * The daemon's network watch against awg's own large set loads (native/nftnl.ts
 * withoutOwnNftNotifications): the kernel builds one nf_tables notification per element while
 * anything listens, and 20,000 of them overran the watch's socket, which then woke the loop
 * for a full re-observation after every large load of its own. Through the product's set
 * kernel (resources/firewall/set-kernel.ts) the watch leaves its group during the load: no
 * wake at all, and a foreign change right after it wakes as it should (the watch is back).
 * The control, the same load through a bare set writer, still overruns (a lost-events wake):
 * the test would fail if the load were too small to show the difference.
 *
 * The foreign changes are made by an `nft` started with node's own child_process: one started
 * through the product's exec would count as this process's own (util/exec.ts spawnedRecently).
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { NFT_MSG_NEWSETELEM, intervalElements, openSetWriter } from '../../src/native/nftset.js';
import { nativeSetKernel } from '../../src/resources/firewall/set-kernel.js';
import { watchLinuxNetwork } from '../../src/resources/monitor/linux.js';
import { netnsPath, nsExec, requireNetnsPrereqs, useNetns } from '../helpers/netns.js';
import { waitFor } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft']);
const TABLE = 'awgq';
const N = 20_000;

/** N disjoint /30s: 10.x.y.z/30 */
const elements = (base: number) =>
  Array.from({ length: N }, (_, i) => {
    const a = base + i * 4;
    return `10.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}/30`;
  });

describe.skipIf(skip)('the nf_tables watch and our own large set loads', () => {
  const ns = useNetns('nftq');
  /** a change by another program (not one this process started through its exec) */
  const foreign = (elem: string) =>
    execFileSync('nsenter', [
      `--net=${netnsPath(ns.name)}`,
      '--',
      'nft',
      'add',
      'element',
      'inet',
      TABLE,
      'f4',
      `{ ${elem} }`,
    ]);

  it('a load through the set kernel wakes nothing; a foreign change after it wakes; a bare writer overruns', async () => {
    await nsExec(ns.name, 'nft', ['-f', '-'], {
      input: `table inet ${TABLE} {
  set d4 { type ipv4_addr; flags interval; }
  set c4 { type ipv4_addr; flags interval; }
  set f4 { type ipv4_addr; flags interval; }
}
`,
    });
    const wakes: string[] = [];
    const watch = await watchLinuxNetwork({
      onChange: (d) => wakes.push(d),
      isEcho: () => false,
      claims: () => ({ linkPrefix: 'awgq', routeProtocol: 252, nftTable: TABLE }),
      netns: ns.name,
    });
    try {
      const kernel = await nativeSetKernel(ns.name);
      kernel.fill(TABLE, 'd4', elements(0));
      kernel.update(TABLE, 'd4', elements(0).slice(0, N / 2), elements(N * 4).slice(0, N / 2));
      foreign('192.0.2.1');
      await waitFor('the foreign change', () => wakes.length > 0);
      expect(wakes).toHaveLength(1);
      expect(wakes[0]).toMatch(
        new RegExp(`^nftables: newsetelem inet ${TABLE} \\(netlink port \\d+\\)$`),
      );
      // the control: the same size through a bare writer (its own port: skipped, but overrun)
      wakes.length = 0;
      const w = openSetWriter({ table: TABLE, netns: ns.name });
      try {
        w.write(NFT_MSG_NEWSETELEM, 'c4', intervalElements(elements(0)));
      } finally {
        w.close();
      }
      // the lost events wake (a foreign change now could itself be dropped: the socket's
      // buffer is full of the load's notifications)
      await waitFor('the overrun of the bare load', () =>
        wakes.includes('nftables events lost: full re-observation'),
      );
      const listed = await nsExec(ns.name, 'nft', ['-j', 'list', 'set', 'inet', TABLE, 'd4']);
      expect(listed.stdout).toContain('"len": 30');
    } finally {
      await watch.close();
    }
  });
});
