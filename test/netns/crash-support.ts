/**
 * The crash-point harness (docs/architecture.md, "Crash safety"): SIGKILL an awg process at
 * every crash point (src/util/crash-point.ts) of a scenario, then prove the host recovers.
 *
 * For each scenario: one run with AWG_CRASH_TRACE lists its points (a label and its
 * occurrence: the n-th time that label was reached). Then, for each point: the scenario's start
 * state is set up on the host as it was before awg ever ran (the pristine snapshot); a leak
 * probe starts (an app that sends TCP, UDP, DNS and DNS-over-TLS every 150 ms, and tcpdump on
 * the client's underlay) when the kill switch holds from the start; the scenario's command runs
 * with AWG_CRASH_AT=<label>#<n> and must die by SIGKILL there. Afterwards:
 * - the state directory is readable: every record parses, nothing is set aside as corrupt, and
 *   after the recovery no temporary file of an interrupted write is left;
 * - the next `awg apply` converges (exit 0) and `awg diff` then finds nothing to do;
 * - the leak probe saw nothing leave by the underlay but WireGuard to the endpoint (ARP, ND,
 *   DHCP aside), from the start to the end of the recovery; for `awg down`, whose job is to
 *   open the kill switch, only when the table was still there after the crash;
 * - `awg down` returns the host exactly to the pristine snapshot (links, addresses, routes,
 *   rules, the nft ruleset, sysctls, resolv.conf, cgroups), and no process is left in the
 *   client's network namespace.
 *
 * Uses the leak tests' four-namespace topology and its real WireGuard peer (leak-support.ts).
 * The CI subset (test/netns/crash-points.test.ts) takes every k-th point of each scenario; the
 * full run is bench/crash-points.bench.ts.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  cgroupDir,
  cleanupAwgEnv,
  makeAwgEnv,
  snapshotHost,
  wgKeyPair,
  type AwgEnv,
  type HostSnapshot,
} from '../helpers/awg.js';
import { netnsPath, nsExec, type NsProcess } from '../helpers/netns.js';
import { runProcess } from '../../src/util/exec.js';
import {
  ENDPOINT,
  SERVER_RAW_TARGET,
  WG_PORT,
  awgCli,
  awgSpawn,
  buildTopo,
  capture,
  classify,
  destroyTopo,
  parsePcap,
  rawApp,
  sleep,
  startPeer,
  vpnTunnel,
  type App,
  type Capture,
  type Topo,
} from './leak-support.js';
import { converged, upEvents } from './daemon-support.js';

export interface CrashWorld {
  t: Topo;
  e: AwgEnv;
  /** config A (the start), B (the change), C (A and a tunnel whose engine exits at once) */
  cfgA: string;
  cfgB: string;
  cfgC: string;
  /** the file a daemon follows (A, then B written over it) */
  follow: string;
  /** the kill switch the early unit loads at boot, for config A */
  bootFile: string;
  pristine: HostSnapshot;
}

/**
 * A (and B, the change): one real tunnel (the default), a second one whose peer never answers,
 * a per-app rule into it, the system resolver on the tunnel's DNS (A) or kept (B), DNS leak
 * protection, IPv6 blocked, the kill switch
 */
function config(
  t: Topo,
  o: { second: string; third: number; rule: string; system: string; broken?: boolean },
): string {
  return `version: 1
tunnels:
${vpnTunnel(t)}  ${o.second}:
    type: wireguard
    privateKey: "${wgKeyPair().privateKey}"
    addresses: [10.200.${o.third}.2/32]
    peers:
      - publicKey: "${wgKeyPair().publicKey}"
        endpoint: ${ENDPOINT}:${WG_PORT + o.third}
        allowedIPs: [10.200.${o.third + 100}.0/24]
${
  o.broken
    ? `  broken:
    type: wireguard
    engine: { external: /bin/false }
    privateKey: "${wgKeyPair().privateKey}"
    addresses: [10.200.63.2/32]
    peers:
      - publicKey: "${wgKeyPair().publicKey}"
        endpoint: ${ENDPOINT}:${WG_PORT + 63}
        allowedIPs: [10.200.163.0/24]
`
    : ''
}rules:
  - name: ${o.rule}
    match: { name: crash-app-${o.rule} }
    target: ${o.second}
default: vpn
dns: { leakProtection: true, system: ${o.system} }
ipv6: block
killSwitch: { enabled: true, allowLan: false }
`;
}

/** the endpoint ports of the configs' tunnels: vpn, aux (A), alt (B), broken (C) */
const TUNNEL_PORTS = [WG_PORT, WG_PORT + 61, WG_PORT + 62, WG_PORT + 63];

export async function buildWorld(tag: string): Promise<CrashWorld> {
  const t = await buildTopo(tag);
  let e: AwgEnv | undefined;
  try {
    await startPeer(t);
    e = makeAwgEnv();
    const cfgA = join(e.dir, 'a.yaml');
    const cfgB = join(e.dir, 'b.yaml');
    writeFileSync(
      cfgA,
      config(t, { second: 'aux', third: 61, rule: 'one', system: 'default-tunnel' }),
    );
    writeFileSync(cfgB, config(t, { second: 'alt', third: 62, rule: 'two', system: 'keep' }));
    const cfgC = join(e.dir, 'c.yaml');
    writeFileSync(
      cfgC,
      config(t, {
        second: 'aux',
        third: 61,
        rule: 'one',
        system: 'default-tunnel',
        broken: true,
      }),
    );
    const pristine = await snapshotHost(t.client, e);
    // the boot kill switch of A: what awg-killswitch.service loads before the network
    const r = await awgCli(t.client, e, ['apply', '-f', cfgA]);
    if (r.code !== 0) throw new Error(`crash world: apply A failed: ${r.out}`);
    const bootFile = join(e.dir, 'boot-a.nft');
    copyFileSync(join(e.stateDir, 'killswitch-boot.nft'), bootFile);
    const d = await awgCli(t.client, e, ['down']);
    if (d.code !== 0) throw new Error(`crash world: down failed: ${d.out}`);
    return { t, e, cfgA, cfgB, cfgC, follow: join(e.dir, 'follow.yaml'), bootFile, pristine };
  } catch (err) {
    await destroyTopo(t);
    if (e) cleanupAwgEnv(e);
    throw err;
  }
}

export async function destroyWorld(w: CrashWorld | undefined): Promise<void> {
  if (!w) return;
  await awgCli(w.t.client, w.e, ['down']).catch(() => undefined);
  await destroyTopo(w.t);
  // the client's env (configs, state, captures): it was left in /tmp after every run
  cleanupAwgEnv(w.e);
}

// ---------------------------------------------------------------------------------------
// scenarios

export interface CrashRun {
  /** died by SIGKILL (at the point) */
  killed: boolean;
  out: string;
}

export interface Scenario {
  name: string;
  /** the start state, from the pristine host */
  start(w: CrashWorld): Promise<void>;
  /** the command that is crashed; `env` carries AWG_CRASH_AT or AWG_CRASH_TRACE */
  run(w: CrashWorld, env: NodeJS.ProcessEnv): Promise<CrashRun>;
  /** the trace's points before this mark (a daemon's start) are not this scenario's */
  traceFrom?: string;
  /** the config the host converges to afterwards */
  final(w: CrashWorld): string;
  /** the kill switch holds from the start: the leak probe runs ('if-table': unless the crash left no table) */
  probe: boolean | 'if-table';
}

async function mustApply(w: CrashWorld, cfg: string): Promise<void> {
  const r = await awgCli(w.t.client, w.e, ['apply', '-f', cfg]);
  if (r.code !== 0) throw new Error(`start state: awg apply -f ${cfg} failed: ${r.out}`);
}

/** a one-shot awg command with extra environment; killed: ended by SIGKILL */
async function cli(w: CrashWorld, args: string[], env: NodeJS.ProcessEnv): Promise<CrashRun> {
  const e = { ...w.e, env: { ...w.e.env, ...env } };
  const r = await awgCli(w.t.client, e, args);
  // nsenter exec'd node: SIGKILL shows as 128 + 9 from runProcess's signal code
  return { killed: r.code === 137 || r.code === 128, out: r.out };
}

/**
 * `awg up -f <file>` with extra environment, driven through `steps` (each waits for the
 * daemon, or acts on it) until it exits; a step reached after the daemon died ends the run.
 */
async function daemonRun(
  w: CrashWorld,
  file: string,
  env: NodeJS.ProcessEnv,
  steps: ((up: ReturnType<typeof upEvents>, p: NsProcess) => Promise<void>)[],
): Promise<CrashRun> {
  const e = { ...w.e, env: { ...w.e.env, ...env } };
  const p = awgSpawn(w.t.client, e, ['up', '-f', file, '--json']);
  const up = upEvents(p, 60_000);
  try {
    for (const s of steps) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) break;
      await s(up, p).catch((err: unknown) => {
        if (p.child.exitCode === null && p.child.signalCode === null) throw err;
      });
    }
    await Promise.race([p.exited, sleep(60_000)]);
  } finally {
    if (p.child.exitCode === null && p.child.signalCode === null) await p.kill();
  }
  return { killed: p.child.signalCode === 'SIGKILL', out: p.output() };
}

const waitConverged =
  (from = 0) =>
  async (up: ReturnType<typeof upEvents>) => {
    await up.waitEvent(converged, from, 60_000);
  };
const stop = async (_up: unknown, p: NsProcess) => {
  p.child.kill('SIGTERM');
  await p.exited;
};
/** a daemon's trace mark (AWG_CRASH_TRACE gets it appended once it converged) */
const MARK = 'harness:converged';
const markTrace = (env: NodeJS.ProcessEnv) => async () => {
  if (env.AWG_CRASH_TRACE) writeFileSync(env.AWG_CRASH_TRACE, `${MARK}\t1\n`, { flag: 'a' });
};

export const SCENARIOS: Scenario[] = [
  {
    name: 'apply after boot',
    // the early unit loaded A's kill switch; then the first apply
    start: async (w) => {
      const r = await nsExec(w.t.client, 'nft', ['-f', w.bootFile], { allowFail: true });
      if (r.code !== 0) throw new Error(`boot kill switch: ${r.stderr}`);
    },
    run: (w, env) => cli(w, ['apply', '-f', w.cfgA], env),
    final: (w) => w.cfgA,
    probe: true,
  },
  {
    name: 'apply from nothing',
    start: async () => {},
    run: (w, env) => cli(w, ['apply', '-f', w.cfgA], env),
    final: (w) => w.cfgA,
    probe: false,
  },
  {
    name: 'apply of a changed config',
    start: (w) => mustApply(w, w.cfgA),
    run: (w, env) => cli(w, ['apply', '-f', w.cfgB], env),
    final: (w) => w.cfgB,
    probe: true,
  },
  {
    name: 'apply that fails and ends fail-closed',
    // C's third engine exits at once: the apply fails, the rollback keeps the kill switch
    start: (w) => mustApply(w, w.cfgA),
    run: (w, env) => cli(w, ['apply', '-f', w.cfgC], env),
    final: (w) => w.cfgA,
    probe: true,
  },
  {
    name: 'down',
    start: (w) => mustApply(w, w.cfgA),
    run: (w, env) => cli(w, ['down'], env),
    final: (w) => w.cfgA,
    probe: 'if-table',
  },
  {
    name: 'daemon start (adopts a one-shot apply)',
    start: (w) => mustApply(w, w.cfgA),
    run: (w, env) => daemonRun(w, w.cfgA, env, [waitConverged(), stop]),
    final: (w) => w.cfgA,
    probe: true,
  },
  {
    name: 'daemon follows a config change',
    start: async (w) => {
      copyFileSync(w.cfgA, w.follow);
      await mustApply(w, w.follow);
    },
    run: (w, env) =>
      daemonRun(w, w.follow, env, [
        waitConverged(),
        markTrace(env),
        async (up) => {
          const from = up.events().length;
          copyFileSync(w.cfgB, w.follow);
          await waitConverged(from)(up);
        },
        stop,
      ]),
    traceFrom: MARK,
    final: (w) => w.cfgB,
    probe: true,
  },
  {
    name: 'daemon stop (kill switch kept)',
    start: (w) => mustApply(w, w.cfgA),
    run: (w, env) => daemonRun(w, w.cfgA, env, [waitConverged(), markTrace(env), stop]),
    traceFrom: MARK,
    final: (w) => w.cfgA,
    probe: true,
  },
];

// ---------------------------------------------------------------------------------------
// points

export interface Point {
  scenario: string;
  label: string;
  n: number;
}

export const pointId = (p: Point) => `${p.label}#${p.n}`;

/** Run the scenario once with AWG_CRASH_TRACE: its points, in the order they were reached. */
export async function tracePoints(w: CrashWorld, s: Scenario): Promise<Point[]> {
  const file = join(w.e.dir, `trace-${Date.now()}.txt`);
  writeFileSync(file, '');
  await reset(w);
  await s.start(w);
  const r = await s.run(w, { AWG_CRASH_TRACE: file });
  if (r.killed) throw new Error(`${s.name}: the traced run was killed: ${r.out}`);
  let lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t') as [string, string]);
  if (s.traceFrom) {
    const i = lines.findIndex(([l]) => l === s.traceFrom);
    if (i < 0) throw new Error(`${s.name}: the trace has no mark ${s.traceFrom}: ${r.out}`);
    lines = lines.slice(i + 1);
  }
  await reset(w);
  return lines.map(([label, n]) => ({ scenario: s.name, label, n: Number(n) }));
}

/** every k-th point, first and last included, so a subset still spans the scenario */
export function spread<T>(xs: T[], n: number): T[] {
  if (xs.length <= n) return xs;
  if (n <= 1) return n === 1 ? [xs[xs.length >> 1]!] : [];
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(xs[Math.round((i * (xs.length - 1)) / (n - 1))]!);
  return [...new Set(out)];
}

// ---------------------------------------------------------------------------------------
// one point

export interface PointResult {
  point: Point;
  /** the command died at the point (false: it was not reached this time) */
  reached: boolean;
  problems: string[];
  leaks: number;
  /** false when the probe did not apply (no kill switch from the start, or down removed it) */
  probed: boolean;
  ms: number;
  /** the crashed command's output when it was not killed at the point (why it was not reached) */
  out?: string;
}

/** back to the pristine host: whatever awg left, and a boot table loaded by hand */
async function reset(w: CrashWorld): Promise<void> {
  await awgCli(w.t.client, w.e, ['down']);
  await nsExec(w.t.client, 'nft', ['delete', 'table', 'inet', 'awg'], { allowFail: true });
}

/**
 * Put the client back to its pristine snapshot by hand, after a point that failed (awg's own
 * `down` could not): its processes killed, every link, table, rule and route in awg's band
 * removed, sysctls, resolv.conf, the cgroup subtree and the state directory as they were.
 * Throws when even that does not give the snapshot back (the run cannot go on).
 */
export async function scrub(w: CrashWorld): Promise<void> {
  const ns = w.t.client;
  for (const l of processesIn(ns))
    await runProcess('kill', ['-9', l.split(':')[0]!], { allowFail: true });
  const links = JSON.parse((await nsExec(ns, 'ip', ['-j', 'link', 'show'])).stdout) as {
    ifname: string;
  }[];
  for (const l of links)
    if (l.ifname.startsWith('awg-') || l.ifname.startsWith('awgq-'))
      await nsExec(ns, 'ip', ['link', 'del', 'dev', l.ifname], { allowFail: true });
  await nsExec(ns, 'nft', ['delete', 'table', 'inet', 'awg'], { allowFail: true });
  for (const f of ['-4', '-6']) {
    for (let pref = 5200; pref < 5300; pref++)
      while (
        (await nsExec(ns, 'ip', [f, 'rule', 'del', 'pref', String(pref)], { allowFail: true }))
          .code === 0
      );
    for (let table = 52000; table < 52100; table++)
      await nsExec(ns, 'ip', [f, 'route', 'flush', 'table', String(table)], { allowFail: true });
  }
  for (const line of w.pristine.sysctls.split('\n')) {
    const m = /^(\S+) = (.*)$/.exec(line);
    if (m) await nsExec(ns, 'sysctl', ['-qw', `${m[1]}=${m[2]}`], { allowFail: true });
  }
  const dns = w.pristine.dns;
  if (dns.kind === 'file') {
    writeFileSync(w.e.resolvConf, Buffer.from(dns.content ?? '', 'base64'));
    chmodSync(w.e.resolvConf, dns.mode ?? 0o644);
  }
  const root = cgroupDir(w.e);
  const rmTree = (d: string) => {
    if (!existsSync(d)) return;
    for (const x of readdirSync(d, { withFileTypes: true }))
      if (x.isDirectory()) rmTree(join(d, x.name));
    rmdirSync(d);
  };
  for (const x of existsSync(root) ? readdirSync(root, { withFileTypes: true }) : [])
    if (x.isDirectory()) rmTree(join(root, x.name));
  if (w.pristine.cgroups.length === 0 && existsSync(root)) rmdirSync(root);
  rmSync(w.e.stateDir, { recursive: true, force: true });
  const now = await snapshotHost(ns, w.e);
  if (JSON.stringify(now) !== JSON.stringify(w.pristine))
    throw new Error(`the client could not be scrubbed back: ${snapshotDiff(w.pristine, now)}`);
}

/** the processes whose network namespace is the client's (pids), but `except` */
export function processesIn(ns: string, except: number[] = []): string[] {
  const want = statSync(netnsPath(ns)).ino;
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || except.includes(Number(d))) continue;
    try {
      const link = readlinkSync(`/proc/${d}/ns/net`);
      if (link === `net:[${want}]`) {
        const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim();
        if (cmd) out.push(`${d}: ${cmd.slice(0, 160)}`);
      }
    } catch {
      /* gone */
    }
  }
  return out;
}

/** the state directory's problems: records that do not parse, records set aside, temp files */
export function stateProblems(dir: string, tempsAllowed: boolean): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    if (f.includes('.corrupt-')) out.push(`a record was set aside: ${f}`);
    else if (f.endsWith('.tmp')) {
      if (!tempsAllowed) out.push(`a temporary file was left: ${f}`);
    } else if (f.endsWith('.json')) {
      try {
        JSON.parse(readFileSync(join(dir, f), 'utf8'));
      } catch (e) {
        out.push(`${f} does not parse: ${(e as Error).message}`);
      }
    }
  }
  return out;
}

export async function runPoint(w: CrashWorld, s: Scenario, p: Point): Promise<PointResult> {
  const t0 = Date.now();
  const problems: string[] = [];
  await reset(w);
  await s.start(w);
  let cap: Capture | undefined;
  let app: App | undefined;
  if (s.probe) {
    cap = await capture(w.t, w.e.dir);
    app = rawApp(w.t, `crash${t0}`, SERVER_RAW_TARGET, '10.200.1.1');
    await app.moreRounds(2);
  }
  const r = await s.run(w, { AWG_CRASH_AT: pointId(p) });
  let probed = Boolean(s.probe);
  if (s.probe === 'if-table') {
    const t = await nsExec(w.t.client, 'nft', ['list', 'table', 'inet', 'awg'], {
      allowFail: true,
    });
    probed = t.code === 0;
  }
  // right after the crash: the records written so far still read (temp files are swept later)
  problems.push(...stateProblems(w.e.stateDir, true).map((x) => `after the crash: ${x}`));
  const rec = await awgCli(w.t.client, w.e, ['apply', '-f', s.final(w)]);
  if (rec.code !== 0) problems.push(`the next awg apply did not converge: ${rec.out}`);
  else {
    const diff = await awgCli(w.t.client, w.e, ['diff', '-f', s.final(w)]);
    if (diff.code !== 0) problems.push(`awg diff after the recovery is not empty: ${diff.out}`);
  }
  problems.push(...stateProblems(w.e.stateDir, false).map((x) => `after the recovery: ${x}`));
  let leaks = 0;
  if (app && cap) {
    await app.moreRounds(2);
    await app.proc.kill();
    const pkts = parsePcap(await cap.stop(), w.t.clientMac);
    if (probed) {
      // every config's tunnels have the endpoint host as their peer, each on a port of its
      // own: their handshakes (the daemon's health probes start them) are the tunnels' carrier
      const v = classify(pkts, { allowLan: false, wgPorts: TUNNEL_PORTS });
      leaks = v.leaks.length;
      if (leaks)
        problems.push(`${leaks} packet(s) left by the underlay: ${v.leaks.slice(0, 5).join('; ')}`);
    }
  }
  const down = await awgCli(w.t.client, w.e, ['down']);
  if (down.code !== 0) problems.push(`awg down failed: ${down.out}`);
  const after = await snapshotHost(w.t.client, w.e);
  if (JSON.stringify(after) !== JSON.stringify(w.pristine))
    problems.push(`awg down did not restore the snapshot: ${snapshotDiff(w.pristine, after)}`);
  const left = processesIn(w.t.client);
  if (left.length) problems.push(`processes left in the namespace: ${left.join('; ')}`);
  // the next point starts from the pristine host, whatever this one left
  if (problems.length) await scrub(w);
  return {
    point: p,
    reached: r.killed,
    problems: r.killed ? problems : [],
    leaks,
    probed,
    ms: Date.now() - t0,
    ...(r.killed ? {} : { out: r.out.slice(0, 600) }),
  };
}

/** the first differing part of two snapshots, for a failure message */
export function snapshotDiff(a: HostSnapshot, b: HostSnapshot): string {
  for (const k of Object.keys(a) as (keyof HostSnapshot)[]) {
    const x = JSON.stringify(a[k]);
    const y = JSON.stringify(b[k]);
    if (x === y) continue;
    if (k === 'net')
      for (const n of Object.keys(a.net) as (keyof HostSnapshot['net'])[]) {
        const xn = JSON.stringify(a.net[n]);
        const yn = JSON.stringify(b.net[n]);
        if (xn !== yn) return `net.${n}: ${xn.slice(0, 300)} → ${yn.slice(0, 300)}`;
      }
    return `${k}: ${x.slice(0, 300)} → ${y.slice(0, 300)}`;
  }
  return 'no difference';
}
