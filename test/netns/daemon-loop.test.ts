/**
 * `awg up` against the real kernel: the loop converges on start, follows config edits
 * (in-place write, atomic rename, an invalid edit keeps the last good state), repairs our
 * link taken admin-down (its IPv4 routes vanish without events), and survives underlay
 * changes (default route deleted and re-added, the address changed, the veth flapped):
 * traffic flows through the tunnel again in both directions. SIGTERM leaves the host as
 * `awg down` would. The peer is another awg (`awg apply`) in a second namespace.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  ipRoutes,
  makeAwgEnv,
  nftTable,
  show,
  tcpReachable,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import { destroyNetns, nsExec, requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import { parseGet, uapiGet } from '../../src/resources/engine/uapi-client.js';
import {
  createDaemonTopology,
  CLIENT_TUN,
  PEER_TUN,
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

const skip = requireNetnsPrereqs(['nft', 'sysctl']);

describe.skipIf(skip)('daemon loop (awg up) in namespaces', () => {
  let t: Topology;
  let ce: AwgEnv;
  let pe: AwgEnv;
  let k: Keys;
  let up: Up | undefined;
  let cfg: string;

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await createDaemonTopology('dl');
    ce = makeAwgEnv();
    pe = makeAwgEnv();
    k = newKeys();
    await startPeer(t, pe, k);
    cfg = writeConfig(ce, 'client.yaml', clientConfig(k));
  }, 60_000);

  afterAll(async () => {
    await up?.proc.kill(3000);
    if (t) await awg(t.peer, pe, ['down']).catch(() => undefined);
    if (t) await destroyNetns(t.client);
    if (t) await destroyNetns(t.peer);
    cleanupAwgEnv(ce);
    cleanupAwgEnv(pe);
  });

  const peerEndpoint = async () => {
    const got = parseGet(await uapiGet(join(pe.env.AWG_UAPI_DIR!, 'awg-srv.sock')));
    return String(got.peers[0]?.endpoint ?? '');
  };
  /**
   * The run that applied the edit: after the watcher's `config-changed`, the first
   * reconcile-finished since `from` that was not "unchanged". Its wake reason may be another
   * (every run re-reads the config): a run already under way when the file changed read the old
   * one and finds nothing to do, and a run that began after the write but before the watcher's
   * event applies it before that event. An invalid edit: the first run after the event.
   */
  const runAfterChange = async (valid: boolean, from: number) => {
    await up!.waitEvent((e) => e.type === 'config-changed' && e.valid === valid, from);
    if (valid)
      return up!.waitEvent(
        (e) => e.type === 'reconcile-finished' && e.outcome !== 'unchanged',
        from,
      );
    const at = up!
      .events()
      .findIndex((e, i) => i >= from && e.type === 'config-changed' && e.valid === valid);
    return up!.waitEvent((e) => e.type === 'reconcile-finished', at + 1);
  };
  const tableRoutes = async () =>
    (await ipRoutes(t.client, 4))
      .filter((r) => Number(r.table) >= 52000 && Number(r.table) < 52100 && (r.type ?? '1') === '1')
      .map((r) => r.dst)
      .sort();

  it('converges on start and carries traffic', async () => {
    up = startUp(t.client, ce, cfg);
    const e = await up.waitEvent(converged);
    expect(e).toMatchObject({ reason: 'start' });
    expect(await tableRoutes()).toEqual(['10.200.50.0/24']);
    await eventually(
      () => tcpReachable(t.client, t.peer, PEER_TUN, 8081),
      'client → peer through the tunnel',
    );
  }, 60_000);

  it('applies an in-place config edit, visible as events', async () => {
    const from = up!.mark();
    writeFileSync(cfg, clientConfig(k, { extraAllowed: ['10.200.51.0/24'] }));
    expect(await runAfterChange(true, from)).toMatchObject({ outcome: 'converged' });
    expect(await tableRoutes()).toEqual(['10.200.50.0/24', '10.200.51.0/24']);
  }, 30_000);

  it('follows an atomic-rename save (editors, git checkout)', async () => {
    const from = up!.mark();
    const tmp = join(ce.dir, '.client.yaml.swp');
    writeFileSync(tmp, clientConfig(k, { extraAllowed: ['10.200.52.0/24'] }));
    renameSync(tmp, cfg);
    expect(await runAfterChange(true, from)).toMatchObject({ outcome: 'converged' });
    expect(await tableRoutes()).toEqual(['10.200.50.0/24', '10.200.52.0/24']);
  }, 30_000);

  it('an invalid edit keeps the last good state and reports it; fixing it converges', async () => {
    const from = up!.mark();
    writeFileSync(cfg, 'version: 1\ntunnels: [this is not a map\n');
    await runAfterChange(false, from);
    await up!.waitEvent((e) => e.type === 'error' && e.kind === 'invalid-config', from);
    expect(await tableRoutes()).toEqual(['10.200.50.0/24', '10.200.52.0/24']);
    const from2 = up!.mark();
    writeFileSync(cfg, clientConfig(k));
    expect(await runAfterChange(true, from2)).toMatchObject({ outcome: 'converged' });
    expect(await tableRoutes()).toEqual(['10.200.50.0/24']);
  }, 30_000);

  it('repairs our link taken admin-down (its routes vanish silently)', async () => {
    const from = up!.mark();
    await nsExec(t.client, 'ip', ['link', 'set', 'awg-vpn', 'down']);
    await up!.waitEvent((e) => e.type === 'network-changed', from);
    await up!.waitEvent(
      (e) => e.type === 'drift' && e.repaired && e.ids.includes('link/awg-vpn'),
      from,
    );
    expect(await tableRoutes()).toEqual(['10.200.50.0/24']);
    await eventually(
      () => tcpReachable(t.client, t.peer, PEER_TUN, 8082),
      'client → peer after the repair',
    );
  }, 30_000);

  it('underlay: default route deleted and re-added → re-converges, traffic flows again', async () => {
    const from = up!.mark();
    await nsExec(t.client, 'ip', ['route', 'del', 'default']);
    await up!.waitEvent(
      (e) => e.type === 'network-changed' && String(e.detail).includes('0.0.0.0/0'),
      from,
    );
    await nsExec(t.client, 'ip', ['route', 'add', 'default', 'via', PEER_UNDERLAY]);
    await up!.waitEvent(
      (e) => e.type === 'network-changed' && String(e.detail).includes('newroute 0.0.0.0/0'),
      from,
    );
    await up!.waitEvent(
      (e) => e.type === 'reconcile-finished' && (e.reason === 'network' || e.reason === 'engine'),
      from,
    );
    await eventually(
      () => tcpReachable(t.client, t.peer, PEER_TUN, 8083),
      'client → peer after the route came back',
    );
  }, 40_000);

  it('underlay: the client address changes → the daemon re-announces itself, the peer reaches us again', async () => {
    // the client config has no persistent keepalive: only the daemon's kick after the
    // network change tells the peer our new source address
    await eventually(
      () => tcpReachable(t.peer, t.client, CLIENT_TUN, 8084),
      'peer → client before the change',
    );
    const from = up!.mark();
    await nsExec(t.client, 'ip', ['addr', 'del', '10.200.9.1/24', 'dev', t.clientIf]);
    await nsExec(t.client, 'ip', ['addr', 'add', '10.200.9.3/24', 'dev', t.clientIf]);
    await nsExec(t.client, 'ip', ['route', 'replace', 'default', 'via', PEER_UNDERLAY]);
    await up!.waitEvent(
      (e) => e.type === 'reconcile-finished' && (e.reason === 'network' || e.reason === 'engine'),
      from,
    );
    // No test traffic yet: the peer learns the new address from the daemon's keepalive. The
    // bound is the protocol's, not a latency goal: without the kick the first packet from us
    // is the passive keepalive, KEEPALIVE_TIMEOUT (10 s) after the last data received.
    await eventually(
      async () => (await peerEndpoint()).startsWith('10.200.9.3:'),
      'the peer sees the new client address before any WireGuard timer fires',
      8000,
    );
    await eventually(
      () => tcpReachable(t.peer, t.client, CLIENT_TUN, 8085),
      'peer → client at the new address',
    );
  }, 40_000);

  it('underlay: the veth flaps → re-converges, traffic flows again', async () => {
    const from = up!.mark();
    await nsExec(t.client, 'ip', ['link', 'set', t.clientIf, 'down']);
    await up!.waitEvent((e) => e.type === 'network-changed', from);
    await nsExec(t.client, 'ip', ['link', 'set', t.clientIf, 'up']);
    // the kernel dropped the default route with the link, as a DHCP client would re-add it
    await nsExec(t.client, 'ip', ['route', 'replace', 'default', 'via', PEER_UNDERLAY]);
    await up!.waitEvent(
      (e) =>
        e.type === 'reconcile-finished' &&
        (e.reason === 'network' || e.reason === 'engine') &&
        (e.outcome === 'unchanged' || e.outcome === 'converged'),
      from,
    );
    await eventually(
      () => tcpReachable(t.client, t.peer, PEER_TUN, 8086),
      'client → peer after the flap',
    );
    await eventually(
      () => tcpReachable(t.peer, t.client, CLIENT_TUN, 8087),
      'peer → client after the flap',
    );
  }, 40_000);

  it('SIGTERM leaves the host as awg down would (no kill switch)', async () => {
    up!.proc.child.kill('SIGTERM');
    const code = await up!.proc.exited;
    expect(code, up!.proc.output()).toBe(0);
    expect(await tableRoutes()).toEqual([]);
    expect(
      (await nsExec(t.client, 'ip', ['link', 'show', 'awg-vpn'], { allowFail: true })).code,
    ).not.toBe(0);
    expect(await nftTable(t.client, 'awg')).toBeUndefined();
    const st = await awg(t.client, ce, ['status', '--json']);
    expect(st.json<{ state: string; objects: unknown[] }>(), show(st)).toMatchObject({
      state: 'down',
      objects: [],
    });
    up = undefined;
  }, 30_000);
});
