/**
 * A host without a default route (model/unrouted.ts; docs/platform-linux.md, "Hosts without
 * a default route"), against the real product (dist/):
 *
 *   client .3 ────── 10.200.71.0/24 ────── .2 peer1 .1 ────── 10.200.73.0/24 ────── .2 server
 *   (awg; only the connected LAN,             awg peer (WireGuard,                HTTP + UDP echo,
 *    no default route)                        listenPort 51820),                  reply with the
 *                                             forwards, no NAT                    source they see
 *
 *   tunnel t1: client 10.200.81.2/32 ⇄ peer1 10.200.81.1/24 (endpoint 10.200.71.2:51820 on the LAN)
 *
 * The server is outside the client's LAN: without awg the client has no route to it at all.
 * - full tunnel (`default: t1`, 0.0.0.0/0, kill switch on; one-shot `awg apply`): an app
 *   reaches the server through t1 (TCP and UDP); `awg exec --direct` fails with "no route"
 *   as it would without awg; status explains; a second apply changes nothing; `awg down`
 *   leaves the namespace as it was;
 * - split tunnel and a per-app rule (`awg daemon`, placement by executable): the rule's app
 *   reaches the server through t1's prefix, `awg exec --tunnel t1` too; an unmatched app's
 *   traffic to the same address fails with no route, and tcpdump sees none of it on the LAN
 *   or in the tunnel;
 * - a default route that appears after a one-shot apply carries direct traffic at once (awg's
 *   rule ahead of its first route looks main up), and the next apply removes the first route;
 * - a SOCKS5 proxy tunnel on the LAN as the default: apps reach the server through it;
 * - a tunnel whose endpoint has no route: status and diff say why.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  snapshotHost,
  wgKeyPair,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';
import {
  ADDR,
  awgd,
  eventually,
  flowPackets,
  makeApps,
  parseProbes,
  pathOf,
  peerConfig,
  showRun,
  startAgent,
  startCapture,
  startDaemon,
  startServer,
  type Apps,
  type Keys,
  type ProbeResult,
} from './perapp-topology.js';
import { cgroupOf } from '../helpers/procs.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'tcpdump', 'ping', 'nc', 'microsocks']);

const CLIENT = '10.200.71.3';
const LAN = '10.200.71.0/24';
/** an address of the peer's network that nothing routes: an endpoint without a route */
const NOWHERE = '10.200.72.9';

interface Topology {
  client: string;
  peer: string;
  server: string;
  clientIf: string;
  keys: Keys;
  apps: Apps;
  peerEnv: AwgEnv;
  serverProc: NsProcess;
}

interface HostConditionDoc {
  kind: string;
  message: string;
  family?: number;
  reach?: string[];
  tunnel?: string;
  address?: string;
}

async function createTopology(): Promise<Topology> {
  await ensureDist();
  const made: string[] = [];
  const peerEnv = makeAwgEnv();
  const apps = makeApps();
  try {
    const client = await createNetns('nr-client');
    made.push(client);
    const peer = await createNetns('nr-peer');
    made.push(peer);
    const server = await createNetns('nr-server');
    made.push(server);
    const c = await vethPair(client, peer, { addrA: `${CLIENT}/24`, addrB: `${ADDR.peer1}/24` });
    await vethPair(peer, server, {
      addrA: `${ADDR.routerServer}/24`,
      addrB: `${ADDR.server}/24`,
    });
    await nsExec(peer, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await run('ip', ['-n', server, 'route', 'add', 'default', 'via', ADDR.routerServer]);
    const serverProc = await startServer(server, [8001, 8002, 8003]);
    const keys: Keys = {
      client1: wgKeyPair(),
      client2: wgKeyPair(),
      peer1: wgKeyPair(),
      peer2: wgKeyPair(),
    };
    const cfg = join(peerEnv.dir, 'peer.yaml');
    writeFileSync(cfg, peerConfig(1, keys));
    const r = await awgd(peer, peerEnv, ['apply', '-f', cfg, '--state-dir', peerEnv.stateDir]);
    if (r.code !== 0) throw new Error(`peer apply failed: ${showRun(r)}`);
    return { client, peer, server, clientIf: c.ifA, keys, apps, peerEnv, serverProc };
  } catch (e) {
    for (const ns of made) await destroyNetns(ns);
    cleanupAwgEnv(peerEnv);
    rmSync(apps.dir, { recursive: true, force: true });
    throw e;
  }
}

async function destroyTopology(t: Topology | undefined): Promise<void> {
  if (!t) return;
  await t.serverProc.kill(500);
  await awgd(t.peer, t.peerEnv, ['down', '--state-dir', t.peerEnv.stateDir]).catch(() => undefined);
  for (const ns of [t.client, t.peer, t.server]) await destroyNetns(ns);
  cleanupAwgEnv(t.peerEnv);
  rmSync(t.apps.dir, { recursive: true, force: true });
}

/** the client's t1: its peer's endpoint and allowed IPs */
function tunnel(k: Keys, endpoint: string, allowed: string): string {
  return `tunnels:
  t1:
    type: wireguard
    privateKey: "${k.client1.privateKey}"
    addresses: [${ADDR.tun1Client}/32]
    peers:
      - publicKey: "${k.peer1.publicKey}"
        endpoint: ${endpoint}:51820
        allowedIPs: [${allowed}]
        persistentKeepalive: 1
`;
}

/** `app probes…` started without awg in the client namespace */
async function plainProbes(t: Topology, app: string, probes: string[]): Promise<ProbeResult[]> {
  const r = await nsExec(t.client, t.apps.app(app), [t.apps.script, ...probes], {
    allowFail: true,
  });
  return parseProbes(r.stdout);
}

const failures = (ps: ProbeResult[]) => ps.filter((p) => p.ok).map((p) => `${p.probe}: ${p.from}`);

describe.skipIf(skip)('a host without a default route', () => {
  let t: Topology | undefined;

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createTopology();
  }, 180_000);

  afterAll(async () => {
    await destroyTopology(t);
  }, 120_000);

  it('full tunnel: apps reach the server through t1, direct fails with no route, status explains, a second apply is a no-op, down restores the snapshot', async () => {
    const topo = t!;
    const ce = makeAwgEnv();
    try {
      const before = await snapshotHost(topo.client, ce);
      // without awg the server has no route at all
      const bare = await plainProbes(topo, 'plain', ['tcp:8001']);
      expect(bare.map((p) => p.err)).toEqual(['ENETUNREACH']);

      const cfg = join(ce.dir, 'full.yaml');
      writeFileSync(
        cfg,
        `version: 1\n${tunnel(topo.keys, ADDR.peer1, '0.0.0.0/0')}default: t1\nkillSwitch: on\n`,
      );
      const a = await awgd(topo.client, ce, ['apply', '-f', cfg, '--state-dir', ce.stateDir]);
      expect(a.code, showRun(a)).toBe(0);
      expect(a.stderr).toContain(
        `no IPv4 default route in the main table: rules and default with target direct reach only ${LAN}`,
      );

      let seen: ProbeResult[] = [];
      await eventually(async () => {
        seen = await plainProbes(topo, 'plain', ['tcp:8001', 'udp:8001']);
        return seen.length === 2 && seen.every((p) => p.ok);
      }, 'an unmatched app reaches the server through t1').catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(seen)}`);
      });
      expect(seen.map((p) => pathOf(p.from))).toEqual(['t1', 't1']);

      const direct = await awgd(topo.client, ce, [
        'exec',
        '--direct',
        '--state-dir',
        ce.stateDir,
        '--',
        topo.apps.app('direct'),
        topo.apps.script,
        'tcp:8002',
      ]);
      expect(parseProbes(direct.stdout), showRun(direct)).toEqual([
        { probe: 'tcp:8002', ok: false, err: 'ENETUNREACH' },
      ]);

      const st = await awgd(topo.client, ce, [
        'status',
        '--direct',
        '--json',
        '--state-dir',
        ce.stateDir,
      ]);
      const doc = st.json<{ state: string; hostConditions?: HostConditionDoc[] }>();
      expect(doc.state, showRun(st)).toBe('converged');
      expect(doc.hostConditions, showRun(st)).toEqual([
        expect.objectContaining({ kind: 'no-default-route', family: 4, reach: [LAN] }),
      ]);
      const text = await awgd(topo.client, ce, ['status', '--direct', '--state-dir', ce.stateDir]);
      expect(text.stdout).toContain(
        `host: no IPv4 default route in the main table: rules and default with target direct reach only ${LAN}; tunnelled traffic takes its first route from awg-_noroute`,
      );

      const again = await awgd(topo.client, ce, ['apply', '-f', cfg, '--state-dir', ce.stateDir]);
      expect(again.code, showRun(again)).toBe(0);
      expect(again.mutations).toEqual([]);

      const down = await awgd(topo.client, ce, ['down', '--state-dir', ce.stateDir]);
      expect(down.code, showRun(down)).toBe(0);
      expect(await snapshotHost(topo.client, ce)).toEqual(before);
    } finally {
      await awgd(topo.client, ce, ['down', '--state-dir', ce.stateDir]).catch(() => undefined);
      cleanupAwgEnv(ce);
    }
  });

  it("split tunnel and a per-app rule (daemon): the rule's app and awg exec --tunnel reach the server through t1; an unmatched app's traffic fails with no route and leaves by no interface", async () => {
    const topo = t!;
    const ce = makeAwgEnv();
    const cfg = join(ce.dir, 'split.yaml');
    writeFileSync(
      cfg,
      `version: 1
${tunnel(topo.keys, ADDR.peer1, '10.200.73.0/24')}rules:
  - name: tun
    match: { dir: ${topo.apps.appsDir}/tun }
    target: t1
default: direct
`,
    );
    const d = await startDaemon(topo.client, ce, cfg);
    try {
      const tun = await startAgent(topo.client, topo.apps.app('tun'), topo.apps.script);
      await eventually(
        () => cgroupOf(tun.pid) === `/${ce.cgroupRoot}/tun`,
        'the rule app placed in its cgroup',
      );
      const other = await startAgent(topo.client, topo.apps.app('other'), topo.apps.script);
      const lan = await startCapture(topo.client, topo.clientIf, ce.dir);
      const tunCap = await startCapture(topo.client, 'awg-t1', ce.dir);

      let r: ProbeResult | undefined;
      await eventually(async () => {
        r = await tun.probe('tcp:8001');
        return r.ok;
      }, "the rule's app reaches the server").catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(r)}`);
      });
      expect(pathOf(r!.from)).toBe('t1');
      const u = await tun.probe('udp:8001');
      expect(u.ok && pathOf(u.from), JSON.stringify(u)).toBe('t1');

      const unmatched = [await other.probe('tcp:8002'), await other.probe('udp:8002')];
      expect(failures(unmatched)).toEqual([]);
      // TCP: the firewall's no-route reject; UDP: the send is refused at once
      expect(unmatched.map((p) => p.err)).toEqual(['ENETUNREACH', 'EPERM']);

      const exec = await awgd(topo.client, ce, [
        'exec',
        '--tunnel',
        't1',
        '--socket',
        d.socket,
        '--state-dir',
        ce.stateDir,
        '--',
        topo.apps.app('exec'),
        topo.apps.script,
        'tcp:8003',
      ]);
      expect(
        parseProbes(exec.stdout).map((p) => pathOf(p.from)),
        showRun(exec),
      ).toEqual(['t1']);

      const onLan = await lan.stop();
      const inTunnel = await tunCap.stop();
      // no flow of any app on the underlay (t1's own packets are WireGuard to the peer)
      expect([8001, 8002, 8003].flatMap((p) => flowPackets(onLan, p))).toEqual([]);
      expect(flowPackets(inTunnel, 8001).length).toBeGreaterThan(0);
      expect(flowPackets(inTunnel, 8002)).toEqual([]);

      const st = await d.cli(['status', '--json']);
      const doc = st.json<{ hostConditions?: HostConditionDoc[] }>();
      expect(doc.hostConditions, showRun(st)).toEqual([
        expect.objectContaining({ kind: 'no-default-route', family: 4, reach: [LAN] }),
      ]);
      const text = await d.cli(['status']);
      expect(text.stdout).toContain(`host: no IPv4 default route in the main table`);
      await tun.stop();
      await other.stop();
    } finally {
      await d.stop();
      await awgd(topo.client, ce, ['down', '--direct', '--state-dir', ce.stateDir]).catch(
        () => undefined,
      );
      cleanupAwgEnv(ce);
    }
  });

  it('a default route that appears later carries direct traffic at once (no reconcile needed); the next apply removes the first route', async () => {
    const topo = t!;
    const ce = makeAwgEnv();
    const exec = (how: string[], port: number) =>
      awgd(topo.client, ce, [
        'exec',
        ...how,
        '--state-dir',
        ce.stateDir,
        '--',
        topo.apps.app('exec'),
        topo.apps.script,
        `tcp:${port}`,
      ]).then((r) => parseProbes(r.stdout));
    try {
      const before = await snapshotHost(topo.client, ce);
      const cfg = join(ce.dir, 'split.yaml');
      writeFileSync(
        cfg,
        `version: 1\n${tunnel(topo.keys, ADDR.peer1, '10.200.73.0/24')}default: direct\n`,
      );
      const a = await awgd(topo.client, ce, ['apply', '-f', cfg, '--state-dir', ce.stateDir]);
      expect(a.code, showRun(a)).toBe(0);
      let r: ProbeResult[] = [];
      await eventually(async () => {
        r = await exec(['--tunnel', 't1'], 8001);
        return r[0]?.ok === true;
      }, 'awg exec --tunnel t1 reaches the server').catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(r)}`);
      });
      expect(pathOf(r[0]!.from)).toBe('t1');
      expect(await plainProbes(topo, 'plain', ['tcp:8002'])).toEqual([
        { probe: 'tcp:8002', ok: false, err: 'ENETUNREACH' },
      ]);

      // DHCP, say: the host has a default route now, and awg has not run since
      await run('ip', ['-n', topo.client, 'route', 'add', 'default', 'via', ADDR.peer1]);
      try {
        const direct = await plainProbes(topo, 'plain', ['tcp:8002']);
        expect(
          direct.map((p) => p.from),
          JSON.stringify(direct),
        ).toEqual([CLIENT]);
        expect((await exec(['--tunnel', 't1'], 8003)).map((p) => pathOf(p.from))).toEqual(['t1']);

        const again = await awgd(topo.client, ce, ['apply', '-f', cfg, '--state-dir', ce.stateDir]);
        expect(again.code, showRun(again)).toBe(0);
        expect(again.stderr).not.toContain('no IPv4 default route');
        expect(again.mutations.join('\n')).toContain('awg-_noroute');
        const rules = await nsExec(topo.client, 'ip', ['-j', 'rule']);
        expect(rules.stdout).not.toContain('"iif":"lo"');
        const st = await awgd(topo.client, ce, [
          'status',
          '--direct',
          '--json',
          '--state-dir',
          ce.stateDir,
        ]);
        expect(st.json<{ hostConditions?: unknown }>().hostConditions, showRun(st)).toBeUndefined();
      } finally {
        await run('ip', ['-n', topo.client, 'route', 'del', 'default', 'via', ADDR.peer1]);
      }
      const down = await awgd(topo.client, ce, ['down', '--state-dir', ce.stateDir]);
      expect(down.code, showRun(down)).toBe(0);
      expect(await snapshotHost(topo.client, ce)).toEqual(before);
    } finally {
      await awgd(topo.client, ce, ['down', '--state-dir', ce.stateDir]).catch(() => undefined);
      cleanupAwgEnv(ce);
    }
  });

  it('a proxy tunnel (SOCKS5 on the LAN, default): apps reach the server through the proxy', async () => {
    const topo = t!;
    const ce = makeAwgEnv();
    const socks = nsSpawn(topo.peer, 'microsocks', ['-i', ADDR.peer1, '-p', '1080']);
    try {
      const before = await snapshotHost(topo.client, ce);
      await eventually(async () => {
        const r = await nsExec(topo.client, 'nc', ['-z', '-w', '1', ADDR.peer1, '1080'], {
          allowFail: true,
        });
        return r.code === 0;
      }, 'microsocks listens');
      const cfg = join(ce.dir, 'proxy.yaml');
      writeFileSync(
        cfg,
        `version: 1
tunnels:
  px:
    type: socks5
    server: ${ADDR.peer1}
    port: 1080
default: px
`,
      );
      const a = await awgd(topo.client, ce, ['apply', '-f', cfg, '--state-dir', ce.stateDir]);
      expect(a.code, showRun(a)).toBe(0);
      let seen: ProbeResult[] = [];
      await eventually(async () => {
        seen = await plainProbes(topo, 'plain', ['tcp:8001']);
        return seen[0]?.ok === true;
      }, 'an unmatched app reaches the server through the proxy').catch((e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(seen)}`);
      });
      // the proxy dials from its own side of the server's network
      expect(seen[0]!.from).toBe(ADDR.routerServer);
      const down = await awgd(topo.client, ce, ['down', '--state-dir', ce.stateDir]);
      expect(down.code, showRun(down)).toBe(0);
      expect(await snapshotHost(topo.client, ce)).toEqual(before);
    } finally {
      await socks.kill(500);
      await awgd(topo.client, ce, ['down', '--state-dir', ce.stateDir]).catch(() => undefined);
      cleanupAwgEnv(ce);
    }
  });

  it('an endpoint without a route: diff and status say why', async () => {
    const topo = t!;
    const ce = makeAwgEnv();
    try {
      const cfg = join(ce.dir, 'nowhere.yaml');
      writeFileSync(cfg, `version: 1\n${tunnel(topo.keys, NOWHERE, '0.0.0.0/0')}default: t1\n`);
      const why = `tunnel t1: endpoint ${NOWHERE} unreachable: no route (Network is unreachable)`;
      const diff = await awgd(topo.client, ce, ['diff', '-f', cfg, '--state-dir', ce.stateDir]);
      expect(diff.stdout + diff.stderr, showRun(diff)).toContain(why);
      const a = await awgd(topo.client, ce, ['apply', '-f', cfg, '--state-dir', ce.stateDir]);
      expect(a.code, showRun(a)).toBe(0);
      const st = await awgd(topo.client, ce, [
        'status',
        '--direct',
        '--json',
        '--state-dir',
        ce.stateDir,
      ]);
      const doc = st.json<{ hostConditions?: HostConditionDoc[] }>();
      expect(doc.hostConditions, showRun(st)).toContainEqual(
        expect.objectContaining({ kind: 'endpoint-unreachable', tunnel: 't1', address: NOWHERE }),
      );
      const text = await awgd(topo.client, ce, ['status', '--direct', '--state-dir', ce.stateDir]);
      expect(text.stdout).toContain(`host: ${why}`);
    } finally {
      await awgd(topo.client, ce, ['down', '--state-dir', ce.stateDir]).catch(() => undefined);
      cleanupAwgEnv(ce);
    }
  });
});
