/**
 * The daemon's process watcher and fallback switching against the real kernel:
 * - a process whose executable matches a rule is moved into `<root>/<rule>` (the watcher's
 *   connector socket is opened in the initial namespace and handed over as fd 3);
 * - stopping the peer makes the tunnel `down` after `downAfter`; the allow-direct rule's
 *   cgroup is then accepted unmarked and the block rule's dropped (nft table);
 * - bringing the peer back: the daemon's probes get an answer, the tunnel is `up` and both
 *   rules mark into the tunnel again.
 * Cgroups: a private root (AWG_CGROUP_ROOT=awgt-…), removed afterwards.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { close } from '../../src/native/libc.js';
import { cgroupOf as procCgroup, runProgram } from '../helpers/procs.js';

/** the matched programs, named for this run (runProgram) */
const TUNAPP = runProgram('awgt-tunapp');
const BLKAPP = runProgram('awgt-blkapp');
import { openConnectorSocket } from '../../src/procs/connector.js';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  nftTable,
  show,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  destroyNetns,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import {
  createDaemonTopology,
  PEER_UNDERLAY,
  clientConfig,
  converged,
  eventually,
  newKeys,
  startPeer,
  startUp,
  type Keys,
  type Topology,
  type Up,
} from './daemon-support.js';

const skip = requireNetnsPrereqs(['nft']);

const cgroupOf = (pid: number) => procCgroup(pid) ?? '';
/** the nft statement of an app rule: mark / accept / drop */
function appVerdict(table: string, rule: string): string {
  const lines = table.split('\n').filter((l) => l.includes(`comment "app/${rule}"`));
  if (lines.some((l) => l.includes('meta mark set'))) return 'mark';
  if (lines.some((l) => /counter packets \d+ bytes \d+ drop|\bdrop\b/.test(l))) return 'drop';
  if (lines.some((l) => l.includes('accept'))) return 'direct';
  return `missing:\n${table}`;
}

describe.skipIf(skip)('daemon: rule placement and fallbacks', () => {
  let t: Topology;
  let ce: AwgEnv;
  let pe: AwgEnv;
  let k: Keys;
  let up: Up | undefined;
  let fd = -1;
  const apps: NsProcess[] = [];

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await createDaemonTopology('dp');
    pe = makeAwgEnv();
    ce = makeAwgEnv();
    k = newKeys();
    await startPeer(t, pe, k);
    fd = openConnectorSocket();
  }, 60_000);

  afterAll(async () => {
    for (const a of apps) await a.kill(500);
    await up?.proc.kill(3000);
    if (t) await awg(t.client, ce, ['down']).catch(() => undefined);
    if (t) await awg(t.peer, pe, ['down']).catch(() => undefined);
    if (fd >= 0) close(fd);
    if (t) await destroyNetns(t.client);
    if (t) await destroyNetns(t.peer);
    cleanupAwgEnv(ce);
    cleanupAwgEnv(pe);
  });

  it('places matching processes, switches allow-direct/block when the peer stops and back when it returns', async () => {
    const appDir = join(ce.dir, 'apps');
    mkdirSync(appDir);
    copyFileSync('/bin/sleep', join(appDir, TUNAPP));
    copyFileSync('/bin/sleep', join(appDir, BLKAPP));
    const base = clientConfig(k, { keepalive: 1, endpoint: PEER_UNDERLAY });
    const yaml =
      base.replace('    peers:\n', '    downAfter: 2\n    peers:\n') +
      `rules:
  - name: tun
    match: { name: ${TUNAPP} }
    target: vpn
    fallback: allow-direct
  - name: blk
    match: { name: ${BLKAPP} }
    target: vpn
    fallback: block
`;
    const cfg = writeConfig(ce, 'client.yaml', yaml);
    up = startUp(t.client, ce, cfg, [], { connectorFd: fd });
    await up.waitEvent(converged);
    await up.waitEvent((e) => e.type === 'tunnel' && e.state === 'up');

    // a process started after the daemon: placed by the watcher on exec
    const a = nsSpawn(t.client, join(appDir, TUNAPP), ['300']);
    const b = nsSpawn(t.client, join(appDir, BLKAPP), ['300']);
    apps.push(a, b);
    await eventually(
      async () =>
        cgroupOf(a.pid).endsWith(`/${ce.cgroupRoot}/tun`) &&
        cgroupOf(b.pid).endsWith(`/${ce.cgroupRoot}/blk`),
      `apps placed (now ${cgroupOf(a.pid)}, ${cgroupOf(b.pid)})\n${up.proc.output()}`,
    );
    let table = (await nftTable(t.client, 'awg'))!;
    expect([appVerdict(table, 'tun'), appVerdict(table, 'blk')]).toEqual(['mark', 'mark']);

    // peer gone: the keepalives go unanswered → handshake pending → down after 2 s
    const from = up.mark();
    const d = await awg(t.peer, pe, ['down']);
    expect(d.code, show(d)).toBe(0);
    await up.waitEvent(
      (e) => e.type === 'tunnel' && e.tunnel === 'vpn' && e.state === 'down',
      from,
      60_000,
    );
    await eventually(async () => {
      table = (await nftTable(t.client, 'awg'))!;
      return appVerdict(table, 'tun') === 'direct' && appVerdict(table, 'blk') === 'drop';
    }, 'fallbacks in the firewall');

    // peer back: the daemon's probe handshakes succeed
    const from2 = up.mark();
    await startPeer(t, pe, k);
    await up.waitEvent(
      (e) => e.type === 'tunnel' && e.tunnel === 'vpn' && e.state === 'up',
      from2,
      60_000,
    );
    await eventually(async () => {
      table = (await nftTable(t.client, 'awg'))!;
      return appVerdict(table, 'tun') === 'mark' && appVerdict(table, 'blk') === 'mark';
    }, 'rules mark into the tunnel again');
    // placement survived the switching: nobody was moved
    expect(cgroupOf(a.pid)).toMatch(new RegExp(`/${ce.cgroupRoot}/tun$`));
  }, 180_000);
});
