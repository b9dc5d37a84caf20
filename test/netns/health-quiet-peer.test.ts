/**
 * Tunnel health with a peer whose kernel does not forward (docs/architecture.md, "Tunnel
 * health", the data probe), against the real product (`awg up` from dist/) and a peer served
 * by `awg apply` in a namespace of its own, `net.ipv4.ip_forward = 0` (a plain host, as a
 * site-to-site peer or a git server at the far end of a tunnel is):
 * - data of ours the peer never answers (a ping to an address of the tunnel's prefix that no
 *   host has: the peer drops it without a word) starts the unanswered series;
 * - the daemon's data probe goes to TEST-NET, which such a kernel drops without a word too,
 *   and to the peer's endpoint address, which it takes as its own and answers at once
 *   ("protocol 253 unreachable", seen by tcpdump on the peer's tunnel link);
 * - so the tunnel stays up: no `tunnel` down event past the one-way bound (12 s). Before the
 *   second probe this peer's tunnel went down (no-data) after every such send, and after the
 *   last ACK of every TCP connection, and came back 10-20 s later (fleet-rollout caught it:
 *   a good revision rejected because its tunnel was "not up").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import {
  createDaemonTopology,
  clientConfig,
  eventually,
  newKeys,
  startPeer,
  startUp,
  type Keys,
  type Topology,
  type Up,
} from './daemon-support.js';

const skip = requireNetnsPrereqs(['tcpdump', 'ping', 'sysctl']);

/** in the tunnel's prefix (10.200.50.0/24), on no host: the peer drops it (forwarding off) */
const NOBODY = '10.200.50.99';
/** NO_DATA_ONE_WAY_MS (src/daemon/data-path.ts) and two health ticks */
const PAST_BOUND_MS = 12_000 + 2_000;

describe.skipIf(skip)('tunnel health with a peer that does not forward', () => {
  let t: Topology;
  let ce: AwgEnv;
  let pe: AwgEnv;
  let k: Keys;
  let up: Up | undefined;
  let dump: NsProcess | undefined;

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await createDaemonTopology('hq');
    ce = makeAwgEnv();
    pe = makeAwgEnv();
    k = newKeys();
    await startPeer(t, pe, k);
  }, 60_000);

  afterAll(async () => {
    await dump?.kill(2000);
    await up?.proc.kill(3000);
    if (t) await awg(t.peer, pe, ['down']).catch(() => undefined);
    if (t) await destroyNetns(t.client);
    if (t) await destroyNetns(t.peer);
    cleanupAwgEnv(ce);
    cleanupAwgEnv(pe);
  });

  it('data the peer never answers: the probe to its endpoint address is answered, the tunnel stays up', async () => {
    const fwd = await nsExec(t.peer, 'sysctl', ['-n', 'net.ipv4.ip_forward']);
    expect(fwd.stdout.trim()).toBe('0');
    const cfg = writeConfig(ce, 'client.yaml', clientConfig(k, { keepalive: 5 }));
    up = startUp(t.client, ce, cfg);
    await up.waitEvent((e) => e.type === 'tunnel' && e.state === 'up', 0, 60_000);
    dump = nsSpawn(t.peer, 'tcpdump', ['-i', 'awg-srv', '-n', '-l', 'icmp']);
    await eventually(async () => dump!.output().includes('listening on'), 'tcpdump listens');
    const from = up.mark();
    const r = await nsExec(t.client, 'ping', ['-c', '1', '-W', '1', NOBODY], { allowFail: true });
    expect(r.code).not.toBe(0); // nobody answers it
    // a negative, past the bound the old probe ran into (a loaded machine only makes a down
    // later, never one that should not be)
    await new Promise((res) => setTimeout(res, PAST_BOUND_MS));
    const downs = up
      .events()
      .slice(from)
      .filter((e) => e.type === 'tunnel' && e.state !== 'up');
    expect(downs, JSON.stringify(downs)).toEqual([]);
    // what answered: the peer's kernel, for the probe to its endpoint address (the daemon
    // probes after 2 s unanswered)
    expect(dump.output()).toMatch(/> 10\.200\.50\.1: ICMP .*protocol 253 unreachable/);
    // and the tunnel carries data as before
    const ping = await nsExec(t.client, 'ping', ['-c', '1', '-W', '2', '10.200.50.2'], {
      allowFail: true,
    });
    expect(ping.code).toBe(0);
  }, 120_000);
});
