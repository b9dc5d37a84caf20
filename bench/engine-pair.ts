/**
 * One engine and one wireguard-go peer in two fresh namespaces, for the tracing scripts
 * (first-ping-trace.ts, engine-syscalls.ts): A runs our engine by `awg apply` (tunnel
 * address 10.200.N+1.1), B a wireguard-go peer (…N+1.2) over a veth (10.200.N.1 / .2).
 * With `host: 'daemon'`, A runs `awg up` instead (the built CLI, bin/awg.js, with the service
 * unit's Node flags) and the engine is the daemon's in-process one: `pid` is the daemon's.
 * Everything is removed when `fn` returns or throws. Runs `npm run build` output.
 * Extra environment for the engine: AWG_WARMUP, AWG_HANDSHAKE_PREPARE and
 * `AWG_BENCH_ENGINE_ENV='K=V K2=V2'` are passed to `awg apply`.
 * With `AWG_BENCH_AMNEZIAWG_GO=PATH` B's peer is that amneziawg-go build instead, and
 * `AWG_BENCH_PARAMS=awg1|awg2|awg3` gives both sides that AmneziaWG parameter set
 * (bench/awg-params.ts; the tunnel MTU 1420 − S4 unless `AWG_BENCH_MTU`).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  REPO_ROOT,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../test/helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsSpawn,
  vethPair,
  type NsProcess,
} from '../test/helpers/netns.js';
import { LONG_RUNNING_NODE_FLAGS } from '../src/util/node-flags.js';
import {
  awgConfig,
  pingEventually,
  startWireguardGo,
  wgGoAddress,
  wgSetconf,
  wgVia,
} from '../test/netns/interop-wg.js';
import { enginePid } from './dataplane.bench.js';
import { AWG_1_0, AWG_2_0, AWG_3_1, hex, type Params, uapiParams } from './awg-params.js';
import { uapiSet } from '../src/resources/engine/uapi-client.js';
import { AWG_GO_RUN_DIR, startAmneziawgGo } from '../test/netns/interop-wg.js';
import { nsExec } from '../test/helpers/netns.js';

const PARAMS: Record<string, Params | undefined> = {
  wg: undefined,
  awg1: AWG_1_0,
  awg2: AWG_2_0,
  awg3: AWG_3_1,
};

/** The peer B runs and the parameters both sides use, from the environment (see above). */
export function pairPeer(): { binary?: string; params?: Params; name: string; mtu: number } {
  const name = process.env.AWG_BENCH_PARAMS ?? 'wg';
  if (!(name in PARAMS)) throw new Error(`AWG_BENCH_PARAMS: unknown set ${name}`);
  const params = PARAMS[name];
  const binary = process.env.AWG_BENCH_AMNEZIAWG_GO;
  if (params && !binary) throw new Error(`AWG_BENCH_PARAMS=${name} needs AWG_BENCH_AMNEZIAWG_GO`);
  const mtu = Number(process.env.AWG_BENCH_MTU ?? 1420 - Number(params?.s4 ?? 0));
  return { name, mtu, ...(binary ? { binary } : {}), ...(params ? { params } : {}) };
}

export interface EnginePair {
  nsA: string;
  nsB: string;
  env: AwgEnv;
  /** the engine process, or the daemon hosting it (its main thread's tid is the same number) */
  pid: number;
  /** B's tunnel address, A's own, and B's veth address (the endpoint) */
  peer: string;
  self: string;
  underlay: string;
  /** removes the peer on A and adds it back: the next packet waits for a new handshake */
  resetPeer(): Promise<void>;
}

export const LINK = 'awg-fpt';

/** ns of CPU and of waiting runnable, per thread of `pid` (/proc/PID/task/TID/schedstat) */
export function schedstat(pid: number): Map<number, { run: number; wait: number }> {
  const m = new Map<number, { run: number; wait: number }>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8')
        .trim()
        .split(' ')
        .map(Number);
      m.set(Number(t), { run: run!, wait: wait! });
    } catch {
      /* thread gone */
    }
  }
  return m;
}

export const vmRssKiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

export async function withEnginePair<T>(
  fn: (p: EnginePair) => Promise<T>,
  opts: { host?: 'apply' | 'daemon' } = {},
): Promise<T> {
  await ensureDist();
  const N = 230 + Math.floor(Math.random() * 10) * 2;
  const UA = `10.200.${N}.1`;
  const UB = `10.200.${N}.2`;
  const T = (h: number) => `10.200.${N + 1}.${h}`;
  const ka = wgKeyPair();
  const kb = wgKeyPair();
  const work = mkdtempSync(join(tmpdir(), 'awgt-pair-'));
  const env = makeAwgEnv();
  let nsA: string | undefined;
  let nsB: string | undefined;
  let daemon: NsProcess | undefined;
  let go: { stop(): Promise<void>; iface: string } | undefined;
  try {
    nsA = await createNetns('fpa');
    nsB = await createNetns('fpb');
    const a = nsA;
    await vethPair(nsA, nsB, { addrA: `${UA}/24`, addrB: `${UB}/24` });
    const peerOf = pairPeer();
    if (peerOf.binary) {
      go = await startAmneziawgGo(nsB, 'afpt0', peerOf.binary);
      await uapiSet(
        join(AWG_GO_RUN_DIR, `${go.iface}.sock`),
        `set=1\nprivate_key=${hex(kb.privateKey)}\nlisten_port=51820\n${peerOf.params ? uapiParams(peerOf.params) : ''}` +
          `public_key=${hex(ka.publicKey)}\nallowed_ip=${T(1)}/32\n\n`,
      );
      await nsExec(nsB, 'ip', ['addr', 'add', `${T(2)}/24`, 'dev', go.iface]);
      await nsExec(nsB, 'ip', ['link', 'set', go.iface, 'mtu', String(peerOf.mtu), 'up']);
    } else {
      const b = await startWireguardGo(nsB, 'wfpt0');
      await wgSetconf(
        nsB,
        b.iface,
        work,
        `[Interface]\nPrivateKey = ${kb.privateKey}\nListenPort = 51820\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = ${T(1)}/32\n`,
      );
      await wgGoAddress(nsB, b.iface, `${T(2)}/24`);
    }
    const cfg = writeConfig(
      env,
      'a.yaml',
      awgConfig({
        tunnel: 'fpt',
        privateKey: ka.privateKey,
        address: `${T(1)}/24`,
        listenPort: 51823,
        peerPublicKey: kb.publicKey,
        endpoint: `${UB}:51820`,
        allowedIPs: [`${T(2)}/32`],
        ...(peerOf.params ? { obfuscation: peerOf.params, mtu: peerOf.mtu } : {}),
      }),
    );
    const extraEnv = {
      ...(process.env.AWG_WARMUP ? { AWG_WARMUP: process.env.AWG_WARMUP } : {}),
      ...(process.env.AWG_HANDSHAKE_PREPARE
        ? { AWG_HANDSHAKE_PREPARE: process.env.AWG_HANDSHAKE_PREPARE }
        : {}),
      ...Object.fromEntries(
        (process.env.AWG_BENCH_ENGINE_ENV ?? '')
          .split(' ')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      ),
    };
    if (opts.host === 'daemon') {
      daemon = nsSpawn(
        nsA,
        process.execPath,
        [
          ...LONG_RUNNING_NODE_FLAGS,
          join(REPO_ROOT, 'bin/awg.js'),
          'up',
          '-f',
          cfg,
          '--json',
          '--state-dir',
          env.stateDir,
        ],
        { env: { ...env.env, ...extraEnv } },
      );
    } else {
      const ap = await awg(nsA, env, ['apply', '-f', cfg], { extraEnv });
      if (ap.code) throw new Error(ap.stderr);
    }
    if (!(await pingEventually(nsA, T(2), 20_000)))
      throw new Error(`no tunnel${daemon ? `; awg up printed:\n${daemon.output()}` : ''}`);
    return await fn({
      nsA,
      nsB,
      env,
      pid: daemon ? daemon.pid : enginePid(LINK),
      peer: T(2),
      self: T(1),
      underlay: UB,
      async resetPeer() {
        await wgVia(a, env.env.AWG_UAPI_DIR!, ['set', LINK, 'peer', kb.publicKey, 'remove']);
        await wgVia(a, env.env.AWG_UAPI_DIR!, [
          'set',
          LINK,
          'peer',
          kb.publicKey,
          'endpoint',
          `${UB}:51820`,
          'allowed-ips',
          `${T(2)}/32`,
        ]);
      },
    });
  } finally {
    if (daemon) await daemon.kill(5000);
    else if (nsA) await awg(nsA, env, ['down']).catch(() => undefined);
    await go?.stop().catch(() => undefined);
    for (const ns of [nsA, nsB]) if (ns) await destroyNetns(ns);
    cleanupAwgEnv(env);
    rmSync(work, { recursive: true, force: true });
  }
}
