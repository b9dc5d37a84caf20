/**
 * The active health probe and the reset of connections through a dead tunnel
 * (docs/architecture.md, "Tunnel health"), against the real product (`awg daemon` from dist/)
 * in perapp-topology.ts's topology (peers: awg's own engine):
 * - t1 has `health.probe: {tcp: PROBE:9300}`, an address on peer1's loopback that only the
 *   tunnel reaches; the probe's server sees it from t1's address;
 * - peer1 drops that port only (handshakes and other data pass) → t1 down with reason
 *   `probe-failed`, the allow-direct app goes direct, and its connection that was open through
 *   t1 is reset (the app sees the error, it does not hang);
 * - the drop removed → t1 up, the app back on t1, while an app of a `sticky: true` rule into
 *   t1 stays direct (held on its fallback: `heldRules` in status);
 * - tcpdump on the client's underlay sees no packet to or from the probe's address.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, type AwgEnv } from '../helpers/awg.js';
import {
  netnsPath,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import { cgroupOf } from '../helpers/procs.js';
import {
  ADDR,
  awgd,
  clientTunnels,
  createPerAppTopology,
  eventually,
  pathOf,
  startAgent,
  startDaemon,
  type Agent,
  type Daemon,
  type PerAppTopology,
} from './perapp-topology.js';

const skip = requireNetnsPrereqs(['nft', 'tcpdump']);

const PROBE = '10.200.93.1';
const PROBE_PORT = 9300;
const HOLD_PORT = 9400;

/** a TCP server that logs each connection's peer and keeps it open */
const SERVER_JS = `
const net = require('net');
const [addr, port] = process.argv.slice(1);
net.createServer((s) => {
  console.log('conn from ' + s.remoteAddress);
  s.on('error', () => {});
}).listen(Number(port), addr, () => console.log('listening'));
`;

/** on `connect` (stdin), opens a connection and holds it; prints how it ends */
const HOLDER_JS = `
const net = require('net');
const [addr, port] = process.argv.slice(1);
console.log('ready');
process.stdin.on('data', () => {
  const s = net.connect(Number(port), addr, () => console.log('connected'));
  s.on('error', (e) => console.log('error ' + e.code));
  s.on('close', () => console.log('closed'));
});
`;

describe.skipIf(skip)(
  'the active health probe; connections through a dead tunnel are reset',
  () => {
    let t: PerAppTopology;
    let ce: AwgEnv;
    let d: Daemon | undefined;
    let probeSrv: NsProcess | undefined;
    let holdSrv: NsProcess | undefined;
    let capture: NsProcess | undefined;
    let holder: ChildProcess | undefined;
    let holderOut = '';
    let agent: Agent | undefined;
    let stickyAgent: Agent | undefined;

    beforeAll(async () => {
      await sweepStaleNetns();
      t = await createPerAppTopology();
      ce = makeAwgEnv();
      await run('ip', ['-n', t.peer1, 'addr', 'add', `${PROBE}/32`, 'dev', 'lo']);
      probeSrv = nsSpawn(t.peer1, process.execPath, ['-e', SERVER_JS, PROBE, String(PROBE_PORT)]);
      holdSrv = nsSpawn(t.server, process.execPath, [
        '-e',
        SERVER_JS,
        ADDR.server,
        String(HOLD_PORT),
      ]);
      await eventually(() => probeSrv!.output().includes('listening'), 'the probe server listens');
      await eventually(() => holdSrv!.output().includes('listening'), 'the hold server listens');
      capture = nsSpawn(t.client, 'tcpdump', ['-n', '-l', '-i', t.clientIf, 'host', PROBE]);
      await eventually(() => /listening on/.test(capture!.output()), 'tcpdump listens');
      // t1 alone gets the probe (clientTunnels gives both tunnels the same shape)
      const tunnels = clientTunnels(t.keys, { keepalive: 1 }).replace(
        '    peers:',
        `    health: { probe: { tcp: "${PROBE}:${PROBE_PORT}" }, interval: 2s, timeout: 1s, failures: 2 }\n    peers:`,
      );
      const cfg = join(ce.dir, 'client.yaml');
      writeFileSync(
        cfg,
        `version: 1
${tunnels}rules:
  - name: ad
    match: { dir: ${t.apps.appsDir}/ad }
    target: t1
    fallback: allow-direct
  - name: st
    match: { dir: ${t.apps.appsDir}/st }
    target: t1
    fallback: allow-direct
    sticky: true
default: direct
`,
      );
      d = await startDaemon(t.client, ce, cfg);
    }, 240_000);

    afterAll(async () => {
      holder?.kill('SIGKILL');
      await agent?.stop();
      await stickyAgent?.stop();
      await d?.stop();
      if (t && ce)
        await awgd(t.client, ce, ['down', '--direct', '--state-dir', ce.stateDir]).catch(
          () => undefined,
        );
      await capture?.kill(500);
      await probeSrv?.kill(500);
      await holdSrv?.kill(500);
      await t?.destroy();
      if (ce) cleanupAwgEnv(ce);
    }, 120_000);

    const nft = (args: string) => nsExec(t.peer1, 'nft', args.split(' '));
    const line = async () => {
      const r = await d!.cli(['status', '--json']);
      return r.code === 0
        ? r
            .json<{
              tunnels: {
                name: string;
                health?: string;
                reason?: string;
                heldRules?: { rule: string }[];
              }[];
            }>()
            .tunnels.find((x) => x.name === 't1')
        : undefined;
    };

    it('probe fails: down for probe-failed, the app goes direct and its open connection is reset; back when it answers; nothing on the underlay', async () => {
      await eventually(async () => (await line())?.health === 'up', 't1 up', 60_000);
      // the probe reaches its server through t1
      await eventually(
        () => probeSrv!.output().includes(`conn from ${ADDR.tun1Client}`),
        'the probe seen from t1',
      );

      agent = await startAgent(t.client, t.apps.app('ad'), t.apps.script);
      await eventually(() => cgroupOf(agent!.pid) === `/${ce.cgroupRoot}/ad`, 'the agent placed');
      await eventually(
        async () => pathOf((await agent!.probe('udp:8001')).from) === 't1',
        'ad through t1',
      );
      stickyAgent = await startAgent(t.client, t.apps.app('st'), t.apps.script);
      await eventually(
        () => cgroupOf(stickyAgent!.pid) === `/${ce.cgroupRoot}/st`,
        'the sticky agent placed',
      );
      await eventually(
        async () => pathOf((await stickyAgent!.probe('udp:8001')).from) === 't1',
        'st through t1',
      );

      // an app of the same rule holds a TCP connection through t1
      holder = spawn(
        'nsenter',
        [
          `--net=${netnsPath(t.client)}`,
          '--',
          t.apps.app('ad'),
          '-e',
          HOLDER_JS,
          ADDR.server,
          String(HOLD_PORT),
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      holder.stdout!.on('data', (b: Buffer) => (holderOut += b.toString()));
      holder.stderr!.on('data', (b: Buffer) => (holderOut += b.toString()));
      await eventually(() => holderOut.includes('ready'), 'the holder started');
      await eventually(
        () => cgroupOf(holder!.pid!) === `/${ce.cgroupRoot}/ad`,
        'the holder placed',
      );
      holder.stdin!.write('connect\n');
      await eventually(() => holderOut.includes('connected'), `the holder connected: ${holderOut}`);
      await eventually(
        () => holdSrv!.output().includes(`conn from ${ADDR.tun1Client}`),
        'the held connection through t1',
      );

      // the fault: the probe's port only
      await nft('add table inet s22probe');
      await nft('add chain inet s22probe in { type filter hook input priority -400 ; }');
      await nft(`add rule inet s22probe in tcp dport ${PROBE_PORT} drop`);
      const t0 = Date.now();
      await eventually(
        async () => {
          const l = await line();
          return l?.health === 'down' && l.reason === 'probe-failed';
        },
        't1 down for probe-failed',
        30_000,
      );
      const down = Date.now() - t0;
      await eventually(
        async () => pathOf((await agent!.probe('udp:8001')).from) === 'direct',
        'ad direct',
      );
      await eventually(
        async () => pathOf((await stickyAgent!.probe('udp:8001')).from) === 'direct',
        'st direct',
      );
      // reset, not left hanging (the app sees an error, then the close)
      await eventually(
        () => /error E\w+/.test(holderOut) && holderOut.includes('closed'),
        `the held connection reset: ${holderOut}`,
        20_000,
      );

      await nft('delete table inet s22probe');
      const t1 = Date.now();
      await eventually(async () => (await line())?.health === 'up', 't1 back up', 30_000);
      const up = Date.now() - t1;
      await eventually(
        async () => pathOf((await agent!.probe('udp:8001')).from) === 't1',
        'ad back on t1',
      );
      // the sticky rule keeps its fallback after t1 is back (until the network changes)
      expect((await line())?.heldRules?.map((h) => h.rule)).toEqual(['st']);
      for (let i = 0; i < 3; i++)
        expect(pathOf((await stickyAgent.probe('udp:8001')).from)).toBe('direct');
      console.log(`health-probe: down after ${down} ms, up after ${up} ms; holder: ${holderOut}`);

      // the probe never left by the underlay
      expect(capture!.output()).not.toMatch(new RegExp(`${PROBE.replace(/\./g, '\\.')}\\.`));
    }, 240_000);
  },
);
