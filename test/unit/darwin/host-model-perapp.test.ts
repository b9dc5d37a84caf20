/**
 * Per-app routing on macOS, end to end on the host model: the real Daemon with its real
 * in-process engine host (utuns of the model) hosts the flow router (resources/engine/
 * flow-router-host.ts) and realises the PF anchor with the router's rules
 * (realiseDarwinFlow). The model's PF (pf-eval.ts pfPath) shows where an app's SYN goes;
 * the router runs on this host's loopback with fake system calls (pcblist_n bytes in the
 * kernel's layout, proc_pidpath by table, DIOCNATLOOK answering a local server, pinned
 * sockets that are plain Linux sockets recording the interface): what PF would redirect is
 * connected to the router's port here. Verified on the model only (docs/platform-macos.md).
 */
import { connect, createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AF_INET, SOCK_CLOEXEC, SOCK_STREAM, socket } from '../../../src/native/libc.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { createInprocEngineHost } from '../../../src/resources/engine/inproc.js';
import type { DarwinFlowNatives } from '../../../src/resources/flow/flow-router-darwin.js';
import { FileStateStore } from '../../../src/util/state.js';
import { Device } from '../../../src/dataplane/device/device.js';
import { UdpBind } from '../../../src/dataplane/conn/udp.js';
import { MemoryTun } from '../../../src/dataplane/tun/memory.fake.js';
import { generateKeyPair } from '../../../src/dataplane/crypto/keys.js';
import { modelEngineIo } from '../../helpers/macos-host/engine.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfPath } from '../../helpers/macos-host/pf-eval.js';
import { ENDPOINT_UDP, macConfig, WEB } from '../../helpers/macos-host/scenario.js';
import { exchange, freePort, routeServer } from '../../helpers/route-servers.js';
import { modelDaemon } from '../../helpers/macos-host/daemon.js';
import { cat, inpcb, rest, socket as xsocket, xinpgen } from '../../helpers/pcblist-bytes.js';
import { capturingCli, macCallers } from '../../helpers/macos-host/daemon.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { darwinProcessLister } from '../../../src/procs/list.js';
import { capturedProcTable } from '../../helpers/macos-host/procs.js';
import { execCommand } from '../../../src/cli/commands/exec.js';

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

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  o: {
    config?: (mail: string | undefined, port: number) => string;
    healthIntervalMs?: number;
  } = {},
) {
  const dir = mkdtempSync(join(tmpdir(), 'awg-machost-perapp-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
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
  const owners = new Map<number, number>(); // the app's local port → pid
  const pinned: string[] = [];
  const natives: DarwinFlowNatives = {
    sysctl: () => {
      const recs = [...owners].flatMap(([p, pid]) => [
        inpcb(false, [127, 0, 0, 1], p, [127, 0, 0, 1], dst.port, BigInt(p)),
        xsocket(501, pid, 0),
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
    owners.set(local, pid);
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
function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('connect', () => (s.destroy(), resolve(true)));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code !== 'ECONNREFUSED'));
  });
}

describe('macOS host model: per-app rules through the daemon and its flow router', () => {
  it('router up before the anchor redirects to it; apps routed by rule; a rule edit judges the next connection; down restores the host and closes the router', async () => {
    const t = await setup();
    await t.d.start();
    await t.runs(1);
    expect(t.listeningAtLoad).toEqual([true]);
    expect(t.host.pf.nat).toContain('rdr-anchor "com.awg/*" all');

    // PF on the model: a user app's SYN is redirected to the router, root's is not (route-to
    // skips uid 0), user UDP goes to the router too (host-model-udp.test.ts), the engine's own
    // UDP passes
    const app = { ...WEB, uid: 501 };
    expect(pfPath(t.host, app)).toEqual({ redirect: '127.0.0.1', port: t.port });
    expect(pfPath(t.host, { ...app, iface: 'utun0' })).toEqual({
      redirect: '127.0.0.1',
      port: t.port,
    });
    expect(pfPath(t.host, { ...app, uid: 0 })).toBe('out');
    expect(pfPath(t.host, { ...app, proto: 'udp', dport: 443 })).toEqual({
      redirect: '127.0.0.1',
      port: t.port,
    });
    expect(pfPath(t.host, { ...ENDPOINT_UDP, uid: 0 })).toBe('out');
    // the endpoint and loopback are in the skip table: never redirected
    expect(pfPath(t.host, { ...app, dst: '198.51.100.7' })).toBe('out');

    // the router on this host's loopback: Mail into the tunnel's utun, curl direct on en0,
    // telemetry blocked, an app no rule matches takes the default (the tunnel)
    expect(await t.appConnect(530, 'mail')).toBe('dst:mail');
    expect(await t.appConnect(601, 'curl')).toBe('dst:curl');
    expect(await t.appConnect(602, 'beacon')).toBe('reset');
    expect(await t.appConnect(603, 'notes')).toBe('dst:notes');
    expect(t.pinned).toEqual(['utun0/4', 'en0/4', 'utun0/4']);
    expect(t.dst.seen).toEqual(['mail', 'curl', 'notes']);
    const st = await t.d.status();
    // blocked: telemetry and the probe of the port at the anchor load (no owner: reset)
    expect(st.placement).toMatchObject({
      state: 'active',
      reason: expect.stringMatching(
        new RegExp(`port ${t.port}; connections so far: blocked 2, direct 1, home 2$`),
      ),
    });
    // per-rule counters: each rule's connections through the router and their payload (the
    // app's message out, the destination's `dst:` answer back); Notes matched no rule
    const byRule = Object.fromEntries((st.rules ?? []).map((r) => [r.name, r]));
    expect(byRule).toEqual({
      mail: {
        name: 'mail',
        target: 'home',
        route: 'home',
        connections: 1,
        txBytes: 4,
        rxBytes: 8,
        txPackets: 0,
        rxPackets: 0,
      },
      tools: {
        name: 'tools',
        target: 'direct',
        route: 'direct',
        connections: 1,
        txBytes: 4,
        rxBytes: 8,
        txPackets: 0,
        rxPackets: 0,
      },
      telemetry: {
        name: 'telemetry',
        target: 'block',
        route: 'blocked',
        connections: 1,
        txBytes: expect.any(Number),
        rxBytes: 0,
        txPackets: 0,
        rxPackets: 0,
      },
    });

    // the config changes Mail's rule to direct: nothing on the host changes (PF sends all user
    // TCP to the router either way); the router is updated and judges the next connection
    t.write('direct');
    t.d.wake('config');
    expect(await t.runs(2)).toMatchObject({ outcome: 'unchanged' });
    expect(await t.appConnect(530, 'mail2')).toBe('dst:mail2');
    expect(t.pinned.at(-1)).toBe('en0/4');
    expect(t.listeningAtLoad).toEqual([true]);
    // the same router: the rule's counts go on (its route is now direct)
    expect((await t.d.status()).rules?.find((r) => r.name === 'mail')).toMatchObject({
      route: 'direct',
      connections: 2,
      txBytes: 9,
      rxBytes: 17,
    });

    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    expect(pfPath(t.host, app)).toBe('out');
    expect(await reachable(t.port)).toBe(false);
    expect((await t.d.status()).placement?.state).toBe('off');
    expect((await t.d.status()).rules).toBeUndefined(); // down: no config, no counters
    await t.d.stop();
  });

  it("fallbacks follow the tunnel's health through the daemon: a peer that stops answering takes its rules to allow-direct, block and failover (another tunnel), drop blocks either way, its return brings them back", async () => {
    // a real peer on loopback: our engine with a TUN that carries nothing; it answers handshakes
    const client = generateKeyPair();
    const server = generateKeyPair();
    const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');
    const startPeer = async (listenPort = 0) => {
      const dev = new Device({ tun: new MemoryTun('peer'), bind: new UdpBind('127.0.0.1') });
      await dev.configure({
        privateKey: server.privateKey,
        listenPort,
        peers: [{ publicKey: client.publicKey, allowedIps: ['10.66.0.2/32'] }],
      });
      await dev.up();
      return dev;
    };
    let peer = await startPeer();
    cleanups.push(() => peer.close());
    const peerPort = peer.port;
    // the failover's tunnel: a second peer that stays
    const client2 = generateKeyPair();
    const server2 = generateKeyPair();
    const backupPeer = new Device({ tun: new MemoryTun('peer2'), bind: new UdpBind('127.0.0.1') });
    await backupPeer.configure({
      privateKey: server2.privateKey,
      listenPort: 0,
      peers: [{ publicKey: client2.publicKey, allowedIps: ['10.67.0.2/32'] }],
    });
    await backupPeer.up();
    cleanups.push(() => backupPeer.close());
    // `home` is not the default: Mail's flows are dialled on its utun (scoped routes), others direct
    const config = (_mail: string | undefined, port: number) => `version: 1
tunnels:
  home:
    type: wireguard
    privateKey: "${b64(client.privateKey)}"
    addresses: [10.66.0.2/32]
    downAfter: 2
    peers:
      - publicKey: "${b64(server.publicKey)}"
        endpoint: 127.0.0.1:${peerPort}
        allowedIPs: [0.0.0.0/0]
        persistentKeepalive: 1
  backup:
    type: wireguard
    privateKey: "${b64(client2.privateKey)}"
    addresses: [10.67.0.2/32]
    peers:
      - publicKey: "${b64(server2.publicKey)}"
        endpoint: 127.0.0.1:${backupPeer.port}
        allowedIPs: [0.0.0.0/0]
        persistentKeepalive: 1
default: direct
killSwitch: off
rules:
  - name: mail
    match: { name: Mail }
    target: home
    fallback: allow-direct
  - name: notes
    match: { name: Notes }
    target: home
    fallback: block
  - name: tools
    match: { dir: /usr/bin }
    target: home
    fallback: failover
  - name: tools-backup
    match: { dir: /usr/bin }
    target: backup
    fallback: block
  - name: calendar
    match: { name: Calendar }
    target: home
    fallback: drop
routing: { proxyPortBase: ${port} }
`;
    const t = await setup({ config, healthIntervalMs: 200 });
    /** until the daemon reports `tunnel` (home) `want` after event `from` (up to 30 s) */
    const becomes = async (want: string, from: number, tunnel = 'home') => {
      for (let i = 0; i < 600; i++) {
        if (
          t.events
            .slice(from)
            .some((e) => e.type === 'tunnel' && e.tunnel === tunnel && e.state === want)
        )
          return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(
        `tunnel ${tunnel} never ${want}: ${JSON.stringify(t.events.filter((e) => e.type === 'tunnel'))}`,
      );
    };
    await t.d.start();
    await t.runs(1);
    await becomes('up', 0);
    await becomes('up', 0, 'backup');
    expect(await t.appConnect(530, 'mail-up')).toBe('dst:mail-up');
    const homePin = t.pinned.at(-1)!;
    expect(homePin).toMatch(/^utun\d+\/4$/);
    expect(await t.appConnect(603, 'notes-up')).toBe('dst:notes-up');
    expect(await t.appConnect(601, 'tools-up')).toBe('dst:tools-up');
    expect(t.pinned.slice(-2)).toEqual([homePin, homePin]);
    // `drop` blocks whether the tunnel is up or not (match.ts): reset, never dialled
    expect(await t.appConnect(604, 'calendar-up')).toBe('reset');
    expect(t.pinned.slice(-2)).toEqual([homePin, homePin]);
    // `awg status` counts the tunnel's traffic from the engine's peer (handshakes, keepalives)
    const home = (await t.d.status()).tunnels.find((x) => x.name === 'home')!;
    expect(home).toMatchObject({
      health: 'up',
      peers: [expect.objectContaining({ endpoint: `127.0.0.1:${peerPort}` })],
    });
    expect(home.rxBytes).toBeGreaterThan(0);
    expect(home.txBytes).toBeGreaterThan(0);

    // the peer goes away: keepalives unanswered, the daemon's probe unanswered for downAfter
    let from = t.events.length;
    await peer.close();
    await becomes('down', from);
    expect(await t.appConnect(530, 'mail-down')).toBe('dst:mail-down');
    expect(t.pinned.at(-1)).toBe('en0/4'); // allow-direct: pinned to the physical interface
    expect(await t.appConnect(603, 'notes-down')).toBe('reset'); // block: reaches nothing
    expect(t.pinned.at(-1)).toBe('en0/4');
    expect(await t.appConnect(601, 'tools-down')).toBe('dst:tools-down'); // failover: the next rule's tunnel
    const backupPin = t.pinned.at(-1)!;
    expect(backupPin).toMatch(/^utun\d+\/4$/);
    expect(backupPin).not.toBe(homePin);
    expect(await t.appConnect(604, 'calendar-down')).toBe('reset');
    expect(t.pinned.at(-1)).toBe(backupPin);
    expect((await t.d.status()).tunnels.find((x) => x.name === 'home')).toMatchObject({
      health: 'down',
    });

    // it comes back on the same port: the daemon's probes reach it, the rule goes home again
    from = t.events.length;
    peer = await startPeer(peerPort);
    await becomes('up', from);
    expect(await t.appConnect(530, 'mail-back')).toBe('dst:mail-back');
    expect(await t.appConnect(603, 'notes-back')).toBe('dst:notes-back');
    expect(await t.appConnect(601, 'tools-back')).toBe('dst:tools-back');
    expect(t.pinned.slice(-3)).toEqual([homePin, homePin, homePin]);
    expect(t.dst.seen).toEqual([
      'mail-up',
      'notes-up',
      'tools-up',
      'mail-down',
      'tools-down',
      'mail-back',
      'notes-back',
      'tools-back',
    ]);
    // the rules' counters saw it all: each rule's three connections (blocked and failed-over ones too)
    expect((await t.d.status()).rules?.map((r) => `${r.name} ${r.connections}`)).toEqual([
      'mail 3',
      'notes 3',
      'tools 3',
      'tools-backup 0',
      'calendar 2',
    ]);
    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  }, 60_000);

  it("awg exec through the daemon: --tunnel takes a registered process's tree past the rules (curl and its git child into the tunnel), --direct a blocked app out; a re-parented grandchild and an ended registration take the rules; a config without rules ends the rest with a reason", async () => {
    const t = await setup();
    const ends: string[] = [];
    const end = (pid: number) => (reason: string) => ends.push(`${pid}: ${reason}`);
    await expect(t.d.routeExec(650, { tunnel: 'home' }, end(650))).rejects.toMatchObject({
      kind: 'unsupported',
      message: expect.stringMatching(
        /^awg exec on macOS routes through the daemon's flow router, which runs only while/,
      ),
    });
    await t.d.start();
    await t.runs(1);
    await expect(t.d.routeExec(650, { tunnel: 'nope' }, end(650))).rejects.toMatchObject({
      kind: 'invalid-config',
      message:
        'awg exec --tunnel nope: unknown tunnel "nope" (tunnels: home) in the applied configuration',
    });
    await expect(t.d.routeExec(650, { rule: 'nope' }, end(650))).rejects.toMatchObject({
      kind: 'invalid-config',
      message:
        'awg exec --rule nope: no enabled rule named "nope" (rules: mail, tools, telemetry) in the applied configuration',
    });

    // the rules alone: curl and git go direct (tools), the telemetry agent is blocked
    expect(await t.appConnect(601, 'curl-rules')).toBe('dst:curl-rules');
    expect(t.pinned.at(-1)).toBe('en0/4');
    const off = await t.d.routeExec(650, { tunnel: 'home' }, end(650));
    expect(await t.appConnect(601, 'curl-exec')).toBe('dst:curl-exec');
    expect(t.pinned.at(-1)).toBe('utun0/4');
    expect(await t.appConnect(605, 'git-exec')).toBe('dst:git-exec');
    expect(t.pinned.at(-1)).toBe('utun0/4');
    expect(await t.appConnect(606, 'git-daemon')).toBe('dst:git-daemon'); // re-parented to launchd: the rules
    expect(t.pinned.at(-1)).toBe('en0/4');
    await expect(t.d.routeExec(650, { direct: true }, end(650))).rejects.toMatchObject({
      kind: 'conflict',
    });
    const offDirect = await t.d.routeExec(651, { direct: true }, end(651));
    expect(await t.appConnect(602, 'beacon')).toBe('dst:beacon');
    expect(t.pinned.at(-1)).toBe('en0/4');
    // awg processes: the registered trees as Linux lists exec cgroups (awg itself, root, is not routed per app)
    expect((await t.d.status()).placement?.reason).toMatch(/; awg exec registrations: 2$/);
    const listed = async () =>
      (await t.d.listProcesses()).map((p) => `${p.pid} ${p.rule ?? '-'} ${p.route}`);
    expect(await listed()).toEqual([
      '530 mail home',
      '601 exec:home home',
      '602 exec:direct direct',
      '605 exec:home home',
      '606 tools direct',
    ]);
    off();
    expect(await listed()).toEqual([
      '530 mail home',
      '601 tools direct',
      '602 exec:direct direct',
      '605 tools direct',
      '606 tools direct',
    ]);
    expect(await t.appConnect(601, 'curl-after')).toBe('dst:curl-after');
    expect(t.pinned.at(-1)).toBe('en0/4');
    // the rules count what they decided; flows of --tunnel and --direct belong to no rule (Linux: _exec-* cgroups)
    expect((await t.d.status()).rules?.map((r) => `${r.name} ${r.connections}`)).toEqual([
      'mail 0',
      'tools 3',
      'telemetry 0',
    ]);
    expect(ends).toEqual([]);
    expect((await t.d.status()).placement?.reason).toMatch(/; awg exec registrations: 1$/);

    // the rules go: the router closes, and with it the registration that is left
    t.write(undefined);
    t.d.wake('config');
    await t.runs(2);
    expect(ends).toEqual([
      '651: the flow router stopped (awg down, the daemon stopping, or a config without per-app rules): the choice of awg exec can no longer be kept',
    ]);
    offDirect();
    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });

  it("awg exec on the model end to end: the CLI registers through the API (its pid from LOCAL_PEERPID) before it runs the command, which routes its children; the command's exit ends it; a config without per-app rules stops the command with the reason", async () => {
    const t = await setup();
    await t.d.start();
    await t.runs(1);
    const mac = macCallers();
    mac.state.who = { uid: 0, groups: [0], pid: 650 }; // awg exec, as root, the parent of curl (601)
    const socket = join(t.dir, 'awg.sock');
    const server = await startApiServer(t.d, { socketPath: socket, callers: mac.callers });
    cleanups.push(() => server.close());
    const cli = capturingCli();
    const go = join(t.dir, 'go');
    // the command waits until the test has seen curl routed by the registration
    const wait = ['sh', '-c', `while [ ! -e ${go} ]; do sleep 0.02; done`];
    const deps = { platform: darwinPlatform, euid: 501, env: {} };
    const run = cli.run(() => execCommand(cli.io, wait, { tunnel: 'home', socket }, deps));
    await expect
      .poll(
        async () =>
          (await t.appConnect(601, 'curl')) === 'dst:curl' && t.pinned.at(-1) === 'utun0/4',
      )
      .toBe(true);
    writeFileSync(go, '');
    expect(await run).toEqual({ code: 0, out: '' });
    await expect
      .poll(
        async () => (await t.appConnect(601, 'curl-after')) === 'dst:curl-after' && t.pinned.at(-1),
      )
      .toBe('en0/4');
    rmSync(go);

    // the rules leave the config while a command runs: the router stops; awg exec says why, stops the command, exits 6 (driver)
    const run2 = cli.run(() =>
      execCommand(cli.io, ['sleep', '30'], { tunnel: 'home', socket }, deps),
    );
    await expect
      .poll(async () => (await t.appConnect(601, 'curl2')) === 'dst:curl2' && t.pinned.at(-1))
      .toBe('utun0/4');
    t.write(undefined);
    t.d.wake('config');
    await t.runs(2);
    expect(await run2).toEqual({
      code: 6,
      out: 'awg exec: the flow router stopped (awg down, the daemon stopping, or a config without per-app rules): the choice of awg exec can no longer be kept; stopping sleep: its new connections would no longer follow --tunnel home\n',
    });
    await server.close();
    await t.d.down();
    await t.d.stop();
  });

  it('rules removed from the config: the anchor without rdr loads, then the router closes', async () => {
    const t = await setup();
    await t.d.start();
    await t.runs(1);
    expect(await reachable(t.port)).toBe(true);
    t.write(undefined);
    t.d.wake('config');
    await t.runs(2);
    expect(t.host.pf.anchorNat.get('com.awg/awg')).toEqual([]);
    expect(pfPath(t.host, { ...WEB, uid: 501 })).toBe('out');
    expect(await reachable(t.port)).toBe(false);
    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });

  it('drift of the redirect is found and repaired: our translation rules flushed, the main ruleset reloaded without our hooks', async () => {
    const t = await setup();
    await t.d.start();
    await t.runs(1);
    const app = { ...WEB, uid: 501 };
    t.host.pf.anchorNat.set('com.awg/awg', []);
    expect(pfPath(t.host, app)).toBe('lo0'); // fail-closed meanwhile: routed to lo0, nothing redirects it
    t.d.wake('drift-timer');
    expect(await t.runs(2)).toMatchObject({ outcome: 'converged' });
    expect(pfPath(t.host, app)).toEqual({ redirect: '127.0.0.1', port: t.port });
    t.host.pfctlReload();
    expect(pfPath(t.host, app)).toBe('out'); // our anchor is not evaluated at all now
    t.d.wake('drift-timer');
    expect(await t.runs(3)).toMatchObject({ outcome: 'converged' });
    expect(pfPath(t.host, app)).toEqual({ redirect: '127.0.0.1', port: t.port });
    await t.d.down();
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });

  it('the router cannot listen (its port is taken): the run fails before anything on the host changes', async () => {
    const t = await setup();
    const squat = createServer();
    await new Promise<void>((r) => squat.listen(t.port, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => squat.close(() => r())));
    await t.d.start();
    // no count of tries: a loaded machine can outlast one; the test's timeout bounds the wait
    while (!t.events.some((e) => e.type === 'reconcile-finished'))
      await new Promise((r) => setTimeout(r, 2));
    expect(t.events.find((e) => e.type === 'reconcile-finished')).toMatchObject({
      outcome: 'failed',
      error: {
        kind: 'driver',
        message: expect.stringMatching(
          new RegExp(
            `^the flow router cannot listen on 127\\.0\\.0\\.1/::1 port ${t.port} \\(TCP and UDP; routing\\.proxyPortBase\\)`,
          ),
        ),
      },
    });
    expect(t.host.mutations).toBe(0);
    expect(t.host.snapshot()).toEqual(t.prior);
    await t.d.stop();
  });
});
