/**
 * Per-app traffic, seen: known transfers against the counters, in the per-app topology
 * (perapp-topology.ts: client, router, server, two WireGuard peers; t1 and t2).
 *
 * A sender placed in rule r1's cgroup (it writes its own pid into cgroup.procs before it opens
 * its socket, as a placed process is) sends COUNT UDP datagrams of SIZE payload bytes to the
 * server's UDP echo through t1, one at a time, each after the previous reply (no retries, so
 * the count is exact). N = COUNT × SIZE. The stated overhead bound is 28 bytes per datagram
 * (IPv4 header 20 + UDP header 8): the kernel counts IP packet lengths, no encapsulation.
 * - rule r1: tx grew by ≥ N and ≤ N + 28·COUNT, in exactly COUNT packets; rx grew by the echoed
 *   payload (as the sender counted it) plus at most 28 per reply;
 * - rule r2 (target t2): did not move; t2's link did not carry the transfer;
 * - tunnel t1's TUN link: tx and rx grew by the same bounds (+ LINK_SLACK for anything the
 *   kernel itself sends on a TUN, e.g. IPv6 link-local chatter: stated, never needed so far);
 * - both paths: `awg status --json` in direct mode (no daemon) and through the daemon, its
 *   Prometheus scrape and its Watch stream (a `traffic` event);
 * - a re-apply that changes the table (a rule added) keeps r1's counters; a removed rule's
 *   counter disappears;
 * - loopback traffic of r1 (to an echo on 127.0.0.1) moves neither of its counters.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AWG_BIN, type AwgEnv, cgroupDir, cleanupAwgEnv, makeAwgEnv } from '../helpers/awg.js';
import {
  netnsPath,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import {
  ADDR,
  awgd,
  clientTunnels,
  createPerAppTopology,
  eventually,
  showRun,
  type PerAppTopology,
} from './perapp-topology.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl']);
const run = promisify(execFile);

const COUNT = 40;
const SIZE = 1000;
const N = COUNT * SIZE;
const HDR = 28;
const LINK_SLACK = 2048;
const PORT = 8001;
const METRICS = 19586;

const SENDER_JS = `
const dgram = require('dgram');
const [host, port, count, size] = process.argv.slice(2);
const s = dgram.createSocket('udp4');
const payload = Buffer.alloc(Number(size), 0x61);
let sent = 0, got = 0, rx = 0;
const send = () => { sent++; s.send(payload); };
s.on('message', (m) => { got++; rx += m.length; if (got === Number(count)) { console.log(JSON.stringify({ sent, got, rx })); s.close(); clearTimeout(t); } else send(); });
s.connect(Number(port), host, send);
const t = setTimeout(() => { console.log(JSON.stringify({ sent, got, rx, err: 'timeout' })); process.exit(1); }, 30000);
`;

interface Rule {
  name: string;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}
interface Link {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
}
interface Snap {
  rules: Map<string, Rule>;
  links: Map<string, Link>;
}

describe.skipIf(skip)('per-app traffic counters against known transfers', () => {
  let t: PerAppTopology;
  let ce: AwgEnv;
  let cfg: string;
  let sender: string;
  let daemon: NsProcess | undefined;
  const socket = () => join(ce.dir, 'run', 'awg.sock');
  const config = (rules: string[]) => `version: 1
${clientTunnels(t.keys)}rules:
${rules.map((r) => `  - name: ${r}\n    match: { name: awgt-nothing-${r} }\n    target: ${r === 'r2' ? 't2' : 't1'}\n`).join('')}default: direct
`;
  const apply = async (rules: string[]) => {
    writeFileSync(cfg, config(rules));
    const r = await awgd(t.client, ce, [
      'apply',
      '-f',
      cfg,
      '--state-dir',
      ce.stateDir,
      '--direct',
    ]);
    if (r.code !== 0) throw new Error(`apply: ${showRun(r)}`);
  };

  /** send through rule `rule`'s cgroup; the sender's own count of echoed bytes */
  const transfer = async (rule: string, host: string = ADDR.server): Promise<number> => {
    const cg = join(cgroupDir(ce), rule, 'cgroup.procs');
    const { stdout } = await run(
      'nsenter',
      [
        `--net=${netnsPath(t.client)}`,
        '--',
        'sh',
        '-c',
        `echo $$ > ${cg} && exec "$0" "$@"`,
        process.execPath,
        sender,
        host,
        String(PORT),
        String(COUNT),
        String(SIZE),
      ],
      { timeout: 60_000 },
    );
    const r = JSON.parse(stdout.trim()) as { sent: number; got: number; rx: number; err?: string };
    expect(r).toMatchObject({ sent: COUNT, got: COUNT });
    return r.rx;
  };

  const directSnap = async (): Promise<Snap> => {
    const r = await awgd(t.client, ce, [
      'status',
      '--json',
      '--state-dir',
      ce.stateDir,
      '--direct',
    ]);
    const doc = r.json<{ traffic: { rules: Rule[]; tunnels: ({ tunnel: string } & Link)[] } }>();
    return {
      rules: new Map(doc.traffic.rules.map((x) => [x.name, x])),
      links: new Map(doc.traffic.tunnels.map((x) => [x.tunnel, x])),
    };
  };
  const daemonSnap = async (): Promise<Snap> => {
    const r = await awgd(t.client, ce, ['status', '--json', '--socket', socket()]);
    const doc = r.json<{ rules?: Rule[]; tunnels: { name: string; linkTraffic?: Link }[] }>();
    return {
      rules: new Map((doc.rules ?? []).map((x) => [x.name, x])),
      links: new Map(
        doc.tunnels.flatMap((x) => (x.linkTraffic ? [[x.name, x.linkTraffic] as const] : [])),
      ),
    };
  };

  /** the assertions of one transfer of r1 between two snapshots */
  const checkTransfer = (a: Snap, b: Snap, echoed: number) => {
    const d = (k: keyof Rule & `${string}${'Bytes' | 'Packets'}`, r: string) =>
      b.rules.get(r)![k] - a.rules.get(r)![k];
    expect(d('txBytes', 'r1')).toBeGreaterThanOrEqual(N);
    expect(d('txBytes', 'r1')).toBeLessThanOrEqual(N + HDR * COUNT);
    expect(d('txPackets', 'r1')).toBe(COUNT);
    expect(d('rxBytes', 'r1')).toBeGreaterThanOrEqual(echoed);
    expect(d('rxBytes', 'r1')).toBeLessThanOrEqual(echoed + HDR * COUNT);
    expect(d('rxPackets', 'r1')).toBe(COUNT);
    for (const k of ['txBytes', 'txPackets', 'rxBytes', 'rxPackets'] as const)
      expect(d(k, 'r2')).toBe(0);
    const l = (k: keyof Link, tun: string) => b.links.get(tun)![k] - a.links.get(tun)![k];
    expect(l('txBytes', 't1')).toBeGreaterThanOrEqual(N);
    expect(l('txBytes', 't1')).toBeLessThanOrEqual(N + HDR * COUNT + LINK_SLACK);
    expect(l('rxBytes', 't1')).toBeGreaterThanOrEqual(echoed);
    expect(l('rxBytes', 't1')).toBeLessThanOrEqual(echoed + HDR * COUNT + LINK_SLACK);
    expect(l('txBytes', 't2')).toBeLessThan(LINK_SLACK);
  };

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createPerAppTopology({ ports: [PORT] });
    ce = makeAwgEnv();
    cfg = join(ce.dir, 'client.yaml');
    sender = join(ce.dir, 'sender.cjs');
    writeFileSync(sender, SENDER_JS);
    await apply(['r1', 'r2']);
  }, 180_000);

  afterAll(async () => {
    await daemon?.kill(10_000);
    if (t)
      await awgd(t.client, ce, ['down', '--state-dir', ce.stateDir, '--direct']).catch(
        () => undefined,
      );
    await t?.destroy();
    cleanupAwgEnv(ce);
  }, 120_000);

  it('direct mode: r1 and t1 count the transfer within the bound, r2 and t2 do not move', async () => {
    const a = await directSnap();
    expect([...a.rules.keys()].sort()).toEqual(['r1', 'r2']);
    expect([...a.links.keys()].sort()).toEqual(['t1', 't2']);
    const echoed = await transfer('r1');
    const b = await directSnap();
    checkTransfer(a, b, echoed);
    // `awg processes`: a process in r1's cgroup shows the cgroup's totals (not its own: it sent nothing)
    const cg = join(cgroupDir(ce), 'r1', 'cgroup.procs');
    const idle = nsSpawn(t.client, 'sh', ['-c', `echo $$ > ${cg} && exec sleep 120`]);
    try {
      await eventually(
        () => readFileSync(cg, 'utf8').split('\n').includes(String(idle.pid)),
        'the idle process sits in r1',
      );
      const ps = (
        await awgd(t.client, ce, ['processes', '--json', '--state-dir', ce.stateDir, '--direct'])
      ).json<{ pid: number; rule?: string; ruleTraffic?: Rule }[]>();
      expect(ps.find((p) => p.pid === idle.pid)).toMatchObject({
        rule: 'r1',
        ruleTraffic: { txBytes: b.rules.get('r1')!.txBytes, rxBytes: b.rules.get('r1')!.rxBytes },
      });
      const text = (await awgd(t.client, ce, ['processes', '--state-dir', ce.stateDir, '--direct']))
        .stdout;
      expect(text).toContain('RULE TX/RX');
      expect(text).toContain('not per process');
    } finally {
      await idle.kill();
    }
  }, 120_000);

  it('loopback traffic of a rule is counted in neither direction (as route_out skips it on the way out)', async () => {
    const echo = nsSpawn(t.client, process.execPath, [
      '-e',
      `const u = require('dgram').createSocket('udp4'); u.on('message', (m, r) => u.send(m, r.port, r.address)); u.bind(${PORT}, '127.0.0.1', () => console.log('listening'));`,
    ]);
    try {
      await eventually(() => echo.output().includes('listening'), 'the loopback echo listens');
      const a = await directSnap();
      expect(await transfer('r1', '127.0.0.1')).toBe(N);
      const b = await directSnap();
      expect(b.rules.get('r1')).toEqual(a.rules.get('r1'));
    } finally {
      await echo.kill();
    }
  }, 120_000);

  it('a re-apply that changes the table keeps unchanged rules’ counters; a removed rule’s counter is gone', async () => {
    const before = await directSnap();
    expect(before.rules.get('r1')!.txBytes).toBeGreaterThanOrEqual(N);
    await apply(['r1', 'r2', 'r3']);
    const added = await directSnap();
    expect(added.rules.get('r1')!.txBytes).toBeGreaterThanOrEqual(before.rules.get('r1')!.txBytes);
    expect(added.rules.get('r1')!.rxBytes).toBeGreaterThanOrEqual(before.rules.get('r1')!.rxBytes);
    expect(added.rules.get('r3')).toMatchObject({ txBytes: 0, rxBytes: 0 });
    await apply(['r1', 'r3']);
    const removed = await directSnap();
    expect(removed.rules.has('r2')).toBe(false);
    expect(removed.rules.get('r1')!.txBytes).toBeGreaterThanOrEqual(
      before.rules.get('r1')!.txBytes,
    );
    await apply(['r1', 'r2']);
  }, 180_000);

  it('through the daemon: status over the API, the metrics scrape and a traffic event agree with the transfer', async () => {
    daemon = nsSpawn(
      t.client,
      process.execPath,
      [
        AWG_BIN,
        'daemon',
        '--config',
        cfg,
        '--state-dir',
        ce.stateDir,
        '--socket',
        socket(),
        '--metrics',
        `127.0.0.1:${METRICS}`,
      ],
      { env: ce.env },
    );
    await eventually(
      async () => {
        if (daemon!.child.exitCode !== null)
          throw new Error(`awg daemon exited:\n${daemon!.output()}`);
        const r = await awgd(t.client, ce, ['status', '--json', '--socket', socket()]);
        return r.code === 0 && r.json<{ state: string }>().state === 'converged';
      },
      'the daemon reports converged',
      90_000,
    );
    const events = nsSpawn(
      t.client,
      process.execPath,
      [AWG_BIN, 'events', '--json', '--socket', socket()],
      { env: ce.env },
    );
    try {
      const a = await daemonSnap();
      expect(a.rules.get('r1')).toMatchObject({ name: 'r1' });
      const echoed = await transfer('r1');
      const b = await daemonSnap();
      checkTransfer(a, b, echoed);
      // the scrape: the same counters, by rule and direction, and the TUN link's
      const { stdout: text } = await run('nsenter', [
        `--net=${netnsPath(t.client)}`,
        '--',
        process.execPath,
        '-e',
        `require('http').get('http://127.0.0.1:${METRICS}/metrics', (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => process.stdout.write(b)); })`,
      ]);
      const metric = (prefix: string) =>
        Number(
          / (\d+)$/.exec(text.split('\n').find((l) => l.startsWith(prefix)) ?? '')?.[1] ?? NaN,
        );
      const txMetric = metric(
        'awg_rule_bytes_total{rule="r1",target="t1",route="t1",direction="tx"}',
      );
      expect(txMetric).toBeGreaterThanOrEqual(b.rules.get('r1')!.txBytes);
      expect(txMetric - a.rules.get('r1')!.txBytes).toBeLessThanOrEqual(
        N + HDR * COUNT + LINK_SLACK,
      );
      expect(
        metric('awg_rule_packets_total{rule="r2",target="t2",route="t2",direction="tx"}'),
      ).toBe(b.rules.get('r2')!.txPackets);
      expect(
        metric('awg_tunnel_link_bytes_total{tunnel="t1",direction="tx"}'),
      ).toBeGreaterThanOrEqual(b.links.get('t1')!.txBytes);
      // the event stream: a traffic event (every 10 s while someone listens, when a counter moved)
      await eventually(
        () =>
          events
            .output()
            .split('\n')
            .some((l) => l.includes('"type":"traffic"') && l.includes('"name":"r1"')),
        'a traffic event with r1',
        40_000,
      );
      const ev = JSON.parse(
        events
          .output()
          .split('\n')
          .find((l) => l.includes('"type":"traffic"'))!,
      ) as { rules: Rule[] };
      expect(ev.rules.find((r) => r.name === 'r1')!.txBytes).toBeGreaterThanOrEqual(N);
    } finally {
      await events.kill();
    }
  }, 240_000);
});
