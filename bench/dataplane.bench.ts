/**
 * The embedded engine against the engine users run, in the same run on the same namespaces.
 * Namespace A holds our engine (`awg apply`, tunnel 10.200.N+1.0/24) and the anchor
 * (10.200.N+2.0/24): amneziawg-go v3.1 with `AWG_BENCH_AMNEZIAWG_GO` (and Debian's 2022
 * wireguard-go as a third column, 10.200.N+3.0/24, for the history of Steps 3-10), else
 * Debian's wireguard-go (the smoke in CI). Namespace B holds one peer for each, of the
 * anchor's kind. Samples alternate awg / anchor per round (which goes first alternates too):
 *
 * - iperf3 TCP A→B and B→A (-R) through each tunnel, Gbit/s and the ratio awg / anchor;
 * - CPU per Gbit/s of the A-side engine process (utime+stime deltas of /proc/PID/stat,
 *   cores busy / Gbit/s), its ratio to the anchor's, and of B's peer;
 * - ping RTT through each tunnel minus the plain veth;
 * - handshake: the first ping after the peer was removed and re-added on the A side (the
 *   packet waits for a full handshake), minus nothing: raw first-ping time; 3 per round and
 *   target (`AWG_BENCH_FIRST_PINGS`), alternating awg / anchor;
 * - VmRSS of the engine and of the anchor after the throughput runs.
 *
 * `AWG_BENCH_PARAMS` (plain WireGuard and the AmneziaWG generations) and `AWG_BENCH_LOAD` (busy
 * loops) are described at dataplaneBench. `AWG_BENCH_HOST=up` runs our engine inside `awg up`
 * (the daemon's loop, in a session of its own as systemd starts the service) instead of the
 * engine process `awg apply` starts: its VmRSS is then the daemon's.
 * Needs root, wireguard-go, iperf3. `awg apply` and so the engine run from the installed
 * package's layout (`bundledLayout`: the bundle of a fresh `npm run build`, as `npm i -g` and the
 * .deb have it); `AWG_BENCH_LAYOUT=dist` runs the checkout's tsc dist/ instead (a clone's build,
 * whose module sources keep their comments: ≈ 2 MiB more heap).
 * `AWG_BENCH_ROUNDS`, `AWG_BENCH_SECONDS` override 5 rounds of 5 s; `AWG_BENCH_ANCHOR_NICE`
 * sets the anchor's autogroup nice (the engine sets its own: AWG_ENGINE_NICE);
 * `AWG_BENCH_PROFILE=DIR` makes the engine write a CPU profile and its memory use
 * (process.memoryUsage, V8 heap spaces) to DIR when it stops; `AWG_BENCH_ENGINE_ROOT` runs
 * another build's engine (see startEngineDirect). Per transfer, the A side's threads and the
 * machine's idle CPU are sampled, and `AWG_BENCH_PERF=DIR` records the last round
 * system-wide (dataplane-threads.ts); `AWG_BENCH_TUN_RPS=MASK` sets receive packet steering
 * on our TUN. Run the whole bench under `taskset -c 0` for the one-CPU figures.
 * `AWG_BENCH_SMAPS=1` prints the engine's resident memory by kind and mapping after the runs
 * (bench/smaps.ts).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import {
  REPO_ROOT,
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
  nsSpawn,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../test/helpers/netns.js';
import {
  AWG_GO_RUN_DIR,
  WG_RUN_DIR,
  awgConfig,
  pingEventually,
  startAmneziawgGo,
  startWireguardGo,
  type WgGo,
} from '../test/netns/interop-wg.js';
import { uapiSet } from '../src/resources/engine/uapi-client.js';
import { AWG_1_0, AWG_2_0, AWG_3_1, hex, type Params, uapiParams } from './awg-params.js';
import { autogroupNice } from '../src/native/sched.js';
import { bundledLayout } from './apply.bench.js';
import { type Sample } from './lib.js';
import { memoryBreakdown } from './smaps.js';
import {
  RESET_GAP_MS,
  enginePid,
  firstPing,
  iperf,
  pingAvg,
  profilePreload,
  rssMiB,
  sample,
  startEngineDirect,
  type Iperf,
  type Target,
} from './dataplane-lib.js';

export { enginePid };

/** A peer engine of the bench besides ours: amneziawg-go (by its UAPI) or wireguard-go (wg). */
interface PeerEngine {
  iface: string;
  pid: number;
  sock: string;
  stop(): Promise<void>;
}

/** One parameter set of the run: plain WireGuard, or an AmneziaWG generation's parameters. */
interface ParamSet {
  name: 'wg' | 'awg1' | 'awg2' | 'awg3';
  params: Params | undefined;
}
const PARAM_SETS: Record<ParamSet['name'], ParamSet> = {
  wg: { name: 'wg', params: undefined },
  awg1: { name: 'awg1', params: AWG_1_0 },
  awg2: { name: 'awg2', params: AWG_2_0 },
  awg3: { name: 'awg3', params: AWG_3_1 },
};

/**
 * `AWG_BENCH_AMNEZIAWG_GO=PATH` (an amneziawg-go build, v3.1: the engine users run, with
 * wireguard-go's TUN offloads and UDP GSO/GRO): the anchor is that build on both sides and B's
 * peer of our engine is that build too; Debian's wireguard-go (2022, none of that) is kept as a
 * third column for history with plain WireGuard. Unset (CI's smoke: the builds are not the
 * repository's): Debian's wireguard-go is the anchor and the peer, as in Step 3.
 * `AWG_BENCH_PARAMS=wg,awg1,awg2,awg3` (default wg): one run per set, the obfuscation of AmneziaWG
 * 1.0 / 2.0 / 3.1 (bench/awg-params.ts) on every tunnel; a set with a transport prefix (S4) runs
 * every tunnel at MTU 1420 − S4, so none fragments (`AWG_BENCH_MTU=N` sets another MTU on every
 * tunnel, e.g. 1420 where S4's datagrams exceed the path). `AWG_BENCH_LOAD=N`: N busy loops, each in a
 * session of its own, for the run ("loaded A").
 */
export async function dataplaneBench(smoke: boolean): Promise<Sample[]> {
  const awgGo = process.env.AWG_BENCH_AMNEZIAWG_GO;
  if (awgGo && !existsSync(awgGo))
    throw new Error(`AWG_BENCH_AMNEZIAWG_GO=${awgGo} does not exist`);
  const sets = (process.env.AWG_BENCH_PARAMS ?? 'wg').split(',').map((n) => {
    const set = PARAM_SETS[n.trim() as ParamSet['name']];
    if (!set) throw new Error(`AWG_BENCH_PARAMS: unknown set ${n} (wg, awg1, awg2, awg3)`);
    if (set.params && !awgGo) throw new Error(`AWG_BENCH_PARAMS=${n} needs AWG_BENCH_AMNEZIAWG_GO`);
    return set;
  });
  const loops: ChildProcess[] = [];
  const busy = Number(process.env.AWG_BENCH_LOAD ?? 0);
  for (let i = 0; i < busy; i++)
    loops.push(spawn('setsid', ['sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }));
  try {
    const out: Sample[] = [];
    for (const set of sets) {
      const samples = await dataplaneRun(smoke, set, awgGo);
      for (const x of samples)
        out.push(
          sets.length > 1 || set.name !== 'wg' ? { ...x, name: `${set.name}: ${x.name}` } : x,
        );
    }
    return out;
  } finally {
    for (const l of loops) l.kill('SIGKILL');
  }
}

async function dataplaneRun(
  smoke: boolean,
  set: ParamSet,
  awgGo: string | undefined,
): Promise<Sample[]> {
  const rounds = smoke ? 1 : Number(process.env.AWG_BENCH_ROUNDS ?? 5);
  const seconds = smoke ? 1 : Number(process.env.AWG_BENCH_SECONDS ?? 5);
  const firstPings = smoke ? 1 : Number(process.env.AWG_BENCH_FIRST_PINGS ?? 3);
  await ensureDist();
  await sweepStaleNetns();
  const work = mkdtempSync(join(tmpdir(), 'awgt-bench-dp-'));
  const layout = process.env.AWG_BENCH_LAYOUT === 'dist' ? 'checkout dist/' : 'installed bundle';
  let bin: string | undefined;
  const tag = randomBytes(3).toString('hex');
  const N = 200 + Math.floor(Math.random() * 14) * 4;
  const UA = `10.200.${N}.1`;
  const UB = `10.200.${N}.2`;
  const T = (k: number, h: number) => `10.200.${N + k}.${h}`; // tunnel k: awg 1, anchor 2, history 3
  const s4 = Number(set.params?.s4 ?? 0);
  const mtu = Number(process.env.AWG_BENCH_MTU ?? 1420 - s4);
  const tunnel = `b${tag}`;
  const link = `awg-${tunnel}`;
  const ka = wgKeyPair();
  const kb = [wgKeyPair(), wgKeyPair(), wgKeyPair()];
  const kaPeers = [ka, wgKeyPair(), wgKeyPair()];
  const history = !!awgGo && set.name === 'wg' && process.env.AWG_BENCH_HISTORY !== '0';
  let nsA = '';
  let nsB = '';
  let env: AwgEnv | undefined;
  const peers: PeerEngine[] = [];
  const servers: NsProcess[] = [];
  let direct: { kill(): Promise<void> } | undefined;
  const load: number[] = [];
  // `AWG_BENCH_HOST=up`: our engine in `awg up` (the daemon's loop, its engines in process)
  const up = process.env.AWG_BENCH_HOST === 'up';
  let upProc: NsProcess | undefined;
  try {
    if (layout === 'installed bundle') bin = await bundledLayout(work);
    nsA = await createNetns('bda');
    nsB = await createNetns('bdb');
    await vethPair(nsA, nsB, { addrA: `${UA}/24`, addrB: `${UB}/24` });
    env = makeAwgEnv();
    const e = env;

    /**
     * A peer engine in `ns` (amneziawg-go when `go`, else wireguard-go) with `key`, port,
     * tunnel address `addr` and one peer; `ownSession` as `awg apply` starts our engine (under
     * load each autogroup gets an equal share).
     */
    const startPeer = async (
      ns: string,
      iface: string,
      go: boolean,
      o: {
        key: { privateKey: string; publicKey: string };
        port: number;
        addr: string;
        peer: string;
        endpoint?: string;
        allowed: string;
        ownSession?: boolean;
      },
    ): Promise<PeerEngine> => {
      const w: WgGo = go
        ? await startAmneziawgGo(ns, iface, awgGo!, { ownSession: o.ownSession })
        : await startWireguardGo(ns, iface, { ownSession: o.ownSession });
      const sock = join(go ? AWG_GO_RUN_DIR : WG_RUN_DIR, `${iface}.sock`);
      const pe: PeerEngine = { iface, pid: w.proc.pid, sock, stop: () => w.stop() };
      peers.push(pe);
      await uapiSet(
        sock,
        `set=1\nprivate_key=${hex(o.key.privateKey)}\nlisten_port=${o.port}\n${go && set.params ? uapiParams(set.params) : ''}` +
          `public_key=${hex(o.peer)}\n${o.endpoint ? `endpoint=${o.endpoint}\n` : ''}allowed_ip=${o.allowed}\n\n`,
      );
      await nsExec(ns, 'ip', ['addr', 'add', o.addr, 'dev', iface]);
      await nsExec(ns, 'ip', ['link', 'set', iface, 'mtu', String(mtu), 'up']);
      return pe;
    };

    // B: one peer per tunnel; A: the anchor (and the history column) beside our engine
    const go = !!awgGo;
    const ports = [51820, 51821, 51822];
    const b = await Promise.all(
      [0, 1, ...(history ? [2] : [])].map((k) =>
        startPeer(nsB, `wb${k}${tag}`, k < 2 ? go : false, {
          key: kb[k]!,
          port: ports[k]!,
          addr: `${T(k + 1, 2)}/24`,
          peer: kaPeers[k]!.publicKey,
          allowed: `${T(k + 1, 1)}/32`,
        }),
      ),
    );
    const anchors: PeerEngine[] = [];
    for (const k of [1, ...(history ? [2] : [])]) {
      // `AWG_BENCH_ANCHOR_NICE=N`: the anchors' autogroups at nice N too, to compare them at
      // the weight our engine gives itself (AWG_ENGINE_NICE, default −5) as well as at 0
      const a = await startPeer(nsA, `wa${k}${tag}`, k === 1 ? go : false, {
        key: kaPeers[k]!,
        port: 51830 + k,
        addr: `${T(k + 1, 1)}/24`,
        peer: kb[k]!.publicKey,
        endpoint: `${UB}:${ports[k]}`,
        allowed: `${T(k + 1, 2)}/32`,
        ownSession: true,
      });
      const anchorNice = process.env.AWG_BENCH_ANCHOR_NICE;
      if (anchorNice) writeFileSync(`/proc/${a.pid}/autogroup`, anchorNice);
      anchors.push(a);
    }

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
          ...(set.params ? uapiParams(set.params).trim().split('\n') : []),
          `public_key=${hex(kb[0]!.publicKey)}`,
          `endpoint=${UB}:${ports[0]}`,
          `allowed_ip=${T(1, 2)}/32`,
        ],
      );
      await nsExec(nsA, 'ip', ['addr', 'add', `${T(1, 1)}/24`, 'dev', link]);
      await nsExec(nsA, 'ip', ['link', 'set', link, 'mtu', String(mtu), 'up']);
    } else {
      const cfg = writeConfig(
        e,
        'a.yaml',
        awgConfig({
          tunnel,
          privateKey: ka.privateKey,
          address: `${T(1, 1)}/24`,
          listenPort: 51823,
          peerPublicKey: kb[0]!.publicKey,
          endpoint: `${UB}:${ports[0]}`,
          allowedIPs: [`${T(1, 2)}/32`],
          mtu,
          ...(set.params ? { obfuscation: set.params } : {}),
        }),
      );
      if (up) {
        // `awg up` in a session of its own, as systemd starts the service; it runs itself with
        // awg's long-running Node flags (it re-executes itself with those it lacks)
        upProc = nsSpawn(
          nsA,
          'setsid',
          [
            process.execPath,
            bin ?? join(REPO_ROOT, 'bin/awg.js'),
            'up',
            '-f',
            cfg,
            '--state-dir',
            e.stateDir,
          ],
          { env: { ...e.env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) } },
        );
      } else {
        const ap = await awg(nsA, e, ['apply', '-f', cfg], {
          extraEnv: nodeOptions ? { NODE_OPTIONS: nodeOptions } : {},
          ...(bin ? { bin } : {}),
        });
        if (ap.code !== 0) throw new Error(`awg apply failed:\n${ap.stderr}`);
      }
    }
    // the process our engine runs in: the detached engine of `awg apply`, or `awg up`
    const ourPid = () => (upProc ? upProc.pid : enginePid(link));

    const targets: Target[] = [];
    const resetVia = (sock: string, pub: string, endpoint: string, allowed: string) => async () => {
      await uapiSet(sock, `set=1\npublic_key=${hex(pub)}\nremove=true\n\n`);
      await uapiSet(
        sock,
        `set=1\npublic_key=${hex(pub)}\nendpoint=${endpoint}\nallowed_ip=${allowed}\n\n`,
      );
    };
    const uapiDir = e.env.AWG_UAPI_DIR!;
    targets.push({
      name: 'awg',
      peer: T(1, 2),
      pidA: ourPid,
      pidB: b[0]!.pid,
      iperfPort: 5201,
      resetPeer: resetVia(
        join(uapiDir, `${link}.sock`),
        kb[0]!.publicKey,
        `${UB}:${ports[0]}`,
        `${T(1, 2)}/32`,
      ),
    });
    anchors.forEach((a, i) => {
      const k = i + 1;
      targets.push({
        name: k === 1 ? 'anchor' : 'wireguard-go',
        peer: T(k + 1, 2),
        pidA: () => a.pid,
        pidB: b[k]!.pid,
        iperfPort: 5201 + k,
        resetPeer: resetVia(a.sock, kb[k]!.publicKey, `${UB}:${ports[k]}`, `${T(k + 1, 2)}/32`),
      });
    });
    for (const t of targets)
      servers.push(nsSpawn(nsB, 'iperf3', ['-s', '-p', String(t.iperfPort)]));
    for (const t of targets)
      if (!(await pingEventually(nsA, t.peer, 20_000)))
        throw new Error(
          `no tunnel to ${t.peer}${upProc ? `; awg up printed:\n${upProc.output()}` : ''}`,
        );

    // `AWG_BENCH_TUN_RPS=MASK`: receive packet steering on our engine's TUN (and the anchor's
    // with AWG_BENCH_TUN_RPS_ANCHOR=1): the kernel's receive work for what the engine writes
    // runs on the CPUs of MASK (an experiment: bench/RESULTS.md, Step 24)
    const rps = process.env.AWG_BENCH_TUN_RPS;
    if (rps)
      for (const dev of [
        link,
        ...(process.env.AWG_BENCH_TUN_RPS_ANCHOR === '1' ? [anchors[0]!.iface] : []),
      ])
        execFileSync('ip', [
          'netns',
          'exec',
          nsA,
          'sh',
          '-c',
          `echo ${rps} > /sys/class/net/${dev}/queues/rx-0/rps_cpus`,
        ]);

    const res: Record<string, number[]> = {};
    const put = (k: string, v: number) => (res[k] ??= []).push(v);
    for (let r = 0; r < rounds; r++) {
      load.push(loadavg()[0]!);
      // which target goes first alternates with the round
      const order = r % 2 ? [...targets].reverse() : targets;
      for (const reverse of [false, true]) {
        const dir = reverse ? 'B→A' : 'A→B';
        const got: Record<string, Iperf> = {};
        for (const t of order) {
          const last = r === rounds - 1;
          got[t.name] = await iperf(
            nsA,
            t,
            seconds,
            reverse,
            last ? `${set.name}-${t.name}-${reverse ? 'BA' : 'AB'}` : undefined,
          );
          const th = got[t.name]!.threads;
          put(`${t.name} TCP ${dir} A-side threads run (cores)`, th.run);
          put(`${t.name} TCP ${dir} A-side threads runnable wait (cores)`, th.wait);
          put(`${t.name} TCP ${dir} machine idle (cores)`, got[t.name]!.idle);
          if (t.name === 'awg') {
            put(`awg TCP ${dir} A-side main thread run (cores)`, th.mainRun);
            put(`awg TCP ${dir} A-side main thread runnable wait (cores)`, th.mainWait);
          }
          put(`${t.name} TCP ${dir} throughput`, got[t.name]!.gbps);
          put(`${t.name} TCP ${dir} A-side engine CPU per Gbit/s`, got[t.name]!.cpuA);
          put(`${t.name} TCP ${dir} B-side peer CPU per Gbit/s`, got[t.name]!.cpuB);
        }
        put(`ratio awg/anchor TCP ${dir}`, got.awg!.gbps / got.anchor!.gbps);
        put(`ratio awg/anchor TCP ${dir} CPU per Gbit/s`, got.awg!.cpuA / got.anchor!.cpuA);
      }
      const veth = await pingAvg(nsA, UB, smoke ? 5 : 20);
      put('plain veth ping RTT', veth);
      for (const t of order)
        put(
          `${t.name} ping RTT overhead over veth`,
          (await pingAvg(nsA, t.peer, smoke ? 5 : 20)) - veth,
        );
      // several resets per round, alternating: one first ping per round spreads over an
      // order of magnitude on a loaded machine (bench/RESULTS.md)
      // each reset waits RESET_GAP_MS: B keeps its session and drops an initiation that
      // follows the peer's last within 20 ms (wireguard-go's HandshakeInitationRate) or carries
      // a timestamp that is not newer (whitened to ≈ 16.8 ms): back to back, a sample measured
      // that flood check and a 5 s retry, not the handshake (bench/RESULTS.md, Step 14)
      for (let k = 0; k < firstPings; k++)
        for (const t of order) {
          await new Promise((r) => setTimeout(r, RESET_GAP_MS));
          await t.resetPeer();
          put(
            `${t.name} first ping after peer reset (handshake + 1 RTT)`,
            await firstPing(nsA, t.peer),
          );
        }
    }
    put(
      up ? 'awg up (the daemon, its engine in process) VmRSS' : 'awg engine VmRSS',
      rssMiB(ourPid()),
    );
    if (process.env.AWG_BENCH_SMAPS === '1')
      console.error(`engine after the runs (${process.version}): ${memoryBreakdown(ourPid())}`);
    for (const a of anchors)
      put(`${a === anchors[0] ? 'anchor' : 'wireguard-go'} (A) VmRSS`, rssMiB(a.pid));
    // each one's autogroup nice: the engine sets its own (AWG_ENGINE_NICE, boost.ts), the
    // anchor's stays at 0; recorded so that a result says which weights competed
    const group = (pid: number) => String(autogroupNice(`/proc/${pid}/autogroup`) ?? 'none');
    const groups = `autogroup nice: engine ${group(ourPid())}, anchor ${group(anchors[0]!.pid)}`;

    const unit = (k: string) =>
      k.startsWith('ratio')
        ? '×'
        : k.endsWith('throughput')
          ? 'Gbit/s'
          : k.includes('CPU')
            ? 'cores per Gbit/s'
            : k.endsWith('(cores)')
              ? 'cores'
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
    const anchorDesc = awgGo
      ? `anchor ${basename(awgGo)} both sides, B peer of awg the same`
      : 'anchor and B peer Debian wireguard-go';
    const note = `${direct ? `engine from ${engineRoot}` : up ? `awg up (${layout}, ${process.version})` : layout}; ${anchorDesc}; MTU ${mtu}; ${availableParallelism()} CPUs;${rps ? ` TUN rps_cpus ${rps}${process.env.AWG_BENCH_TUN_RPS_ANCHOR === '1' ? " (ours and the anchor's)" : ' (ours)'};` : ''} load ${load.map((l) => l.toFixed(1)).join('/')}${Number(process.env.AWG_BENCH_LOAD ?? 0) ? ` (${process.env.AWG_BENCH_LOAD} busy loops)` : ''}, iperf3 -t ${seconds}; ${groups}`;
    return Object.entries(res).map(([k, v]) =>
      sample(k, unit(k), v, k === 'awg engine VmRSS' && pool ? `${note}; ${pool}` : note),
    );
  } finally {
    for (const sv of servers) await sv.kill(1000);
    if (upProc) await upProc.kill(5000);
    if (direct) await direct.kill();
    else if (env && nsA && !upProc)
      await awg(nsA, env, ['down'], bin ? { bin } : {}).catch(() => undefined);
    for (const w of peers) await w.stop().catch(() => undefined);
    for (const ns of [nsA, nsB]) if (ns) await destroyNetns(ns);
    cleanupAwgEnv(env);
    rmSync(work, { recursive: true, force: true });
  }
}
