/**
 * The rig of the per-app tests on the macOS host model (host-model-perapp*.test.ts): the real
 * Daemon with its real in-process engine host (utuns of the model) hosts the flow router
 * (src/resources/flow/flow-router-host.ts) and realises the PF anchor with the router's rules
 * (realiseDarwinFlow). The router runs on this host's loopback with fake system calls
 * (pcblist_n bytes in the kernel's layout, proc_pidpath by table, DIOCNATLOOK answering a
 * local server, pinned sockets that are plain Linux sockets recording the interface): what PF
 * would redirect is connected to the router's port here.
 */
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { AF_INET, SOCK_CLOEXEC, SOCK_STREAM, socket } from '../../../src/native/libc.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { createInprocEngineHost } from '../../../src/resources/engine/inproc.js';
import type { DarwinFlowNatives } from '../../../src/resources/flow/flow-router-darwin.js';
import { FileStateStore } from '../../../src/util/state.js';
import { modelEngineIo } from '../../helpers/macos-host/engine.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { macConfig } from '../../helpers/macos-host/scenario.js';
import { exchange, freePort, routeServer } from '../../helpers/route-servers.js';
import { modelDaemon } from '../../helpers/macos-host/daemon.js';
import { cat, inpcb, rest, socket as xsocket, xinpgen } from '../../helpers/pcblist-bytes.js';
import { darwinProcessLister } from '../../../src/procs/list.js';
import { capturedProcTable } from '../../helpers/macos-host/procs.js';

const PATHS: Record<number, string> = {
  530: '/Applications/Mail.app/Contents/MacOS/Mail',
  601: '/usr/bin/curl',
  602: '/opt/telemetry/agent',
  603: '/Applications/Notes.app/Contents/MacOS/Notes',
  604: '/Applications/Calendar.app/Contents/MacOS/Calendar',
  605: '/usr/bin/git',
  606: '/usr/bin/git',
};

/**
 * The processes' parents (proc_pidinfo's ppid): 650 and 651 are `awg exec` processes under a
 * shell (500); curl (601) is 650's child, git (605) its grandchild; 606 is a git that
 * daemonised (re-parented to launchd); the telemetry agent (602) is 651's child.
 */
const PARENTS: Record<number, number> = {
  500: 1,
  650: 500,
  651: 500,
  601: 650,
  605: 601,
  606: 1,
  602: 651,
  530: 1,
  603: 1,
  604: 1,
};

const rules = (mail: string) => `rules:
  - name: mail
    match: { name: Mail }
    target: ${mail}
    fallback: block
  - name: tools
    match: { dir: /usr/bin }
    target: direct
  - name: telemetry
    match: { dir: /opt/telemetry }
    target: block
`;

/** what each test started, stopped in reverse after it (each test file runs runCleanups afterEach) */
export const cleanups: (() => Promise<void> | void)[] = [];
export async function runCleanups(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await c();
}

export async function setup(
  o: {
    config?: (mail: string | undefined, port: number) => string;
    healthIntervalMs?: number;
    /** the router's port (routing.proxyPortBase); default: a free one */
    port?: number;
  } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'awg-machost-perapp-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = o.port ?? (await freePort());
  const file = join(dir, 'awg.yaml');
  const write = (mail: string | undefined) =>
    writeFileSync(
      file,
      o.config
        ? o.config(mail, port)
        : macConfig({ killSwitch: false }) +
            (mail ? rules(mail) : '') +
            `routing: { proxyPortBase: ${port} }\n`,
      { mode: 0o600 },
    );
  write('home');
  const host = MacHost.laptop();
  const prior = host.snapshot();
  const dst = await routeServer('dst');
  cleanups.push(() => new Promise<void>((r) => dst.server.close(() => r())));

  // the system calls of the router
  // the app's local port → pid, and its socket's generation: unique per socket as the kernel's
  // inp_gencnt is (a port the kernel hands out again is a new socket, never the old owner's)
  const owners = new Map<number, { pid: number; gen: bigint }>();
  let gen = 0n;
  const pinned: string[] = [];
  const natives: DarwinFlowNatives = {
    sysctl: () => {
      const recs = [...owners].flatMap(([p, o]) => [
        inpcb(false, [127, 0, 0, 1], p, [127, 0, 0, 1], dst.port, o.gen),
        xsocket(501, o.pid, 0),
        ...rest(4),
      ]);
      return cat([xinpgen(owners.size), ...recs, xinpgen(owners.size)]);
    },
    pidPath: (pid) => PATHS[pid],
    ppid: (pid) => PARENTS[pid],
    originalDst: () => ({ address: '127.0.0.1', port: dst.port }),
    boundTcpFd: (ifname, family) => {
      pinned.push(`${ifname}/${family}`);
      const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) throw new Error(`socket: ${-fd}`);
      return fd;
    },
  };

  // when the anchor with the router's rdr is loaded, is the router already listening?
  const listeningAtLoad: boolean[] = [];
  const mutate = host.mutate.bind(host);
  host.mutate = async (cmd, args, opts = {}) => {
    if (
      cmd === 'pfctl' &&
      args.join(' ') === '-a com.awg/awg -f -' &&
      /^rdr /m.test(opts.input ?? '')
    )
      listeningAtLoad.push(await reachable(port));
    return mutate(cmd, args, opts);
  };

  const { io } = await modelEngineIo(host);
  const { d, events, finished } = modelDaemon({
    configPath: file,
    platform: darwinPlatform,
    exec: host,
    state: new FileStateStore(join(dir, 'state')),
    engines: createInprocEngineHost({ io, uapi: false }),
    flowRouter: { natives: async () => natives, subnets: () => ['192.168.1.0/24'] },
    // ListProcesses over the same processes (libproc's table): users' apps, the awg execs as root
    processes: darwinProcessLister(
      capturedProcTable({
        rows: Object.entries(PATHS)
          .map(([pid, path]) => ({
            uid: 501,
            pid: Number(pid),
            ppid: PARENTS[Number(pid)] ?? 1,
            path,
          }))
          .concat(
            [650, 651].map((pid) => ({ uid: 0, pid, ppid: 500, path: '/usr/local/bin/node' })),
          ),
      }),
    ),
    ...(o.healthIntervalMs !== undefined ? { healthIntervalMs: o.healthIntervalMs } : {}),
  });
  const runs = async (n: number) => {
    const e = await finished(n);
    expect(e, JSON.stringify(events.filter((x) => x.type === 'error'))).toMatchObject({
      outcome: expect.stringMatching(/^(converged|unchanged)$/),
    });
    return e;
  };
  /** what PF would do with the app's SYN: connect to the router from a port the pcblist gives to `pid` */
  const appConnect = async (pid: number, msg: string) => {
    const local = await freePort();
    owners.set(local, { pid, gen: ++gen });
    return exchange(port, local, msg);
  };
  return {
    d,
    host,
    prior,
    port,
    pinned,
    listeningAtLoad,
    write,
    runs,
    appConnect,
    dst,
    events,
    dir,
  };
}
/** is something listening on 127.0.0.1:port? (the router resets what it cannot attribute: that still counts) */
export function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('connect', () => (s.destroy(), resolve(true)));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code !== 'ECONNREFUSED'));
  });
}
