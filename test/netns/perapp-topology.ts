/**
 * Per-app routing topology for namespace tests (Step 5), reusable by any test that needs
 * to tell which path a connection took. Traffic only between the namespaces made here.
 *
 *                       10.200.70.0/24                  10.200.73.0/24
 *   client  .2 ─────────────────── .1  router  .1 ─────────────────── .2  server
 *   (awg; default via .1)          (forwards)                       HTTP + UDP echo,
 *                                   .1    .1                        reply with the source
 *                    10.200.71.0/24 │      │ 10.200.72.0/24         address they see
 *                                   .2    .2
 *                                 peer1  peer2    awg peers (`awg apply`, WireGuard,
 *                                                 listenPort 51820), forwarding, no NAT
 *
 *   tunnel t1: client 10.200.81.2/32 ⇄ peer1 10.200.81.1/24 (endpoint 10.200.71.2:51820)
 *   tunnel t2: client 10.200.82.2/32 ⇄ peer2 10.200.82.1/24 (endpoint 10.200.72.2:51820)
 *   the router routes 10.200.81.0/24 via peer1 and 10.200.82.0/24 via peer2, so the server
 *   sees: 10.200.81.2 = through t1, 10.200.82.2 = through t2, 10.200.70.2 = direct.
 *
 * The client's tunnels carry allowedIPs 0.0.0.0/0 (each in its own table; only marked
 * sockets use them) and persistentKeepalive 1. Apps are hard links (or copies) of the node
 * binary under a private temp dir `/tmp/awgt-perapp-XXXX/apps/<name>`, so a rule can match
 * them by `name`, `dir` or `path` and nothing else on the host; each runs `app.cjs`
 * (one-shot probes from argv, or a long-lived agent driven over stdin).
 * awg is the built CLI (`node bin/awg.js`, dist/), run with nsenter --net (host /sys).
 */
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AWG_BIN,
  type AwgEnv,
  type AwgRun,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  REPO_ROOT,
  wgKeyPair,
} from '../helpers/awg.js';
import { openConnectorSocket } from '../../src/procs/connector.js';
import {
  SOL_SOCKET,
  SO_RCVBUFFORCE,
  close as closeFd,
  setsockoptInt,
} from '../../src/native/libc.js';
import {
  createNetns,
  destroyNetns,
  inMountNs,
  netnsPath,
  nsExec,
  nsSpawn,
  run,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';

export { ADDR, WG_PORT } from './perapp-addr.js';
import { ADDR, WG_PORT } from './perapp-addr.js';

/** What the server saw as the source of a connection. */
export type Path = 't1' | 't2' | 'direct' | 'none' | `other:${string}`;

export function pathOf(seen: string | undefined): Path {
  if (seen === undefined) return 'none';
  if (seen === ADDR.tun1Client) return 't1';
  if (seen === ADDR.tun2Client) return 't2';
  if (seen === ADDR.client) return 'direct';
  return `other:${seen}`;
}

// ---------------------------------------------------------------------------------------
// the awg CLI from dist/

export function awgDistArgv(ns: string, args: string[]): string[] {
  return ['nsenter', `--net=${netnsPath(ns)}`, '--', process.execPath, AWG_BIN, ...args];
}

/** Run the built `awg args` inside `ns` with env `e`; never throws on a non-zero exit. */
export function awgd(ns: string, e: AwgEnv, args: string[], timeoutMs = 60_000): Promise<AwgRun> {
  const argv = awgDistArgv(ns, args);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: REPO_ROOT,
      env: e.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout,
        stderr,
        mutations: stderr.split('\n').filter((l) => l.startsWith('[#] ')),
        json<T>() {
          try {
            return JSON.parse(stdout) as T;
          } catch {
            throw new Error(
              `awg ${args.join(' ')} printed no JSON (exit ${code}):\n${stdout}\n${stderr}`,
            );
          }
        },
      });
    });
  });
}

export function showRun(r: AwgRun): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

// ---------------------------------------------------------------------------------------
// the server: HTTP and UDP echo, each answering with the source address it saw

const SERVER_JS = `
const http = require('http'), dgram = require('dgram');
const [addr, ...ports] = process.argv.slice(1); // node -e CODE ARGS…
let n = 0;
for (const p of ports.map(Number)) {
  http.createServer((q, s) => s.end(JSON.stringify({ from: q.socket.remoteAddress }))).listen(p, addr, up);
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(JSON.stringify({ from: r.address, echo: String(m) }), r.port, r.address));
  u.bind(p, addr, up);
}
function up() { if (++n === ports.length * 2) console.log('listening'); }
`;

/** The server on ADDR.server in `ns`: HTTP and UDP echo on each port; resolves once it listens. */
export async function startServer(ns: string, ports: number[]): Promise<NsProcess> {
  const server = nsSpawn(ns, process.execPath, [
    '-e',
    SERVER_JS,
    ADDR.server,
    ...ports.map(String),
  ]);
  const end = Date.now() + 30_000;
  while (!server.output().includes('listening')) {
    if (server.child.exitCode !== null || Date.now() > end)
      throw new Error(`server did not start: ${server.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return server;
}

// the test app and its agents: perapp-apps.ts
export * from './perapp-apps.js';
import { makeApps, stopAgents, type Apps } from './perapp-apps.js';

// ---------------------------------------------------------------------------------------
// the topology

export interface Keys {
  client1: { privateKey: string; publicKey: string };
  client2: { privateKey: string; publicKey: string };
  peer1: { privateKey: string; publicKey: string };
  peer2: { privateKey: string; publicKey: string };
}

export interface PerAppTopology {
  client: string;
  router: string;
  peer1: string;
  peer2: string;
  server: string;
  /** the client's underlay interface (veth to the router) */
  clientIf: string;
  keys: Keys;
  /** envs of the two peers' awg (state dir, cgroup root, UAPI dir) */
  peerEnv: { peer1: AwgEnv; peer2: AwgEnv };
  apps: Apps;
  /** server ports: HTTP and UDP echo on each */
  ports: number[];
  /** `awg apply` of peer N's config in its namespace */
  startPeer(n: 1 | 2): Promise<void>;
  /** `awg down` in peer N's namespace: its engine and TUN go away */
  stopPeer(n: 1 | 2): Promise<void>;
  destroy(): Promise<void>;
}

export function peerConfig(n: 1 | 2, k: Keys): string {
  const me = n === 1 ? k.peer1 : k.peer2;
  const client = n === 1 ? k.client1 : k.client2;
  return `version: 1
tunnels:
  srv:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [${n === 1 ? ADDR.tun1Peer : ADDR.tun2Peer}/24]
    listenPort: ${WG_PORT}
    peers:
      - publicKey: "${client.publicKey}"
        allowedIPs: [${n === 1 ? ADDR.tun1Client : ADDR.tun2Client}/32]
`;
}

/** The client's `tunnels:` block: t1 via peer1, t2 via peer2 (allowedIPs 0.0.0.0/0). */
export function clientTunnels(k: Keys, opts: { keepalive?: number; extra?: string } = {}): string {
  const t = (
    name: string,
    key: Keys['client1'],
    peer: Keys['peer1'],
    addr: string,
    ep: string,
  ) => `  ${name}:
    type: wireguard
    privateKey: "${key.privateKey}"
    addresses: [${addr}/32]
${opts.extra ?? ''}    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: ${ep}:${WG_PORT}
        allowedIPs: [0.0.0.0/0]
        persistentKeepalive: ${opts.keepalive ?? 1}
`;
  return `tunnels:
${t('t1', k.client1, k.peer1, ADDR.tun1Client, ADDR.peer1)}${t('t2', k.client2, k.peer2, ADDR.tun2Client, ADDR.peer2)}`;
}

async function sysctlW(ns: string, kv: string): Promise<void> {
  await nsExec(ns, 'sysctl', ['-qw', kv]);
}

/**
 * Build the whole topology: namespaces, veths, routes, forwarding, the server, both peers
 * applied. `destroy()` removes namespaces (and their processes), peer state, cgroups, apps.
 */
export async function createPerAppTopology(
  opts: { ports?: number[] } = {},
): Promise<PerAppTopology> {
  if (!process.env.AWGT_AWG_BIN) await ensureDist();
  const made: string[] = [];
  const peerEnv = { peer1: makeAwgEnv(), peer2: makeAwgEnv() };
  const apps = makeApps();
  const keys: Keys = {
    client1: wgKeyPair(),
    client2: wgKeyPair(),
    peer1: wgKeyPair(),
    peer2: wgKeyPair(),
  };
  const ports = opts.ports ?? [8001, 8002, 8003, 8004, 8005, 8006, 8007, 8008];
  let server: NsProcess | undefined;
  /** the peers' namespaces, once made (destroy takes them down first) */
  const peerNs: { 1?: string; 2?: string } = {};
  const destroy = async () => {
    await stopAgents();
    for (const d of [...daemons]) await d.kill();
    await server?.kill(500);
    // both peers at once, then every namespace at once (each waits on its own processes)
    await Promise.all(
      ([1, 2] as const).map((n) => {
        const ns = peerNs[n];
        const e = n === 1 ? peerEnv.peer1 : peerEnv.peer2;
        return ns
          ? awgd(ns, e, ['down', '--state-dir', e.stateDir]).catch(() => undefined)
          : Promise.resolve(undefined);
      }),
    );
    await Promise.all(made.map((ns) => destroyNetns(ns)));
    cleanupAwgEnv(peerEnv.peer1);
    cleanupAwgEnv(peerEnv.peer2);
    rmSync(apps.dir, { recursive: true, force: true });
  };
  try {
    // the namespaces, links and routes at once (each step waits on its own `ip` commands); a
    // namespace made before another failed is still destroyed
    const names = ['pa-client', 'pa-router', 'pa-server', 'pa-peer1', 'pa-peer2'];
    const results = await Promise.allSettled(names.map((n) => createNetns(n)));
    for (const r of results) if (r.status === 'fulfilled') made.push(r.value);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const [client, router, srv, peer1, peer2] = made as [string, string, string, string, string];
    peerNs[1] = peer1;
    peerNs[2] = peer2;

    const [c] = await Promise.all([
      vethPair(client, router, { addrA: `${ADDR.client}/24`, addrB: `${ADDR.routerClient}/24` }),
      vethPair(peer1, router, { addrA: `${ADDR.peer1}/24`, addrB: `${ADDR.routerPeer1}/24` }),
      vethPair(peer2, router, { addrA: `${ADDR.peer2}/24`, addrB: `${ADDR.routerPeer2}/24` }),
      vethPair(srv, router, { addrA: `${ADDR.server}/24`, addrB: `${ADDR.routerServer}/24` }),
    ]);
    await Promise.all([
      ...[router, peer1, peer2].map((ns) => sysctlW(ns, 'net.ipv4.ip_forward=1')),
      run('ip', ['-n', client, 'route', 'add', 'default', 'via', ADDR.routerClient]),
      run('ip', ['-n', srv, 'route', 'add', 'default', 'via', ADDR.routerServer]),
      run('ip', ['-n', peer1, 'route', 'add', 'default', 'via', ADDR.routerPeer1]),
      run('ip', ['-n', peer2, 'route', 'add', 'default', 'via', ADDR.routerPeer2]),
      run('ip', ['-n', router, 'route', 'add', '10.200.81.0/24', 'via', ADDR.peer1]),
      run('ip', ['-n', router, 'route', 'add', '10.200.82.0/24', 'via', ADDR.peer2]),
    ]);

    const startPeer = async (n: 1 | 2) => {
      const ns = n === 1 ? peer1 : peer2;
      const e = n === 1 ? peerEnv.peer1 : peerEnv.peer2;
      const cfg = join(e.dir, 'peer.yaml');
      writeFileSync(cfg, peerConfig(n, keys));
      // no retry: a detached engine that does not become ready is a failure to see, not hide
      const r = await awgd(ns, e, ['apply', '-f', cfg, '--state-dir', e.stateDir]);
      if (r.code !== 0) throw new Error(`peer${n} apply failed: ${showRun(r)}`);
    };
    const stopPeer = async (n: 1 | 2) => {
      const e = n === 1 ? peerEnv.peer1 : peerEnv.peer2;
      const r = await awgd(n === 1 ? peer1 : peer2, e, ['down', '--state-dir', e.stateDir]);
      if (r.code !== 0) throw new Error(`peer${n} down failed: ${showRun(r)}`);
    };
    // the server and both peers at once (each peer's `awg apply` has a state, a UAPI directory
    // and owner locks of its own, in its own namespace)
    const started = await Promise.allSettled([
      startServer(srv, ports).then((p) => (server = p)),
      startPeer(1),
      startPeer(2),
    ]);
    const notStarted = started.find((r) => r.status === 'rejected');
    if (notStarted) throw (notStarted as PromiseRejectedResult).reason;
    return {
      client,
      router,
      peer1,
      peer2,
      server: srv,
      clientIf: c.ifA,
      keys,
      peerEnv,
      apps,
      ports,
      startPeer,
      stopPeer,
      destroy,
    };
  } catch (e) {
    await destroy();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------
// the daemon with the process watcher

export interface Daemon {
  proc: NsProcess;
  socket: string;
  /** `awg ARGS --socket S` through the daemon (state dir added for the direct fallbacks) */
  cli(args: string[]): Promise<AwgRun>;
  /** SIGTERM, wait; the connector fd of the test is closed */
  stop(): Promise<void>;
}

/**
 * `awg daemon --config cfg` in `ns` with the proc connector: a NETLINK_CONNECTOR socket
 * opened here, in the initial network namespace (the connector refuses others), inherited
 * as fd 3 (AWG_PROC_CONNECTOR_FD=3). Ready once `awg status` answers converged.
 * `o.resolvConf`: the daemon runs in a private mount namespace (`unshare -m`) with this file
 * bind-mounted over /etc/resolv.conf, so the system resolver asks what it names (the host's
 * file is never touched).
 */
export async function startDaemon(
  ns: string,
  e: AwgEnv,
  cfg: string,
  extra: string[] = [],
  o: { resolvConf?: string } = {},
): Promise<Daemon> {
  const socket = join(e.dir, 'run', 'awg.sock');
  const fd = openConnectorSocket();
  // AWGT_CONNECTOR_RCVBUF=N enlarges the socket's queue (it holds every host exec/fork until
  // the daemon's watcher sends LISTEN; the connector drains an overflowed queue before LISTEN)
  const rcvbuf = Number(process.env.AWGT_CONNECTOR_RCVBUF ?? 0);
  if (rcvbuf > 0) setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf);
  const argv = [AWG_BIN, 'daemon', '--config', cfg, '--state-dir', e.stateDir];
  argv.push('--socket', socket, ...extra);
  const spawned = nsSpawn(ns, ...inMountNs([process.execPath, ...argv], o.resolvConf), {
    env: { ...e.env, AWG_PROC_CONNECTOR_FD: '3' },
    fds: [fd],
  });
  closeFd(fd);
  const proc: NsProcess = {
    ns,
    child: spawned.child,
    pid: spawned.pid,
    output: spawned.output,
    exited: spawned.exited,
    kill: (graceMs = 10_000) => spawned.kill(graceMs),
  };
  daemons.add(proc);
  const cli = (args: string[]) => awgd(ns, e, [...args, '--socket', socket]);
  const d: Daemon = {
    proc,
    socket,
    cli,
    async stop() {
      daemons.delete(proc);
      await proc.kill();
    },
  };
  try {
    await eventually(
      async () => {
        if (spawned.child.exitCode !== null)
          throw new Error(`awg daemon exited ${spawned.child.exitCode}:\n${spawned.output()}`);
        const r = await cli(['status', '--json']);
        return r.code === 0 && r.json<{ state: string }>().state === 'converged';
      },
      'the daemon reports converged',
      90_000,
    );
    // the watcher starts with the first converged run; fail here, with its reason, if it did not
    const st = (await cli(['status', '--json'])).json<{
      placement?: { state: string; reason?: string };
    }>();
    if (st.placement?.state !== 'active')
      throw new Error(`process placement is not active: ${JSON.stringify(st.placement)}`);
  } catch (err) {
    await d.stop();
    throw new Error(`${(err as Error).message}\n--- daemon output\n${spawned.output()}`);
  }
  return d;
}

const daemons = new Set<NsProcess>();

/** Poll `fn` until true (generous; never a timing assertion). */
export async function eventually(
  fn: () => Promise<boolean> | boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not true within ${timeoutMs} ms: ${what}`);
}
