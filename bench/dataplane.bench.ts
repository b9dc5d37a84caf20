/**
 * Step 3 benchmark: the embedded engine against wireguard-go, in the same run on the same
 * namespaces. Namespace A holds our engine (`awg apply`, tunnel 10.200.N+1.0/24) and a
 * wireguard-go (the anchor, 10.200.N+2.0/24); namespace B holds one wireguard-go peer for
 * each. Samples alternate awg / anchor per round:
 *
 * - iperf3 TCP A→B and B→A (-R) through each tunnel, Gbit/s and the ratio awg / anchor;
 * - CPU per Gbit/s of the A-side engine process (utime+stime deltas of /proc/PID/stat,
 *   cores busy / Gbit/s), and of B's wireguard-go;
 * - ping RTT through each tunnel minus the plain veth;
 * - handshake: the first ping after the peer was removed and re-added on the A side (the
 *   packet waits for a full handshake), minus nothing: raw first-ping time; 3 per round and
 *   target (`AWG_BENCH_FIRST_PINGS`), alternating awg / anchor;
 * - VmRSS of the engine and of wireguard-go after the throughput runs.
 *
 * Needs root, wireguard-go, wg, iperf3. `awg apply` and so the engine run from the installed
 * package's layout (`bundledLayout`: the bundle of a fresh `npm run build`, as `npm i -g` and the
 * .deb have it); `AWG_BENCH_LAYOUT=dist` runs the checkout's tsc dist/ instead (a clone's build,
 * whose module sources keep their comments: ≈ 2 MiB more heap).
 * `AWG_BENCH_ROUNDS`, `AWG_BENCH_SECONDS` override 5 rounds of 5 s; `AWG_BENCH_ANCHOR_NICE`
 * sets the anchor's autogroup nice (the engine sets its own: AWG_ENGINE_NICE);
 * `AWG_BENCH_PROFILE=DIR` makes the engine write a CPU profile and its memory use
 * (process.memoryUsage, V8 heap spaces) to DIR when it stops; `AWG_BENCH_ENGINE_ROOT` runs
 * another build's engine (see startEngineDirect).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../test/helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  netnsPath,
  nsSpawn,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../test/helpers/netns.js';
import {
  awgConfig,
  cpuSeconds,
  pingEventually,
  startWireguardGo,
  wgGoAddress,
  wgSetconf,
  wgVia,
  type WgGo,
} from '../test/netns/interop-wg.js';
import { autogroupNice } from '../src/native/sched.js';
import { bundledLayout } from './apply.bench.js';
import { median, type Sample } from './lib.js';

const read = (p: string) => readFileSync(p, 'utf8');

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(read(`/proc/${pid}/status`));
  return m ? Number(m[1]) / 1024 : NaN;
}

export function enginePid(link: string): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = read(`/proc/${d}/cmdline`).split('\0');
      if (argv.includes('engine') && argv.includes(link)) return Number(d);
    } catch {
      /* gone */
    }
  }
  throw new Error(`no engine process for ${link}`);
}

interface Target {
  name: 'awg' | 'anchor';
  /** tunnel address of the B side */
  peer: string;
  /** A-side engine pid */
  pidA: () => number;
  pidB: number;
  iperfPort: number;
  /** remove + re-add the A-side peer (drops the session) */
  resetPeer: () => Promise<void>;
}

interface Iperf {
  gbps: number;
  cpuA: number;
  cpuB: number;
}

function runIperf(nsA: string, t: Target, seconds: number, reverse: boolean) {
  return nsExec(
    nsA,
    'iperf3',
    [
      '-c',
      t.peer,
      '-p',
      String(t.iperfPort),
      '-t',
      String(seconds),
      '-J',
      ...(reverse ? ['-R'] : []),
    ],
    { timeoutMs: (seconds + 30) * 1000, allowFail: true },
  );
}

async function iperf(nsA: string, t: Target, seconds: number, reverse: boolean): Promise<Iperf> {
  const pa = t.pidA();
  const a0 = cpuSeconds(pa, read);
  const b0 = cpuSeconds(t.pidB, read);
  let r = await runIperf(nsA, t, seconds, reverse);
  // the server may still be closing the previous test
  for (let i = 0; i < 10 && r.stdout.includes('server is busy'); i++) {
    await new Promise((res) => setTimeout(res, 500));
    r = await runIperf(nsA, t, seconds, reverse);
  }
  const a1 = cpuSeconds(pa, read);
  const b1 = cpuSeconds(t.pidB, read);
  const j = JSON.parse(r.stdout || '{}') as {
    end?: { sum_received?: { bits_per_second: number; seconds: number } };
    error?: string;
  };
  const bps = j.end?.sum_received?.bits_per_second;
  if (!bps) throw new Error(`iperf3 through ${t.name} failed: ${j.error ?? r.stderr}`);
  const gbps = bps / 1e9;
  // CPU over the transfer time (the engines are idle around it)
  const wall = j.end!.sum_received!.seconds;
  return { gbps, cpuA: (a1 - a0) / wall / gbps, cpuB: (b1 - b0) / wall / gbps };
}

async function pingAvg(ns: string, addr: string, count: number): Promise<number> {
  const r = await nsExec(ns, 'ping', [
    '-n',
    '-q',
    '-c',
    String(count),
    '-i',
    '0.02',
    '-W',
    '1',
    addr,
  ]);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  if (!m) throw new Error(`ping ${addr}: ${r.stdout}`);
  return Number(m[1]);
}

async function firstPing(ns: string, addr: string): Promise<number> {
  const r = await nsExec(ns, 'ping', ['-n', '-c', '1', '-W', '10', addr], { allowFail: true });
  const m = /time=([\d.]+) ms/.exec(r.stdout);
  if (!m) throw new Error(`first ping ${addr} unanswered: ${r.stdout}`);
  return Number(m[1]);
}

/**
 * A preload that profiles an `awg engine` process with the inspector (NODE_OPTIONS refuses
 * --cpu-prof) and writes DIR/engine-PID.cpuprofile at exit; other processes are untouched.
 */
function profilePreload(work: string, dir: string): string {
  const p = join(work, 'profile-preload.mjs');
  writeFileSync(
    p,
    `import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
if (process.argv.includes('engine')) {
  process.on('exit', () => writeFileSync(${JSON.stringify(dir)} + '/engine-' + process.pid + '.memory.json',
    JSON.stringify({ usage: process.memoryUsage(), spaces: getHeapSpaceStatistics() }, null, 1)));
  const s = new Session();
  s.connect();
  s.post('Profiler.enable');
  s.post('Profiler.setSamplingInterval', { interval: 200 });
  s.post('Profiler.start');
  process.on('exit', () => s.post('Profiler.stop', (e, r) => {
    if (!e) writeFileSync(${JSON.stringify(dir)} + '/engine-' + process.pid + '.cpuprofile', JSON.stringify(r.profile));
  }));
}
`,
  );
  return p;
}

const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

/**
 * `AWG_BENCH_ENGINE_ROOT=DIR` (a copy of bin/ + dist/ + node_modules): start that build's
 * engine directly on a persistent TUN instead of through `awg apply`, so two builds can be
 * compared while other runs rebuild the checkout's dist/.
 */
async function startEngineDirect(
  ns: string,
  root: string,
  link: string,
  uapi: string,
  nodeOptions: string | undefined,
  uapiSet: string[],
): Promise<{ kill(): Promise<void> }> {
  await nsExec(ns, 'ip', ['tuntap', 'add', 'dev', link, 'mode', 'tun']);
  mkdirSync(dirname(uapi), { recursive: true });
  const child = spawn(
    'nsenter',
    [
      `--net=${netnsPath(ns)}`,
      '--',
      process.execPath,
      join(root, 'bin/awg.js'),
      'engine',
      '--link',
      link,
      '--uapi',
      uapi,
    ],
    {
      env: { ...process.env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  child.stdin.end(uapiSet.join('\n') + '\n\n');
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
  };
  for (let i = 0; i < 400 && !out.includes('ready'); i++)
    await new Promise((r) => setTimeout(r, 25));
  if (!out.includes('ready')) {
    await kill();
    throw new Error(`engine from ${root} not ready: ${out}`);
  }
  return { kill };
}

const sample = (name: string, unit: string, runs: number[], note?: string): Sample => ({
  name,
  unit,
  runs,
  median: median(runs),
  note,
});

export async function dataplaneBench(smoke: boolean): Promise<Sample[]> {
  const rounds = smoke ? 1 : Number(process.env.AWG_BENCH_ROUNDS ?? 5);
  const seconds = smoke ? 1 : Number(process.env.AWG_BENCH_SECONDS ?? 5);
  const firstPings = smoke ? 1 : Number(process.env.AWG_BENCH_FIRST_PINGS ?? 3);
  await ensureDist();
  await sweepStaleNetns();
  const work = mkdtempSync(join(tmpdir(), 'awgt-bench-dp-'));
  const layout = process.env.AWG_BENCH_LAYOUT === 'dist' ? 'checkout dist/' : 'installed bundle';
  let bin: string | undefined;
  const tag = randomBytes(3).toString('hex');
  const N = 200 + Math.floor(Math.random() * 15) * 3;
  const UA = `10.200.${N}.1`;
  const UB = `10.200.${N}.2`;
  const T1 = (h: number) => `10.200.${N + 1}.${h}`; // awg ↔ wg-go B1
  const T2 = (h: number) => `10.200.${N + 2}.${h}`; // wg-go A ↔ wg-go B2 (anchor)
  const tunnel = `b${tag}`;
  const link = `awg-${tunnel}`;
  const ka = wgKeyPair();
  const ka2 = wgKeyPair();
  const kb1 = wgKeyPair();
  const kb2 = wgKeyPair();
  let nsA = '';
  let nsB = '';
  let env: AwgEnv | undefined;
  const wgs: WgGo[] = [];
  const servers: NsProcess[] = [];
  let direct: { kill(): Promise<void> } | undefined;
  const load: number[] = [];
  try {
    if (layout === 'installed bundle') bin = await bundledLayout(work);
    nsA = await createNetns('bda');
    nsB = await createNetns('bdb');
    await vethPair(nsA, nsB, { addrA: `${UA}/24`, addrB: `${UB}/24` });
    env = makeAwgEnv();
    const e = env;

    const b1 = await startWireguardGo(nsB, `wbb${tag}`);
    wgs.push(b1);
    await wgSetconf(
      nsB,
      b1.iface,
      work,
      `[Interface]\nPrivateKey = ${kb1.privateKey}\nListenPort = 51820\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = ${T1(1)}/32\n`,
    );
    await wgGoAddress(nsB, b1.iface, `${T1(2)}/24`);
    const b2 = await startWireguardGo(nsB, `wbc${tag}`);
    wgs.push(b2);
    await wgSetconf(
      nsB,
      b2.iface,
      work,
      `[Interface]\nPrivateKey = ${kb2.privateKey}\nListenPort = 51821\n[Peer]\nPublicKey = ${ka2.publicKey}\nAllowedIPs = ${T2(1)}/32\n`,
    );
    await wgGoAddress(nsB, b2.iface, `${T2(2)}/24`);
    // in an autogroup of its own, as `awg apply` starts our engine (under load each autogroup
    // gets an equal share: in the bench's own it shared one with iperf3 and the B peer)
    const a2 = await startWireguardGo(nsA, `wba${tag}`, { ownSession: true });
    wgs.push(a2);
    // `AWG_BENCH_ANCHOR_NICE=N`: the anchor's autogroup at nice N too, to compare the two at
    // the weight our engine gives itself (AWG_ENGINE_NICE, default −5) as well as at 0
    const anchorNice = process.env.AWG_BENCH_ANCHOR_NICE;
    if (anchorNice) writeFileSync(`/proc/${a2.proc.pid}/autogroup`, anchorNice);
    const anchorPeer = `[Peer]\nPublicKey = ${kb2.publicKey}\nEndpoint = ${UB}:51821\nAllowedIPs = ${T2(2)}/32\n`;
    await wgSetconf(
      nsA,
      a2.iface,
      work,
      `[Interface]\nPrivateKey = ${ka2.privateKey}\nListenPort = 51822\n${anchorPeer}`,
    );
    await wgGoAddress(nsA, a2.iface, `${T2(1)}/24`);

    const prof = process.env.AWG_BENCH_PROFILE;
    const nodeOptions =
      [
        prof ? `--import=file://${profilePreload(work, prof)}` : '',
        process.env.AWG_BENCH_NODE_OPTIONS ?? '',
      ]
        .filter(Boolean)
        .join(' ') || undefined;
    const engineRoot = process.env.AWG_BENCH_ENGINE_ROOT;
    if (engineRoot) {
      direct = await startEngineDirect(
        nsA,
        engineRoot,
        link,
        join(e.env.AWG_UAPI_DIR!, `${link}.sock`),
        nodeOptions,
        [
          'set=1',
          `private_key=${hex(ka.privateKey)}`,
          'listen_port=51823',
          `public_key=${hex(kb1.publicKey)}`,
          `endpoint=${UB}:51820`,
          `allowed_ip=${T1(2)}/32`,
        ],
      );
      await nsExec(nsA, 'ip', ['addr', 'add', `${T1(1)}/24`, 'dev', link]);
      await nsExec(nsA, 'ip', ['link', 'set', link, 'mtu', '1420', 'up']);
    } else {
      const cfg = writeConfig(
        e,
        'a.yaml',
        awgConfig({
          tunnel,
          privateKey: ka.privateKey,
          address: `${T1(1)}/24`,
          listenPort: 51823,
          peerPublicKey: kb1.publicKey,
          endpoint: `${UB}:51820`,
          allowedIPs: [`${T1(2)}/32`],
        }),
      );
      const ap = await awg(nsA, e, ['apply', '-f', cfg], {
        extraEnv: nodeOptions ? { NODE_OPTIONS: nodeOptions } : {},
        ...(bin ? { bin } : {}),
      });
      if (ap.code !== 0) throw new Error(`awg apply failed:\n${ap.stderr}`);
    }

    servers.push(
      nsSpawn(nsB, 'iperf3', ['-s', '-p', '5201']),
      nsSpawn(nsB, 'iperf3', ['-s', '-p', '5202']),
    );
    for (const addr of [T1(2), T2(2)])
      if (!(await pingEventually(nsA, addr, 20_000))) throw new Error(`no tunnel to ${addr}`);

    const uapiDir = e.env.AWG_UAPI_DIR!;
    const targets: Target[] = [
      {
        name: 'awg',
        peer: T1(2),
        pidA: () => enginePid(link),
        pidB: b1.proc.pid,
        iperfPort: 5201,
        async resetPeer() {
          await wgVia(nsA, uapiDir, ['set', link, 'peer', kb1.publicKey, 'remove']);
          await wgVia(nsA, uapiDir, [
            'set',
            link,
            'peer',
            kb1.publicKey,
            'endpoint',
            `${UB}:51820`,
            'allowed-ips',
            `${T1(2)}/32`,
          ]);
        },
      },
      {
        name: 'anchor',
        peer: T2(2),
        pidA: () => a2.proc.pid,
        pidB: b2.proc.pid,
        iperfPort: 5202,
        async resetPeer() {
          await nsExec(nsA, 'wg', ['set', a2.iface, 'peer', kb2.publicKey, 'remove']);
          await nsExec(nsA, 'wg', [
            'set',
            a2.iface,
            'peer',
            kb2.publicKey,
            'endpoint',
            `${UB}:51821`,
            'allowed-ips',
            `${T2(2)}/32`,
          ]);
        },
      },
    ];

    const res: Record<string, number[]> = {};
    const put = (k: string, v: number) => (res[k] ??= []).push(v);
    for (let r = 0; r < rounds; r++) {
      load.push(loadavg()[0]!);
      for (const reverse of [false, true]) {
        const dir = reverse ? 'B→A' : 'A→B';
        const got: Record<string, Iperf> = {};
        for (const t of targets) {
          got[t.name] = await iperf(nsA, t, seconds, reverse);
          put(`${t.name} TCP ${dir} throughput`, got[t.name]!.gbps);
          put(`${t.name} TCP ${dir} A-side engine CPU per Gbit/s`, got[t.name]!.cpuA);
          put(`${t.name} TCP ${dir} B-side wireguard-go CPU per Gbit/s`, got[t.name]!.cpuB);
        }
        put(`ratio awg/anchor TCP ${dir}`, got.awg!.gbps / got.anchor!.gbps);
      }
      const veth = await pingAvg(nsA, UB, smoke ? 5 : 20);
      put('plain veth ping RTT', veth);
      for (const t of targets)
        put(
          `${t.name} ping RTT overhead over veth`,
          (await pingAvg(nsA, t.peer, smoke ? 5 : 20)) - veth,
        );
      // several resets per round, alternating: one first ping per round spreads over an
      // order of magnitude on a loaded machine (bench/RESULTS.md)
      for (let k = 0; k < firstPings; k++)
        for (const t of targets) {
          await t.resetPeer();
          put(
            `${t.name} first ping after peer reset (handshake + 1 RTT)`,
            await firstPing(nsA, t.peer),
          );
        }
    }
    put('awg engine VmRSS', rssMiB(enginePid(link)));
    put('anchor wireguard-go (A) VmRSS', rssMiB(a2.proc.pid));
    // each one's autogroup nice: the engine sets its own (AWG_ENGINE_NICE, boost.ts), the
    // anchor's stays at 0; recorded so that a result says which weights competed
    const group = (pid: number) => String(autogroupNice(`/proc/${pid}/autogroup`) ?? 'none');
    const groups = `autogroup nice: engine ${group(enginePid(link))}, wireguard-go ${group(a2.proc.pid)}`;

    const unit = (k: string) =>
      k.startsWith('ratio')
        ? '×'
        : k.endsWith('throughput')
          ? 'Gbit/s'
          : k.includes('CPU')
            ? 'cores per Gbit/s'
            : k.endsWith('VmRSS')
              ? 'MiB'
              : 'ms';
    // what the engine's crypto pool did (its log lines: threads started, declined, stopped)
    let pool = '';
    try {
      pool = readFileSync(join(e.stateDir, 'logs', `engine-${tunnel}.log`), 'utf8')
        .split('\n')
        .map((l) => /"msg":"(crypto pool: [^"]*)"/.exec(l)?.[1])
        .filter(Boolean)
        .join(' | ');
    } catch {
      /* no log (a direct engine) */
    }
    const note = `${direct ? `engine from ${engineRoot}` : layout}; load ${load.map((l) => l.toFixed(1)).join('/')}, iperf3 -t ${seconds}; ${groups}`;
    return Object.entries(res).map(([k, v]) =>
      sample(k, unit(k), v, k === 'awg engine VmRSS' && pool ? `${note}; ${pool}` : note),
    );
  } finally {
    for (const sv of servers) await sv.kill(1000);
    if (direct) await direct.kill();
    else if (env && nsA) await awg(nsA, env, ['down'], bin ? { bin } : {}).catch(() => undefined);
    for (const w of wgs) await w.stop().catch(() => undefined);
    for (const ns of [nsA, nsB]) if (ns) await destroyNetns(ns);
    cleanupAwgEnv(env);
    rmSync(work, { recursive: true, force: true });
  }
}
