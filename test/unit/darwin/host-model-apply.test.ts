/**
 * `awg apply` on macOS as a Mac runs it (darwinPlatform as it is, no engine stand-in):
 * - without the daemon, a config with tunnels is refused (`unsupported`, exit 3) before the
 *   host is read or the state directory written, naming the way to run it; `--dry-run` and a
 *   config without tunnels (kill switch only) still work directly;
 * - with the daemon, the CLI is its client over the gRPC socket, and the daemon (the real
 *   Daemon, its real in-process engine host on utuns of the model) applies, diffs, reports
 *   and takes down;
 * - the API's caller check is macOS's (LOCAL_PEERCRED, LOCAL_PEERPID, extended ACLs) on fake
 *   system calls: a caller who is neither root nor in the socket group is refused, a group
 *   member may watch but not take down or apply an untrusted config, root may do everything.
 * Verified on the model only (docs/platform-macos.md).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applyCommand } from '../../../src/cli/commands/apply.js';
import { diffCommand } from '../../../src/cli/commands/diff.js';
import { downCommand } from '../../../src/cli/commands/down.js';
import { statusCommand } from '../../../src/cli/commands/status.js';
import type { Io } from '../../../src/cli/output.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { createInprocEngineHost } from '../../../src/resources/engine/inproc.js';
import { FileStateStore } from '../../../src/util/state.js';
import { modelEngineIo } from '../../helpers/macos-host/engine.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfVerdict } from '../../helpers/macos-host/pf-eval.js';
import { macCallers, modelDaemon } from '../../helpers/macos-host/daemon.js';
import { macConfig, WEB } from '../../helpers/macos-host/scenario.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(yaml = macConfig()) {
  const dir = mkdtempSync(join(tmpdir(), 'awg-machost-apply-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, yaml, { mode: 0o600 });
  const host = MacHost.laptop();
  let out = '';
  let err = '';
  const io: Io = { out: (x) => (out += x), err: (x) => (err += x), colour: false };
  const run = async (f: () => Promise<number>) => {
    out = '';
    err = '';
    const code = await f();
    return { code, out, err };
  };
  return {
    dir,
    file,
    host,
    io,
    run,
    stateDir: join(dir, 'state'),
    deps: { platform: darwinPlatform, exec: host },
  };
}

describe('macOS host model: awg apply without the daemon', () => {
  it('a config with tunnels: refused before anything is read or written, with the way to run it', async () => {
    const s = setup();
    const prior = s.host.snapshot();
    const r = await s.run(() =>
      applyCommand(s.io, { file: s.file, stateDir: s.stateDir, direct: true }, s.deps),
    );
    expect(r.code).toBe(3);
    expect(r.err).toMatch(
      /^awg: error \[unsupported\]: awg apply without the awg daemon cannot run this config on macOS \(--direct was given\): .* the engines of home must live in the daemon; nothing was changed$/m,
    );
    expect(r.err).toContain(
      `hint: install and start the daemon with \`sudo awg service install --config ${resolve(s.file)}\``,
    );
    expect(r.err).toContain('`sudo awg up -f ');
    expect(s.host.log).toEqual([]); // not even a read
    expect(existsSync(s.stateDir)).toBe(false);
    expect(s.host.snapshot()).toEqual(prior);
  });

  it('path rules without tunnels: refused too (the flow router runs in the daemon)', async () => {
    const s = setup(
      'version: 1\nrules:\n  - name: no-telemetry\n    match: { name: telemetryd }\n    target: block\n',
    );
    const r = await s.run(() =>
      applyCommand(s.io, { file: s.file, stateDir: s.stateDir, direct: true }, s.deps),
    );
    expect(r.code).toBe(3);
    expect(r.err).toMatch(
      /path rules \(no-telemetry\) are applied per connection by the flow router, which runs in the daemon; nothing was changed/,
    );
    expect(s.host.log).toEqual([]);
  });

  it('--dry-run shows the plan without the daemon and changes nothing', async () => {
    const s = setup();
    const r = await s.run(() =>
      applyCommand(
        s.io,
        { file: s.file, stateDir: s.stateDir, direct: true, dryRun: true },
        s.deps,
      ),
    );
    expect(r.code).toBe(0);
    expect(r.out).toContain('Dry run: nothing was changed.');
    expect(r.err).toContain('0.0.0.0/1');
    expect(s.host.log.filter((l) => l.kind === 'mutate')).toEqual([]);
    expect(s.host.mutations).toBe(0);
  });

  it('a config without tunnels (kill switch only) applies directly; down reopens the host', async () => {
    const s = setup('version: 1\nkillSwitch: on\n');
    const prior = s.host.snapshot();
    expect(
      (
        await s.run(() =>
          applyCommand(s.io, { file: s.file, stateDir: s.stateDir, direct: true }, s.deps),
        )
      ).code,
    ).toBe(0);
    expect(pfVerdict(s.host, WEB)).toBe('block');
    expect(
      (await s.run(() => downCommand(s.io, { stateDir: s.stateDir, direct: true }, s.deps))).code,
    ).toBe(0);
    expect(s.host.snapshot()).toEqual(prior);
  });
});

/** the real Daemon on the model with its in-process engine host on the model's utuns */
async function daemonOnModel(s: ReturnType<typeof setup>) {
  const { io, pins } = await modelEngineIo(s.host);
  const { d } = modelDaemon({
    platform: darwinPlatform,
    exec: s.host,
    state: new FileStateStore(s.stateDir),
    engines: createInprocEngineHost({ io, uapi: false }),
  });
  await d.start();
  cleanups.push(async () => {
    await d.stop({ teardown: false });
  });
  return { d, pins };
}

describe('macOS host model: awg apply through the daemon', () => {
  it('the CLI is the daemon client: apply 0 → diff 0 → status 0 → down restores the host', async () => {
    const s = setup();
    const prior = s.host.snapshot();
    const { d, pins } = await daemonOnModel(s);
    const socket = join(s.dir, 'awg.sock');
    const mac = macCallers();
    const server = await startApiServer(d, { socketPath: socket, callers: mac.callers });
    cleanups.push(() => server.close());

    const a = await s.run(() => applyCommand(s.io, { file: s.file, socket }));
    expect(a.err).not.toMatch(/error/);
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/^Applied: \d+ change\(s\), \d+ mutation\(s\); verified\.$/m);
    expect(s.host.interfaces.has('utun0')).toBe(true);
    expect(pfVerdict(s.host, { ...WEB, iface: 'utun0' })).toBe('pass');
    expect(pfVerdict(s.host, WEB)).toBe('block');
    expect(pins.map((p) => p.ifname)).toEqual(['en0']);

    expect((await s.run(() => diffCommand(s.io, { file: s.file, socket }))).code).toBe(0);
    const st = await s.run(() => statusCommand(s.io, { socket }));
    expect(st.code).toBe(0);
    expect(st.out).toMatch(/home/);

    const down = await s.run(() => downCommand(s.io, { socket }));
    expect(down.code).toBe(0);
    expect(s.host.snapshot()).toEqual(prior);
    // every caller was identified by macOS's options, at SOL_LOCAL
    expect(mac.calls.length).toBeGreaterThanOrEqual(2);
    expect(new Set(mac.calls.map((c) => `${c.level}/${c.name}`))).toEqual(new Set(['0/1', '0/2']));
  });

  it('the caller check is macOS’s: neither root nor in the socket group is refused; a group member may watch, not take down or apply a config others can replace; root may do everything', async () => {
    const s = setup();
    const prior = s.host.snapshot();
    const { d } = await daemonOnModel(s);
    const socket = join(s.dir, 'awg.sock');
    const mac = macCallers();
    const server = await startApiServer(d, {
      socketPath: socket,
      group: 990,
      callers: mac.callers,
    });
    cleanups.push(() => server.close());

    // uid 501 in staff (20) and others, not in 990. This test runs as root: had Linux's
    // SO_PEERCRED been asked, the caller would have been root and allowed.
    mac.state.who = { uid: 501, groups: [20, 12, 61, 79], pid: 4242 };
    for (const [rpc, cmd] of [
      ['Status', () => statusCommand(s.io, { socket })],
      ['Apply', () => applyCommand(s.io, { file: s.file, socket })],
      ['Down', () => downCommand(s.io, { socket })],
    ] as const) {
      const r = await s.run(cmd);
      expect(r.code).toBe(4);
      expect(r.err).toContain(
        `awg: error [permission]: permission denied: ${rpc} for uid 501 (gid 20, pid 4242): only root and members of group 990 may use this socket`,
      );
    }
    expect(s.host.mutations).toBe(0);

    // a member through a supplementary group: state yes; Down no; its config under /tmp (sticky, world-writable) no
    mac.state.who = { uid: 502, groups: [20, 990], pid: 4243 };
    const st = await s.run(() => statusCommand(s.io, { socket }));
    expect(st.err).not.toContain('permission');
    expect((await s.run(() => downCommand(s.io, { socket }))).err).toContain(
      'permission denied: Down for uid 502 (gid 20, pid 4243): Down removes every tunnel and the kill switch; only root may',
    );
    const ap = await s.run(() => applyCommand(s.io, { file: s.file, socket }));
    expect(ap.code).toBe(4);
    expect(ap.err).toMatch(
      /permission denied: Apply for uid 502 .*: config \/.* is not trusted: directory \/tmp is writable by its group and others/,
    );
    expect(mac.acls).toContain('/'); // the ACL of each object on the way was read through macOS's call
    expect(s.host.mutations).toBe(0);

    // root
    mac.state.who = { uid: 0, groups: [0, 1, 2], pid: 1 };
    expect((await s.run(() => applyCommand(s.io, { file: s.file, socket }))).code).toBe(0);
    expect(pfVerdict(s.host, WEB)).toBe('block');
    expect((await s.run(() => downCommand(s.io, { socket }))).code).toBe(0);
    expect(s.host.snapshot()).toEqual(prior);
  });
});
