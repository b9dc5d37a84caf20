/**
 * The hardened unit's capability set is enough: `awg daemon` runs with exactly the bounding
 * set renderSystemdUnit writes (parsed from the rendered unit), no_new_privs and umask 077 —
 * what systemd would give it — and still does everything that needs a capability:
 * - converges a WireGuard tunnel with a handshake, a kill switch and the system DNS
 *   (CAP_NET_ADMIN: links, routes, rules, nft, TUN, SO_MARK, sysctls), listening on a port
 *   below 1024 (CAP_NET_BIND_SERVICE);
 * - gives the API socket its group (CAP_CHOWN with --socket-group);
 * - runs the placer at SCHED_FIFO (CAP_SYS_NICE) and places another user's process by its
 *   executable (CAP_SYS_PTRACE: readlink /proc/PID/exe; control: without it that readlink fails);
 * - opens the exec gate (CAP_SYS_ADMIN for fanotify_init(FAN_CLASS_CONTENT); control: without
 *   it fanotify_init is refused, which the daemon reports as `placement: best-effort`);
 * - resolv.conf stays world-readable (0644) under UMask=0077.
 * systemd itself is not PID 1 here, so setpriv applies the same limits.
 */
import { copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { close } from '../../src/native/libc.js';
import { openConnectorSocket } from '../../src/procs/connector.js';
import { renderSystemdUnit } from '../../src/resources/service/render.js';
import { cgroupOf, runProgram } from '../helpers/procs.js';

/** the matched programs, named for this run (runProgram) */
const CAPAPP = runProgram('awgt-capapp');
import {
  REPO_ROOT,
  awg,
  awgArgv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import {
  createDaemonTopology,
  CLIENT_TUN,
  PEER_ENDPOINT,
  PEER_TUN,
  eventually,
  newKeys,
  startPeer,
  type Keys,
  type Topology,
} from './daemon-support.js';

const skip = requireNetnsPrereqs(['nft', 'setpriv']);
const NOGROUP = 65534;

/** the unit's CapabilityBoundingSet as setpriv's --bounding-set argument */
function unitBoundingSet(): { caps: string[]; arg: string } {
  const unit = renderSystemdUnit({
    node: '/usr/bin/node',
    bin: '/usr/lib/awg/bin/awg.js',
    socketGroup: String(NOGROUP),
  });
  const line = unit.split('\n').find((l) => l.startsWith('CapabilityBoundingSet='));
  const caps = line!.slice('CapabilityBoundingSet='.length).split(' ');
  return {
    caps,
    arg: `--bounding-set=-all,${caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',')}`,
  };
}

describe.skipIf(skip)('awg daemon under the systemd unit’s capability bounding set', () => {
  let t: Topology;
  let ce: AwgEnv;
  let pe: AwgEnv;
  let k: Keys;
  let daemon: NsProcess | undefined;
  let app: NsProcess | undefined;
  let fd = -1;
  let socket: string;
  const bset = unitBoundingSet();

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    t = await createDaemonTopology('caps');
    pe = makeAwgEnv();
    ce = makeAwgEnv();
    k = newKeys();
    await startPeer(t, pe, k);
    fd = openConnectorSocket();
    socket = join(ce.dir, 'run', 'awg.sock');
  }, 90_000);

  afterAll(async () => {
    await app?.kill(500);
    await daemon?.kill(5000);
    if (t) await awg(t.client, ce, ['down', '--direct']).catch(() => undefined);
    if (t) await awg(t.peer, pe, ['down']).catch(() => undefined);
    if (fd >= 0) close(fd);
    if (t) await destroyNetns(t.client);
    if (t) await destroyNetns(t.peer);
    cleanupAwgEnv(ce);
    cleanupAwgEnv(pe);
  });

  it('the bounding set under test is the unit’s (and leaves out NET_RAW, FOWNER, KILL, SETUID)', () => {
    expect(bset.caps).toEqual([
      'CAP_NET_ADMIN',
      'CAP_NET_BIND_SERVICE',
      'CAP_SYS_NICE',
      'CAP_SYS_PTRACE',
      'CAP_SYS_ADMIN',
      'CAP_DAC_OVERRIDE',
      'CAP_CHOWN',
    ]);
  });

  it('converges (tunnel, kill switch, DNS, port < 1024), chowns the socket, places another user’s process at SCHED_FIFO', async () => {
    const appDir = join(ce.dir, 'apps');
    mkdirSync(appDir, { mode: 0o755 });
    copyFileSync('/bin/sleep', join(appDir, CAPAPP));
    const cfg = writeConfig(
      ce,
      'client.yaml',
      `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${k.client.privateKey}"
    addresses: [${CLIENT_TUN}/24]
    listenPort: 853
    dns: [${PEER_TUN}]
    peers:
      - publicKey: "${k.peer.publicKey}"
        endpoint: ${PEER_ENDPOINT}:51820
        allowedIPs: [${PEER_TUN.replace(/\.\d+$/, '.0')}/24]
        persistentKeepalive: 1
rules:
  - name: capr
    match: { name: ${CAPAPP} }
    target: vpn
default: vpn
dns: { system: default-tunnel }
killSwitch: on
`,
    );
    const argv = awgArgv(
      t.client,
      ce,
      [
        'daemon',
        '--config',
        cfg,
        '--state-dir',
        ce.stateDir,
        '--socket',
        socket,
        '--socket-group',
        String(NOGROUP),
      ],
      { noStateDir: true },
    );
    // argv = nsenter --net=… -- node …: run node under umask 077 + setpriv, as systemd would
    daemon = nsSpawn(
      t.client,
      'sh',
      [
        '-c',
        'umask 077 && exec "$@"',
        'awg-unit',
        'setpriv',
        bset.arg,
        '--inh-caps=-all',
        '--no-new-privs',
        '--',
        ...argv.slice(3),
      ],
      {
        env: { ...ce.env, AWG_PROC_CONNECTOR_FD: '3' },
        fds: [fd],
      },
    );
    const status = async () => {
      const r = await awg(t.client, ce, ['status', '--json', '--socket', socket], {
        noStateDir: true,
      });
      return r.code === 0
        ? r.json<{
            state: string;
            tunnels: { name: string; up: boolean }[];
            placement?: { state: string; mode?: string; modeReason?: string };
          }>()
        : undefined;
    };
    await eventually(
      async () => (await status())?.tunnels.some((x) => x.name === 'vpn' && x.up) ?? false,
      'converged with a handshake',
      60_000,
    ).catch(async (e: Error) => {
      throw new Error(
        `${e.message}\nstatus: ${JSON.stringify(await status())}\ndaemon output:\n${daemon!.output()}`,
      );
    });
    const st = (await status())!;
    expect(st.state).toBe('converged');

    // the limits really applied to the daemon
    const proc = readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
    expect(proc).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(proc).toMatch(/^CapBnd:\s+0000000000(0|[0-9a-f])+$/m);
    expect(BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(proc)![1]}`)).toBe(
      BigInt(`0x${/^CapBnd:\s+([0-9a-f]+)$/m.exec(proc)![1]}`),
    );
    expect(proc).toMatch(/^Umask:\s+0077$/m);

    // CAP_CHOWN: the socket has the group; mode 0660
    const s = statSync(socket);
    expect([s.gid, (s.mode & 0o777).toString(8)]).toEqual([NOGROUP, '660']);
    // UMask=0077 does not make resolv.conf private
    expect(readFileSync(ce.resolvConf, 'utf8')).toContain(`nameserver ${PEER_TUN}`);
    expect((statSync(ce.resolvConf).mode & 0o777).toString(8)).toBe('644');
    // CAP_NET_BIND_SERVICE: the engine listens on 853
    const ss = await nsExec(t.client, 'ss', ['-ulnH', 'sport = :853']);
    expect(ss.stdout).toContain(':853');

    // CAP_SYS_NICE + CAP_SYS_PTRACE: the placer is SCHED_FIFO and places nobody's process
    app = nsSpawn(t.client, 'setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--',
      join(appDir, CAPAPP),
      '300',
    ]);
    await eventually(
      async () => (cgroupOf(app!.pid) ?? '').endsWith(`/${ce.cgroupRoot}/capr`),
      "nobody's process placed",
    ).catch((e: Error) => {
      throw new Error(
        `${e.message} (now ${cgroupOf(app!.pid)})\ndaemon output:\n${daemon!.output()}`,
      );
    });
    const placer = (
      await run('pgrep', ['-P', String(daemon.pid), '-f', 'placer'], { allowFail: true })
    ).stdout
      .trim()
      .split('\n')[0];
    expect(placer, daemon.output()).toMatch(/^\d+$/);
    expect(
      readFileSync(`/proc/${placer}/sched`, 'utf8')
        .split('\n')
        .find((l) => l.startsWith('policy')),
    ).toMatch(/:\s+1$/);
    expect(daemon.output()).not.toMatch(/refused|EPERM|EACCES/);

    // control: without CAP_SYS_PTRACE, root cannot read which executable nobody's process runs
    const without = bset.arg.replace(',+sys_ptrace', '');
    const denied = await run(
      'setpriv',
      [without, '--inh-caps=-all', '--', 'readlink', `/proc/${app.pid}/exe`],
      { allowFail: true },
    );
    expect(denied.code, denied.stderr).not.toBe(0);
    const allowed = await run('setpriv', [
      bset.arg,
      '--inh-caps=-all',
      '--',
      'readlink',
      `/proc/${app.pid}/exe`,
    ]);
    expect(allowed.stdout.trim()).toBe(join(appDir, CAPAPP));

    // CAP_SYS_ADMIN: the exec gate is on
    await eventually(
      async () => (await status())?.placement?.mode !== undefined,
      'the placer reports its gate',
    );
    expect((await status())!.placement, daemon.output()).toMatchObject({ mode: 'gated' });
    // control: without CAP_SYS_ADMIN, fanotify_init(FAN_CLASS_CONTENT) is refused
    const probe = `import('${join(REPO_ROOT, 'dist/native/fanotify.js')}').then(({ FanotifyGroup }) => { try { FanotifyGroup.open().close(); console.log('opened'); } catch (e) { console.log(e.message); } })`;
    const noAdmin = await run('setpriv', [
      bset.arg.replace(',+sys_admin', ''),
      '--inh-caps=-all',
      '--',
      process.execPath,
      '-e',
      probe,
    ]);
    expect(noAdmin.stdout.trim()).toBe('fanotify_init: errno 1 (needs CAP_SYS_ADMIN)');
    const withAdmin = await run('setpriv', [
      bset.arg,
      '--inh-caps=-all',
      '--',
      process.execPath,
      '-e',
      probe,
    ]);
    expect(withAdmin.stdout.trim()).toBe('opened');
  }, 180_000);

  it('down through the API still works under the same limits (root-owned state, nft, links)', async () => {
    const r = await awg(t.client, ce, ['down', '--socket', socket], { noStateDir: true });
    expect(r.code, show(r)).toBe(0);
    expect(readFileSync(ce.resolvConf, 'utf8')).not.toContain(`nameserver ${PEER_TUN}`);
  });
});
