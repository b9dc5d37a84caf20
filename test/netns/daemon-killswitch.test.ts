/**
 * The daemon and the kill switch across crashes and restarts, against the real kernel:
 * - SIGKILL with the kill switch on: underlay traffic stays blocked (UDP and TCP probes);
 * - restart: only the engine (which died with the process) is created again, nothing else
 *   changes, and the tunnel carries traffic again;
 * - SIGTERM with the kill switch on: the nft table stays, everything else is removed;
 *   `awg down` then opens the host;
 * - someone else's `nft flush ruleset` (a `systemctl restart nftables`) or a deleted rule of
 *   ours, also right behind our own run: the nf_tables notifications wake the loop, which puts
 *   the table back (the drift timer is ten minutes away); a table of someone else's wakes
 *   nothing;
 * - adoption: a tunnel brought up by `awg apply` (detached engine) is taken over by
 *   `awg up` with a plan of no changes; the detached engine process is gone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  nftTable,
  show,
  tcpReachable,
  udpReachable,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import { destroyNetns, nsExec, requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import {
  createDaemonTopology,
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

describe.skipIf(skip)('daemon with the kill switch: crash, restart, adoption', () => {
  let t: Topology;
  let ce: AwgEnv;
  let pe: AwgEnv;
  let k: Keys;
  let up: Up | undefined;

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await createDaemonTopology('dk');
    pe = makeAwgEnv();
    k = newKeys();
    await startPeer(t, pe, k);
  }, 60_000);

  afterEach(async () => {
    await up?.proc.kill(3000);
    up = undefined;
    if (ce) await awg(t.client, ce, ['down']).catch(() => undefined);
    cleanupAwgEnv(ce);
  });

  afterAll(async () => {
    if (t) await awg(t.peer, pe, ['down']).catch(() => undefined);
    if (t) await destroyNetns(t.client);
    if (t) await destroyNetns(t.peer);
    cleanupAwgEnv(pe);
  });

  const underlayOpen = async (port: number) => ({
    udp: await udpReachable(t.client, t.peer, PEER_UNDERLAY, port),
    tcp: await tcpReachable(t.client, t.peer, PEER_UNDERLAY, port),
  });

  it('SIGKILL keeps traffic blocked; restart re-creates only the engine and the tunnel returns; SIGTERM keeps the nft table', async () => {
    ce = makeAwgEnv();
    // the endpoint is the peer's veth address: the kill switch admits only the configured
    // endpoint, and a peer answering from another of its addresses would roam out of the
    // allowed set (our own replies leave from the address we were reached at)
    const cfg = writeConfig(
      ce,
      'client.yaml',
      clientConfig(k, { killSwitch: true, endpoint: PEER_UNDERLAY }),
    );
    // control: the probes pass without awg
    expect(await underlayOpen(9101)).toEqual({ udp: true, tcp: true });

    up = startUp(t.client, ce, cfg);
    await up.waitEvent(converged);
    expect(await nftTable(t.client, 'awg')).toBeDefined();
    expect(await underlayOpen(9102)).toEqual({ udp: false, tcp: false });
    await eventually(
      () => tcpReachable(t.client, t.peer, PEER_TUN, 9103),
      'tunnel traffic with the kill switch on',
    ).catch(async (e: Error) => {
      const diag = [
        await nftTable(t.client, 'awg'),
        (await nsExec(t.client, 'ip', ['route'])).stdout,
        (await nsExec(t.client, 'ss', ['-uapn'])).stdout,
        up?.proc.output(),
      ];
      throw new Error(`${e.message}\n${diag.join('\n----\n')}`);
    });

    up.proc.child.kill('SIGKILL');
    await up.proc.exited;
    up = undefined;
    expect(await nftTable(t.client, 'awg')).toBeDefined();
    expect(await underlayOpen(9104)).toEqual({ udp: false, tcp: false });
    expect(await tcpReachable(t.client, t.peer, PEER_TUN, 9105)).toBe(false);

    up = startUp(t.client, ce, cfg);
    const first = await up.waitEvent((e) => e.type === 'reconcile-finished');
    expect(first, up.proc.output()).toMatchObject({
      reason: 'start',
      outcome: 'converged',
      summary: { create: 1, update: 0, replace: 0, delete: 0 },
    });
    const mutations = up.proc
      .output()
      .split('\n')
      .filter((l) => l.includes('"mutation"'));
    expect(mutations, mutations.join('\n')).toHaveLength(1);
    expect(mutations[0]).toContain('[engine] start vpn');
    await eventually(
      () => tcpReachable(t.client, t.peer, PEER_TUN, 9106),
      'tunnel traffic after the restart',
    );
    expect(await underlayOpen(9107)).toEqual({ udp: false, tcp: false });

    up.proc.child.kill('SIGTERM');
    expect(await up.proc.exited, up.proc.output()).toBe(0);
    up = undefined;
    expect(await nftTable(t.client, 'awg')).toBeDefined();
    expect(
      (await nsExec(t.client, 'ip', ['link', 'show', 'awg-vpn'], { allowFail: true })).code,
    ).not.toBe(0);
    expect(await underlayOpen(9108)).toEqual({ udp: false, tcp: false });

    const d = await awg(t.client, ce, ['down']);
    expect(d.code, show(d)).toBe(0);
    expect(await nftTable(t.client, 'awg')).toBeUndefined();
    expect(await underlayOpen(9109)).toEqual({ udp: true, tcp: true });
  }, 120_000);

  /** the daemon's report that it put our table back, at or after event `from` */
  const tableRepaired = (from: number) =>
    up!.waitEvent(
      (e) => e.type === 'drift' && e.repaired && e.ids.includes('firewall/inet/awg'),
      from,
    );
  /** our table's output chain as `nft` lists it */
  const filterOut = async (flags: string[] = []) =>
    (await nsExec(t.client, 'nft', [...flags, 'list', 'chain', 'inet', 'awg', 'filter_out']))
      .stdout;

  it('a ruleset flush by someone else (`systemctl restart nftables`) or an edit of our table is repaired at once, not at the drift timer', async () => {
    ce = makeAwgEnv();
    const cfg = writeConfig(
      ce,
      'client.yaml',
      clientConfig(k, { killSwitch: true, endpoint: PEER_UNDERLAY }),
    );
    // the drift timer is ten minutes away: only the nf_tables notifications can wake the loop
    up = startUp(t.client, ce, cfg, ['--drift-interval', '600']);
    await up.waitEvent(converged);
    expect(await underlayOpen(9111)).toEqual({ udp: false, tcp: false });

    const from = up.mark();
    const flushedAt = Date.now();
    await nsExec(t.client, 'nft', ['flush', 'ruleset']);
    const woke = await up.waitEvent((e) => e.type === 'network-changed', from);
    expect(woke).toMatchObject({
      detail: expect.stringMatching(/^nftables: \w+ inet awg \(netlink port \d+\)$/),
    });
    const repaired = await tableRepaired(from);
    // for the log (no timed assertion): how long the flushed kill switch stayed open
    console.log(
      `kill switch table back ${Date.parse(repaired.at) - flushedAt} ms after the flush (woken ${Date.parse(woke.at) - flushedAt} ms after)`,
    );
    expect(await nftTable(t.client, 'awg')).toBeDefined();

    // someone else's edit right behind our own run, inside the window in which our own
    // changes echo back: told apart by the notification's port (our nft's pid), it wakes too
    const finished = await up.waitEvent((e) => e.type === 'reconcile-finished', from);
    const from1 = up.mark();
    const editedAt = Date.now();
    await nsExec(t.client, 'nft', ['flush', 'chain', 'inet', 'awg', 'filter_out']);
    expect(
      editedAt - Date.parse(finished.at),
      'the edit must land inside the echo window (750 ms after our run) to test it',
    ).toBeLessThan(700);
    const woke1 = await up.waitEvent((e) => e.type === 'network-changed', from1);
    console.log(
      `our chain flushed ${editedAt - Date.parse(finished.at)} ms after our run ended; woken ${Date.parse(woke1.at) - editedAt} ms after`,
    );
    expect(woke1).toMatchObject({
      detail: expect.stringMatching(/^nftables: delrule inet awg \(netlink port \d+\)$/),
    });
    await tableRepaired(from1);
    expect(await filterOut()).toContain('comment "kill-switch"');
    expect(await underlayOpen(9112)).toEqual({ udp: false, tcp: false });

    // one rule of ours deleted (here: the kill switch's last drop) is drift as well
    const from2 = up.mark();
    const listed = await filterOut(['-a']);
    const handle = /comment "kill-switch" # handle (\d+)/.exec(listed)?.[1];
    expect(handle, listed).toBeDefined();
    await nsExec(t.client, 'nft', [
      'delete',
      'rule',
      'inet',
      'awg',
      'filter_out',
      'handle',
      handle!,
    ]);
    await tableRepaired(from2);
    expect(await filterOut()).toContain('comment "kill-switch"');
    // our own replaces (three repairs) woke nothing: only the three edits above did
    expect(
      up
        .events()
        .slice(from)
        .filter((e) => e.type === 'network-changed' && e.detail.startsWith('nftables'))
        .map((e) => (e as { detail: string }).detail.replace(/\d+/, 'N')),
    ).toEqual([
      'nftables: delrule inet awg (netlink port N)',
      'nftables: delrule inet awg (netlink port N)',
      'nftables: delrule inet awg (netlink port N)',
    ]);
    // a table of someone else's changes nothing
    const from3 = up.mark();
    await nsExec(t.client, 'nft', ['add', 'table', 'ip', 'theirs']);
    await new Promise((r) => setTimeout(r, 1000));
    expect(
      up
        .events()
        .slice(from3)
        .filter((e) => e.type === 'network-changed'),
    ).toEqual([]);
    await nsExec(t.client, 'nft', ['delete', 'table', 'ip', 'theirs']);
  }, 90_000);

  it('adopts a tunnel brought up by `awg apply` with a plan of no changes', async () => {
    ce = makeAwgEnv();
    const cfg = writeConfig(ce, 'client.yaml', clientConfig(k));
    const a = await awg(t.client, ce, ['apply', '-f', cfg]);
    expect(a.code, show(a)).toBe(0);
    const rec = JSON.parse(readFileSync(join(ce.stateDir, 'engine-vpn.json'), 'utf8')) as {
      pid: number;
    };
    expect(() => process.kill(rec.pid, 0)).not.toThrow();

    up = startUp(t.client, ce, cfg);
    const first = await up.waitEvent((e) => e.type === 'reconcile-finished');
    expect(first, up.proc.output()).toMatchObject({
      reason: 'start',
      outcome: 'unchanged',
      summary: { create: 0, update: 0, replace: 0, delete: 0 },
    });
    await eventually(async () => {
      try {
        process.kill(rec.pid, 0);
        return false;
      } catch {
        return true;
      }
    }, 'the detached engine has exited');
    const mutations = up.proc
      .output()
      .split('\n')
      .filter((l) => l.includes('"mutation"'));
    expect(mutations.join('\n')).toContain('[engine] adopt vpn');
    expect(mutations.filter((m) => !m.includes('engine'))).toEqual([]);
    await eventually(
      () => tcpReachable(t.client, t.peer, PEER_TUN, 9110),
      'tunnel traffic through the adopted engine',
    );
  }, 90_000);
});
