/**
 * The Linux traffic source of `awg top` (src/procs/top/linux.ts) against iperf3's own counts,
 * on a real kernel.
 *
 * Direct: client ─ router ─ server (veths; IPv4 10.200.140.0/24, 10.200.141.0/24; IPv6
 * fd00:200::140:0/112, fd00:200::141:0/112). The client and the router run conntrack with
 * accounting (an nft `ct` rule and net.netfilter.nf_conntrack_acct=1, as awg's table and
 * sysctl do); iperf3 servers listen in the server namespace. The source reads the client
 * namespace while iperf3 clients run there:
 * - TCP and UDP (`-u -b 50M`), IPv4 and IPv6: the payload of the flow whose local port is
 *   iperf3's data socket agrees with iperf3's `--json` `sum_sent` within 2 %, under iperf3's
 *   pid; a TCP connection's final counts arrive after it closed, `closed`, from the destroy
 *   groups;
 * - two iperf3 clients at once: two pids, each with its own counts;
 * - read in the router namespace, the same flows have no local socket: unattributed, with
 *   iperf3's counts.
 * Tunnelled: the per-app topology (perapp-topology.ts) with `awg apply` in the client; an
 * iperf3 client placed in rule r1's cgroup (target t1, our WireGuard engine): its TCP and
 * UDP flows carry r1's cgroup and t1's mark, and agree with iperf3 within 2 % — with the
 * accounting sysctl set by awg itself.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linuxTrafficSource } from '../../src/procs/top/linux.js';
import type { FlowReading, ProcessInfo, Reading } from '../../src/procs/top/reading.js';
import { cgroupDir, cleanupAwgEnv, makeAwgEnv, type AwgEnv } from '../helpers/awg.js';
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
  clientTunnels,
  createPerAppTopology,
  eventually,
  showRun,
  type PerAppTopology,
} from './perapp-topology.js';

const skip = requireNetnsPrereqs(['nft', 'sysctl', 'iperf3']);

const A = {
  client4: '10.200.140.2',
  routerC4: '10.200.140.1',
  server4: '10.200.141.2',
  routerS4: '10.200.141.1',
  client6: 'fd00:200::140:2',
  routerC6: 'fd00:200::140:1',
  server6: 'fd00:200::141:2',
  routerS6: 'fd00:200::141:1',
};
const TOLERANCE = 0.02;
/**
 * iperf3 -s serves one client at a time, and a client that comes while it ends the last test is
 * refused ("the server is busy running a test", or the port is closed while it listens anew:
 * iperf_run_server opens and closes its listener per test). A client started as the one before
 * exits can meet that window, so every client of these tests has a server of its own.
 */
const PORT = { cases: [5201, 5202, 5203, 5204], acctOff: 5205, twoA: 5206, twoB: 5207 };

interface IperfJson {
  start: { connected: { local_port: number; remote_port: number }[] };
  end: { sum_sent: { bytes: number; retransmits?: number } };
  error?: string;
}

async function conntrackOn(ns: string, hook: 'output' | 'forward'): Promise<void> {
  await nsExec(ns, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1']);
  await nsExec(ns, 'nft', ['-f', '-'], {
    input: `table inet awgt_ct {\n chain c {\n  type filter hook ${hook} priority 0\n  ct state new counter\n }\n}\n`,
  });
}

/** Reads a namespace every `ms` while started: the last reading of every flow, and its close. */
class Watch {
  readonly last = new Map<string, FlowReading>();
  readonly closed = new Map<string, FlowReading>();
  readonly pids = new Set<number>();
  readonly procs = new Map<number, ProcessInfo>();
  readonly warnings = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly source;

  constructor(netns: string, cgroupRoot?: string) {
    this.source = linuxTrafficSource({ netns, ...(cgroupRoot ? { cgroupRoot } : {}) });
  }

  take(r: Reading): void {
    for (const w of r.warnings) this.warnings.add(w);
    for (const [pid, p] of r.processes) this.procs.set(pid, p);
    for (const f of r.flows) {
      this.last.set(f.key, f);
      if (f.closed) this.closed.set(f.key, f);
      if (f.pid !== undefined) this.pids.add(f.pid);
    }
  }

  async read(): Promise<Reading> {
    const r = await this.source.read();
    this.take(r);
    return r;
  }

  start(ms = 200): void {
    void this.read();
    this.timer = setInterval(() => void this.read(), ms);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  close(): void {
    this.stop();
    this.source.close();
  }

  /** the flows of `proto` whose local port is `port` */
  flows(proto: 'tcp' | 'udp', port: number): FlowReading[] {
    return [...this.last.values()].filter((f) => f.proto === proto && f.local.port === port);
  }
}

async function iperf(
  ns: string,
  args: string[],
  onStart?: (p: NsProcess) => void,
): Promise<{ pid: number; json: IperfJson }> {
  const p = nsSpawn(ns, 'iperf3', [...args, '-J']);
  onStart?.(p);
  const code = await p.exited;
  const out = p.output();
  const json = JSON.parse(out.slice(out.indexOf('{'))) as IperfJson;
  if (code !== 0 || json.error) throw new Error(`iperf3 ${args.join(' ')}: ${json.error ?? code}`);
  return { pid: p.pid, json };
}

/**
 * UDP counts are exact: conntrack saw every datagram leave. iperf3's count leaves out its
 * 4-byte connect datagram (and the 4-byte answer): at most this much more.
 */
const UDP_EXTRA = 64;
const exactUdp = (got: number, want: number) => {
  expect(got - want, `${got} vs iperf3's ${want}`).toBeGreaterThanOrEqual(0);
  expect(got - want, `${got} vs iperf3's ${want}`).toBeLessThanOrEqual(UDP_EXTRA);
};

const near = (got: number, want: number) => {
  expect(want).toBeGreaterThan(0);
  expect(Math.abs(got - want) / want, `${got} vs iperf3's ${want}`).toBeLessThanOrEqual(TOLERANCE);
};

/**
 * A forwarded TCP flow as the router's conntrack counts it: every segment that crossed, so a
 * segment TCP sent again crossed twice, while iperf3 counts its payload once. On a loaded
 * machine the veths drop and TCP retransmits (iperf3 reports how many segments): each may add
 * up to one MTU-sized segment (1500, with the options the header subtraction leaves in).
 */
const RETRANSMITTED_SEGMENT = 1500;
const nearForwarded = (got: number, want: number, retransmits: number) => {
  const extra = retransmits * RETRANSMITTED_SEGMENT;
  const what = `${got} vs iperf3's ${want} and ${retransmits} segments sent again`;
  expect(want).toBeGreaterThan(0);
  expect((want - got) / want, what).toBeLessThanOrEqual(TOLERANCE);
  expect((got - want - extra) / want, what).toBeLessThanOrEqual(TOLERANCE);
};

describe.skipIf(skip)('top reading: direct traffic against iperf3', () => {
  let client = '';
  let router = '';
  let server = '';
  const servers: NsProcess[] = [];

  beforeAll(async () => {
    await sweepStaleNetns();
    client = await createNetns('top-client');
    router = await createNetns('top-router');
    server = await createNetns('top-server');
    await vethPair(client, router, {
      addrA: [`${A.client4}/24`, `${A.client6}/112`],
      addrB: [`${A.routerC4}/24`, `${A.routerC6}/112`],
    });
    await vethPair(server, router, {
      addrA: [`${A.server4}/24`, `${A.server6}/112`],
      addrB: [`${A.routerS4}/24`, `${A.routerS6}/112`],
    });
    await nsExec(router, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    await nsExec(router, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
    for (const [ns, v4, v6] of [
      [client, A.routerC4, A.routerC6],
      [server, A.routerS4, A.routerS6],
    ] as const) {
      await run('ip', ['-n', ns, 'route', 'add', 'default', 'via', v4]);
      await run('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', v6]);
    }
    await conntrackOn(client, 'output');
    await conntrackOn(router, 'forward');
    const ports = [...PORT.cases, PORT.acctOff, PORT.twoA, PORT.twoB];
    for (const port of ports) servers.push(nsSpawn(server, 'iperf3', ['-s', '-p', String(port)]));
    await eventually(async () => {
      const r = await nsExec(server, 'ss', ['-Htln'], { allowFail: true });
      return ports.every((p) => r.stdout.includes(`:${p} `));
    }, 'the iperf3 servers listen');
  }, 120_000);

  afterAll(async () => {
    for (const s of servers) await s.kill(1000);
    for (const ns of [client, router, server]) if (ns) await destroyNetns(ns);
  }, 60_000);

  const cases = [
    ['TCP', 'IPv4', 'tcp', A.server4, PORT.cases[0], []],
    ['TCP', 'IPv6', 'tcp', A.server6, PORT.cases[1], []],
    ['UDP', 'IPv4', 'udp', A.server4, PORT.cases[2], ['-u', '-b', '50M']],
    ['UDP', 'IPv6', 'udp', A.server6, PORT.cases[3], ['-u', '-b', '50M']],
  ] as const;

  for (const [name, fam, proto, addr, serverPort, extra] of cases) {
    it(`${name} over ${fam}: iperf3's process, its data flow within 2 % of iperf3's count`, async () => {
      const w = new Watch(client);
      const r = new Watch(router);
      try {
        w.start();
        r.start(500);
        const { pid, json } = await iperf(client, [
          '-c',
          addr,
          '-p',
          String(serverPort),
          '-t',
          '3',
          ...extra,
        ]);
        const port = json.start.connected[0]!.local_port;
        const sent = json.end.sum_sent.bytes;
        // a TCP connection's last counts come after it closed; a UDP flow's from its entry
        await eventually(
          () => proto === 'udp' || w.flows('tcp', port).some((f) => f.closed && f.pid === pid),
          'the closed connection’s final counts',
          10_000,
        );
        await w.read();
        w.stop();
        const [f] = w.flows(proto, port);
        expect(f, `a ${proto} flow of local port ${port}`).toBeDefined();
        expect(f).toMatchObject({
          pid,
          family: fam === 'IPv4' ? 4 : 6,
          remote: { port: serverPort },
        });
        near(f!.sent, sent);
        if (proto === 'udp') exactUdp(f!.sent, sent);
        // the process as read while it ran, still named after it exited
        expect(w.procs.get(pid)).toMatchObject({
          pid,
          name: 'iperf3',
          exe: expect.stringMatching(/iperf3$/),
        });
        if (proto === 'tcp') {
          expect(f!.closed).toBe(true);
          // the live readings before it never exceeded the final count
          expect(w.closed.get(f!.key)).toBe(f);
        }
        expect([...w.warnings]).toEqual([]);

        // the router forwards the same flow with no socket of its own: unattributed
        await r.read();
        r.stop();
        const fwd = r.flows(proto, port).filter((x) => x.pid === undefined);
        expect(fwd.length, 'the forwarded flow in the router').toBe(1);
        expect(fwd[0]!.remote.port).toBe(serverPort);
        if (proto === 'udp') exactUdp(fwd[0]!.sent, sent);
        else nearForwarded(fwd[0]!.sent, sent, json.end.sum_sent.retransmits ?? 0);
        expect(r.pids.size).toBe(0);
      } finally {
        w.close();
        r.close();
      }
    }, 60_000);
  }

  it('with conntrack accounting off, a UDP flow is shown without counts and the reading says why', async () => {
    await nsExec(client, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=0']);
    const w = new Watch(client);
    try {
      w.start();
      const { pid, json } = await iperf(client, [
        '-c',
        A.server4,
        '-p',
        String(PORT.acctOff),
        '-t',
        '1',
        '-u',
        '-b',
        '5M',
      ]);
      await w.read();
      const [f] = w.flows('udp', json.start.connected[0]!.local_port);
      expect(f).toMatchObject({ pid, sent: 0, received: 0 });
      expect([...w.warnings].join('\n')).toMatch(/conntrack accounting is off/);
    } finally {
      w.close();
      await nsExec(client, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1']);
    }
  }, 60_000);

  it('two iperf3 clients at once are two processes, each with its own counts', async () => {
    const w = new Watch(client);
    try {
      w.start();
      const [a, b] = await Promise.all([
        iperf(client, ['-c', A.server4, '-p', String(PORT.twoA), '-t', '3']),
        iperf(client, ['-c', A.server4, '-p', String(PORT.twoB), '-t', '3', '-b', '200M']),
      ]);
      expect(a.pid).not.toBe(b.pid);
      for (const x of [a, b]) {
        const port = x.json.start.connected[0]!.local_port;
        await eventually(
          () => w.flows('tcp', port).some((f) => f.closed),
          'the closed connection’s final counts',
          10_000,
        );
        const [f] = w.flows('tcp', port);
        expect(f!.pid).toBe(x.pid);
        near(f!.sent, x.json.end.sum_sent.bytes);
      }
      expect(w.pids).toContain(a.pid);
      expect(w.pids).toContain(b.pid);
    } finally {
      w.close();
    }
  }, 60_000);
});

describe.skipIf(skip)('top reading: tunnelled traffic (awg apply, rule r1 → t1)', () => {
  let t: PerAppTopology;
  let ce: AwgEnv;
  const iperfServers: NsProcess[] = [];
  // a server per client (PORT above)
  const TUNNELLED = { tcp: 5201, udp: 5202 } as const;

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createPerAppTopology({ ports: [8001] });
    ce = makeAwgEnv();
    const cfg = join(ce.dir, 'client.yaml');
    writeFileSync(
      cfg,
      `version: 1\n${clientTunnels(t.keys)}rules:\n  - name: r1\n    match: { name: awgt-nothing-r1 }\n    target: t1\ndefault: direct\n`,
    );
    const r = await awgd(t.client, ce, [
      'apply',
      '-f',
      cfg,
      '--state-dir',
      ce.stateDir,
      '--direct',
    ]);
    if (r.code !== 0) throw new Error(`apply: ${showRun(r)}`);
    for (const port of Object.values(TUNNELLED))
      iperfServers.push(nsSpawn(t.server, 'iperf3', ['-s', '-p', String(port), '-B', ADDR.server]));
    await eventually(async () => {
      const s = await nsExec(t.server, 'ss', ['-Htln'], { allowFail: true });
      return Object.values(TUNNELLED).every((p) => s.stdout.includes(`:${p} `));
    }, 'the iperf3 servers listen');
  }, 180_000);

  afterAll(async () => {
    for (const s of iperfServers) await s.kill(1000);
    if (t)
      await awgd(t.client, ce, ['down', '--state-dir', ce.stateDir, '--direct']).catch(
        () => undefined,
      );
    await t?.destroy();
    if (ce) cleanupAwgEnv(ce);
  }, 120_000);

  it('awg set the accounting sysctl; TCP and UDP of a placed iperf3 carry r1 and t1, within 2 %', async () => {
    const acct = await nsExec(t.client, 'sysctl', ['-n', 'net.netfilter.nf_conntrack_acct']);
    expect(acct.stdout.trim()).toBe('1');
    const cg = join(cgroupDir(ce), 'r1', 'cgroup.procs');
    const placed = (args: string[]) => placedIperf(t.client, cg, args);
    const w = new Watch(t.client, ce.cgroupRoot);
    try {
      w.start();
      for (const [proto, extra] of [
        ['tcp', ['-t', '2']],
        ['udp', ['-u', '-b', '10M', '-t', '2']],
      ] as const) {
        const { pid, json } = await placed([
          '-c',
          ADDR.server,
          '-p',
          String(TUNNELLED[proto]),
          ...extra,
        ]);
        const port = json.start.connected[0]!.local_port;
        await eventually(
          () => proto === 'udp' || w.flows('tcp', port).some((f) => f.closed),
          'the closed connection’s final counts',
          10_000,
        );
        await w.read();
        const [f] = w.flows(proto, port);
        expect(f, `${proto} flow of local port ${port}`).toBeDefined();
        expect(f).toMatchObject({
          pid,
          cgroup: `/${ce.cgroupRoot}/r1`,
          remote: { addr: ADDR.server },
        });
        expect((f!.mark ?? 0) & 0x0f000000, 'the tunnel’s mark bits').not.toBe(0);
        expect(w.procs.get(pid)).toMatchObject({ name: 'iperf3', cgroup: `/${ce.cgroupRoot}/r1` });
        near(f!.sent, json.end.sum_sent.bytes);
        if (proto === 'udp') exactUdp(f!.sent, json.end.sum_sent.bytes);
      }
      expect([...w.warnings]).toEqual([]);
    } finally {
      w.close();
    }
    // the engine's own transport (UDP to the peer) is there too, as the engine's
    expect([...w.last.values()].some((f) => f.proto === 'udp' && f.remote.port === 51820)).toBe(
      true,
    );
  }, 120_000);
});

/** iperf3 in `cgroup.procs` `cg` before it starts (placed as the placer would place it) */
async function placedIperf(
  ns: string,
  cg: string,
  args: string[],
): Promise<{ pid: number; json: IperfJson }> {
  const p = nsSpawn(ns, 'sh', ['-c', `echo $$ > ${cg} && exec iperf3 "$@"`, 'sh', ...args, '-J']);
  const code = await p.exited;
  const out = p.output();
  const json = JSON.parse(out.slice(out.indexOf('{'))) as IperfJson;
  if (code !== 0 || json.error) throw new Error(`iperf3 ${args.join(' ')}: ${json.error ?? code}`);
  return { pid: p.pid, json };
}
