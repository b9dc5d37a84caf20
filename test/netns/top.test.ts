/**
 * `awg top` against the real kernel: its per-process byte counts are iperf3's own.
 *
 * Topology: client ⇄ veth ⇄ peer (IPv4 and IPv6). The peer runs an awg WireGuard peer
 * (`awg apply`) and iperf3 servers, reached from the client at the peer's veth addresses
 * (direct) and at its tunnel addresses (through the tunnel `vpn`). The client is applied with
 * `ipv6: tunnel` and a rule `bulk` → vpn that `awg exec --rule bulk` joins.
 *
 * While `awg top --json` follows the client's namespace (`--direct`, then through `awg daemon`),
 * iperf3 clients run there — TCP both ways and UDP at a fixed rate, IPv4 and IPv6, direct (no
 * awg exec), through the tunnel (`awg exec --tunnel vpn`) and two at once in the rule — and each
 * one's totals in the document (the row of its pid) must agree with iperf3's report within 2 %,
 * with its rule and route. `--once` gives one snapshot, one interval after the start, that
 * names a running iperf3 with its rates.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  awgArgv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  wgKeyPair,
  writeConfig,
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
import { TopDocument, type TopProcess } from '../../src/procs/top/document.js';
import { eventually } from './daemon-support.js';

const skip = requireNetnsPrereqs(['nft', 'iperf3', 'sysctl']);

const C4 = '10.200.9.1';
const P4 = '10.200.9.2';
const C6 = 'fd00:200::9:1';
const P6 = 'fd00:200::9:2';
const TUN4_P = '10.200.51.2';
const TUN6_C = 'fd00:200::51:1';
const TUN6_P = 'fd00:200::51:2';
const PORTS = [5201, 5202];

interface Run {
  proto: 'tcp' | 'udp';
  family: 4 | 6;
  /** direct: a plain process; tunnel: `awg exec --tunnel vpn`; rule: `awg exec --rule bulk` */
  via: 'direct' | 'tunnel' | 'rule';
  /** iperf3 -R: the client receives */
  reverse?: boolean;
  /** TCP: the rate (iperf3 -b), default 200M */
  rate?: string;
  port?: number | undefined;
}

interface Measured {
  run: Run;
  pid: number;
  /** what iperf3 says the client sent (received with -R) */
  iperf: number;
  /** the pid's row in awg top's last document */
  row: TopProcess;
}

const label = (r: Run) => `${r.proto}${r.family} ${r.via}${r.reverse ? ' download' : ' upload'}`;

describe.skipIf(skip)('awg top: per-process bytes agree with iperf3', () => {
  let c = '';
  let p = '';
  let ce: AwgEnv;
  let pe: AwgEnv;
  let cfg = '';
  const servers: NsProcess[] = [];
  let daemon: NsProcess | undefined;
  const table: string[] = [];
  const keys = { client: wgKeyPair(), peer: wgKeyPair() };
  let n = 0;

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    c = await createNetns('top-c');
    p = await createNetns('top-p');
    await vethPair(c, p, {
      addrA: [`${C4}/24`, `${C6}/112`],
      addrB: [`${P4}/24`, `${P6}/112`],
    });
    await run('ip', ['-n', c, 'route', 'add', 'default', 'via', P4]);
    await run('ip', ['-n', c, '-6', 'route', 'add', 'default', 'via', P6]);
    pe = makeAwgEnv();
    ce = makeAwgEnv();
    const peerCfg = writeConfig(
      pe,
      'peer.yaml',
      `version: 1
tunnels:
  srv:
    type: wireguard
    privateKey: "${keys.peer.privateKey}"
    addresses: [${TUN4_P}/24, ${TUN6_P}/112]
    listenPort: 51820
    peers:
      - publicKey: "${keys.client.publicKey}"
        allowedIPs: [10.200.51.1/32, ${TUN6_C}/128]
ipv6: tunnel
`,
    );
    const a = await awg(p, pe, ['apply', '-f', peerCfg]);
    expect(a.code, show(a)).toBe(0);
    for (const port of PORTS) servers.push(nsSpawn(p, 'iperf3', ['-s', '-p', String(port)]));
    cfg = writeConfig(
      ce,
      'client.yaml',
      `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${keys.client.privateKey}"
    addresses: [10.200.51.1/24, ${TUN6_C}/112]
    peers:
      - publicKey: "${keys.peer.publicKey}"
        endpoint: ${P4}:51820
        persistentKeepalive: 5
        allowedIPs: [10.200.51.0/24, ${TUN6_P}/128]
rules:
  - name: bulk
    match: { name: awg-top-test-none }
    target: vpn
ipv6: tunnel
`,
    );
    const b = await awg(c, ce, ['apply', '-f', cfg]);
    expect(b.code, show(b)).toBe(0);
    // UDP byte counts come from conntrack, which counts only with accounting on (per namespace)
    await nsExec(c, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1']);
    // the tunnel carries traffic before anything is measured
    await eventually(async () => {
      const r = await iperfOnce({ proto: 'tcp', family: 4, via: 'tunnel' });
      return r !== 'busy' && r.iperf > 0;
    }, 'iperf3 through the tunnel');
  }, 120_000);

  afterAll(async () => {
    if (table.length) console.log(['awg top vs iperf3:', ...table].join('\n  '));
    await daemon?.kill(10_000);
    for (const s of servers) await s.kill(1000);
    if (c) await awg(c, ce, ['down', '--direct']).catch(() => undefined);
    if (p) await awg(p, pe, ['down']).catch(() => undefined);
    if (c) await destroyNetns(c);
    if (p) await destroyNetns(p);
    cleanupAwgEnv(ce);
    cleanupAwgEnv(pe);
  });

  const awgProc = (args: string[]): NsProcess => {
    const argv = awgArgv(c, ce, args, { noStateDir: true });
    return nsSpawn(c, argv[3]!, argv.slice(4), { env: ce.env });
  };

  /** iperf3 in the client namespace as `run` says: its pid and what it reports, or 'busy' */
  async function iperfOnce(r: Run): Promise<{ pid: number; iperf: number } | 'busy'> {
    // the server's own address on the path: its UDP replies come from the address a route
    // lookup picks, which must be the one the client sent to
    const host = r.via === 'direct' ? (r.family === 4 ? P4 : P6) : r.family === 4 ? TUN4_P : TUN6_P;
    const args = [
      '-c',
      host,
      '-p',
      String(r.port ?? PORTS[0]),
      '-J',
      // a few intervals long: the monitor names a socket's process while it is open (one that
      // opens and closes between two readings is counted, but unattributed)
      '-t',
      '2',
      ...(r.proto === 'udp' ? ['-u', '-b', '40M', '-l', '1200'] : ['-b', r.rate ?? '200M']),
      ...(r.reverse ? ['-R'] : []),
    ];
    const pidFile = join(ce.dir, `iperf-${++n}.pid`);
    // the shell's pid becomes iperf3's at exec: the pid awg top must list
    const sh = `echo $$ > ${pidFile}; exec iperf3 ${args.join(' ')}`;
    const proc =
      r.via === 'direct'
        ? nsSpawn(c, 'sh', ['-c', sh])
        : awgProc([
            'exec',
            '--state-dir',
            ce.stateDir,
            ...(r.via === 'tunnel' ? ['--tunnel', 'vpn'] : ['--rule', 'bulk']),
            '--',
            'sh',
            '-c',
            sh,
          ]);
    const code = await proc.exited;
    const out = proc.output();
    if (/server is busy/.test(out)) return 'busy';
    expect(code, `${label(r)}: ${out}`).toBe(0);
    const j = JSON.parse(out.slice(out.indexOf('{'))) as {
      error?: string;
      end: {
        sum?: { bytes: number };
        sum_sent: { bytes: number };
        sum_received: { bytes: number };
      };
    };
    expect(j.error, `${label(r)}: iperf3 failed`).toBeUndefined();
    const iperf =
      r.proto === 'udp'
        ? j.end.sum!.bytes
        : r.reverse
          ? j.end.sum_received.bytes
          : j.end.sum_sent.bytes;
    return { pid: Number(readFileSync(pidFile, 'utf8').trim()), iperf };
  }

  async function iperf(r: Run): Promise<{ pid: number; iperf: number }> {
    for (let tries = 1; ; tries++) {
      const x = await iperfOnce(r);
      if (x !== 'busy') return x;
      // the server takes one test at a time and may still be closing the last one
      if (tries >= 20) throw new Error(`${label(r)}: the iperf3 server stayed busy`);
      await new Promise((res) => setTimeout(res, 300));
    }
  }

  /** `awg top --json` running in the client namespace, its documents as they come */
  function follow(extra: string[]) {
    const proc = awgProc(['top', '--json', '--interval', '0.5', ...extra]);
    // whole lines only (the last may be half written); a line that is not a valid document fails
    const docs = () =>
      proc
        .output()
        .split('\n')
        .slice(0, -1)
        .filter((l) => l.startsWith('{'))
        .map((l) => TopDocument.parse(JSON.parse(l)));
    const waitDocs = async (count: number) =>
      eventually(async () => {
        if (proc.child.exitCode !== null)
          throw new Error(`awg top exited ${proc.child.exitCode}: ${proc.output()}`);
        return docs().length >= count;
      }, `${count} documents from awg top`);
    return { proc, docs, waitDocs };
  }

  /**
   * Run `runs` at once while `top` follows; then wait until each pid's totals held still over
   * two documents after the runs ended (the last bytes of a closed connection come with the
   * kernel's notice that its socket was freed) and take its row.
   */
  async function measure(top: ReturnType<typeof follow>, runs: Run[]): Promise<Measured[]> {
    const results = await Promise.all(runs.map((r) => iperf(r)));
    const from = top.docs().length;
    let rows: (TopProcess | undefined)[] = [];
    await eventually(
      async () => {
        if (top.proc.child.exitCode !== null)
          throw new Error(`awg top exited ${top.proc.child.exitCode}: ${top.proc.output()}`);
        if (top.docs().length < from + 2) return false;
        const [a, b] = top.docs().slice(-2);
        rows = results.map((x) => b!.processes.find((q) => q.pid === x.pid));
        return results.every((x) => {
          const before = a!.processes.find((q) => q.pid === x.pid);
          const now = b!.processes.find((q) => q.pid === x.pid);
          return (
            now !== undefined &&
            before !== undefined &&
            now.sent === before.sent &&
            now.received === before.received
          );
        });
      },
      `the totals of ${runs.map(label).join(', ')} held still`,
    ).catch((e: unknown) => {
      const last = top.docs().at(-1);
      throw new Error(
        `${(e as Error).message}: pids ${results.map((x) => x.pid).join(', ')}; the last document's processes ${JSON.stringify(last?.processes)}, connections ${JSON.stringify(last?.connections)}, warnings ${JSON.stringify(last?.warnings)}`,
      );
    });
    return runs.map((run, i) => ({ run, ...results[i]!, row: rows[i]! }));
  }

  function check(m: Measured, mode: string): void {
    const ours = m.run.reverse ? m.row.received : m.row.sent;
    const off = (ours - m.iperf) / m.iperf;
    table.push(
      `${mode} ${label(m.run)}: iperf3 ${m.iperf} B, awg top ${ours} B (${(off * 100).toFixed(3)} %), pid ${m.pid}, rule ${m.row.rule ?? '-'}, route ${m.row.route}`,
    );
    expect(
      Math.abs(off),
      `${mode} ${label(m.run)}: iperf3 ${m.iperf}, awg top ${ours}`,
    ).toBeLessThanOrEqual(0.02);
    expect(m.row.exe).toMatch(/iperf3$/);
    if (m.run.via === 'direct') {
      expect(m.row.route).toBe('direct');
      expect(m.row.rule).toBeUndefined();
    } else {
      expect(m.row.route).toBe('vpn');
      expect(m.row.rule).toBe(m.run.via === 'tunnel' ? 'exec:vpn' : 'bulk');
    }
  }

  const MATRIX: Run[] = [
    { proto: 'tcp', family: 4, via: 'direct' },
    { proto: 'tcp', family: 6, via: 'direct' },
    { proto: 'udp', family: 4, via: 'direct' },
    { proto: 'udp', family: 6, via: 'direct' },
    { proto: 'tcp', family: 4, via: 'tunnel' },
    { proto: 'tcp', family: 6, via: 'tunnel' },
    { proto: 'tcp', family: 4, via: 'tunnel', reverse: true },
    { proto: 'tcp', family: 6, via: 'direct', reverse: true },
    { proto: 'udp', family: 4, via: 'tunnel' },
    { proto: 'udp', family: 6, via: 'tunnel' },
  ];

  /** two iperf3 clients of the rule `bulk` at once, with different amounts: two rows */
  async function twoOfOneRule(top: ReturnType<typeof follow>, mode: string): Promise<void> {
    // different rates: each row must hold its own process's bytes
    const ms = await measure(top, [
      { proto: 'tcp', family: 4, via: 'rule', rate: '200M', port: PORTS[0] },
      { proto: 'tcp', family: 6, via: 'rule', rate: '50M', port: PORTS[1] },
    ]);
    expect(ms[0]!.pid).not.toBe(ms[1]!.pid);
    for (const m of ms) check(m, `${mode} (two of rule bulk)`);
    const last = top.docs().at(-1)!;
    expect(last.rules.find((r) => r.name === 'bulk')!.processes).toBeGreaterThanOrEqual(2);
  }

  it('--direct: TCP and UDP, IPv4 and IPv6, direct and through the tunnel, both ways; two processes of one rule apart', async () => {
    const top = follow(['--direct', '--state-dir', ce.stateDir]);
    try {
      await top.waitDocs(1);
      for (const r of MATRIX) for (const m of await measure(top, [r])) check(m, '--direct');
      await twoOfOneRule(top, '--direct');
      // the tunnel's own row holds the tunnelled runs
      const last = top.docs().at(-1)!;
      expect(last.tunnels.find((t) => t.name === 'vpn')!.sent).toBeGreaterThan(50_000_000);
    } finally {
      await top.proc.kill(2000);
    }
  }, 240_000);

  it('--once --direct: one snapshot, one interval after the start, names a running iperf3', async () => {
    const pidFile = join(ce.dir, 'once.pid');
    const long = awgProc([
      'exec',
      '--state-dir',
      ce.stateDir,
      '--tunnel',
      'vpn',
      '--',
      'sh',
      '-c',
      `echo $$ > ${pidFile}; exec iperf3 -c ${TUN4_P} -p ${PORTS[0]} -u -b 20M -t 8 -l 1200`,
    ]);
    try {
      await eventually(async () => {
        try {
          return readFileSync(pidFile, 'utf8').trim() !== '';
        } catch {
          return false;
        }
      }, 'iperf3 started');
      const pid = Number(readFileSync(pidFile, 'utf8'));
      const r = await awg(c, ce, [
        'top',
        '--json',
        '--once',
        '--direct',
        '--interval',
        '1',
        '--state-dir',
        ce.stateDir,
      ]);
      expect(r.code, show(r)).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines).toHaveLength(1);
      const doc = TopDocument.parse(JSON.parse(lines[0]!));
      expect(doc.intervalMs).toBeGreaterThanOrEqual(900);
      const row = doc.processes.find((q) => q.pid === pid);
      expect(row, JSON.stringify(doc.processes)).toBeDefined();
      expect(row).toMatchObject({ rule: 'exec:vpn', route: 'vpn' });
      // 20 Mbit/s of payload is 2.5 MB/s
      expect(row!.upload, JSON.stringify(doc.connections)).toBeGreaterThan(1_500_000);
      expect(doc.connections.some((x) => x.pid === pid && x.proto === 'udp')).toBe(true);
    } finally {
      await long.kill(1000);
    }
  }, 60_000);

  it('through awg daemon: the same counts, and --once', async () => {
    const socket = join(ce.dir, 'run', 'awg.sock');
    daemon = awgProc(['daemon', '--config', cfg, '--state-dir', ce.stateDir, '--socket', socket]);
    await eventually(
      async () =>
        (await awg(c, ce, ['status', '--json', '--socket', socket], { noStateDir: true })).code ===
        0,
      'the daemon converged',
      60_000,
    );
    const top = follow(['--socket', socket]);
    try {
      await top.waitDocs(1);
      for (const r of [MATRIX[0]!, MATRIX[3]!, MATRIX[5]!, MATRIX[6]!, MATRIX[8]!])
        for (const m of await measure(top, [r])) check(m, 'daemon');
      await twoOfOneRule(top, 'daemon');
    } finally {
      await top.proc.kill(2000);
    }
    const once = await awg(c, ce, ['top', '--json', '--once', '--socket', socket], {
      noStateDir: true,
    });
    expect(once.code, show(once)).toBe(0);
    const docs = once.stdout.trim().split('\n');
    expect(docs).toHaveLength(1);
    expect(TopDocument.parse(JSON.parse(docs[0]!)).tunnels.map((t) => t.name)).toEqual(['vpn']);
  }, 240_000);
});
