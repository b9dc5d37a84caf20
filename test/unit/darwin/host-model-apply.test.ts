/**
 * `awg apply` on macOS as a Mac runs it (darwinPlatform as it is, no engine stand-in):
 * - without the daemon, a config with tunnels is refused (`unsupported`, exit 3) before the
 *   host is read or the state directory written, naming the way to run it; `--dry-run` and a
 *   config without tunnels (kill switch only) still work directly;
 * - with the daemon, the CLI is its client over the gRPC socket, and the daemon (the real
 *   Daemon, its real in-process engine host on utuns of the model) applies, diffs, reports
 *   and takes down.
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
import { Daemon } from '../../../src/daemon/daemon.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { darwinPlatform } from '../../../src/resources/darwin.js';
import { createInprocEngineHost } from '../../../src/resources/engine/inproc.js';
import { FileStateStore } from '../../../src/util/state.js';
import { modelEngineIo } from '../../helpers/macos-host/engine.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfVerdict } from '../../helpers/macos-host/pf-eval.js';
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
  return { dir, file, host, io, run, stateDir: join(dir, 'state'), deps: { platform: darwinPlatform, exec: host } };
}

describe('macOS host model: awg apply without the daemon', () => {
  it('a config with tunnels: refused before anything is read or written, with the way to run it', async () => {
    const s = setup();
    const prior = s.host.snapshot();
    const r = await s.run(() => applyCommand(s.io, { file: s.file, stateDir: s.stateDir, direct: true }, s.deps));
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/^awg: error \[unsupported\]: awg apply without the awg daemon cannot run this config on macOS \(--direct was given\): .* the engines of home must live in the daemon; nothing was changed$/m);
    expect(r.err).toContain(`hint: install and start the daemon with \`sudo awg service install --config ${resolve(s.file)}\``);
    expect(r.err).toContain('`sudo awg up -f ');
    expect(s.host.log).toEqual([]); // not even a read
    expect(existsSync(s.stateDir)).toBe(false);
    expect(s.host.snapshot()).toEqual(prior);
  });

  it('path rules without tunnels: refused too (the flow router runs in the daemon)', async () => {
    const s = setup('version: 1\nrules:\n  - name: no-telemetry\n    match: { name: telemetryd }\n    target: block\n');
    const r = await s.run(() => applyCommand(s.io, { file: s.file, stateDir: s.stateDir, direct: true }, s.deps));
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/path rules \(no-telemetry\) are applied per connection by the flow router, which runs in the daemon; nothing was changed/);
    expect(s.host.log).toEqual([]);
  });

  it('--dry-run shows the plan without the daemon and changes nothing', async () => {
    const s = setup();
    const r = await s.run(() => applyCommand(s.io, { file: s.file, stateDir: s.stateDir, direct: true, dryRun: true }, s.deps));
    expect(r.code).toBe(0);
    expect(r.out).toContain('Dry run: nothing was changed.');
    expect(r.err).toContain('0.0.0.0/1');
    expect(s.host.mutations).toBe(0);
  });

  it('a config without tunnels (kill switch only) applies directly; down reopens the host', async () => {
    const s = setup('version: 1\nkillSwitch: on\n');
    const prior = s.host.snapshot();
    expect((await s.run(() => applyCommand(s.io, { file: s.file, stateDir: s.stateDir, direct: true }, s.deps))).code).toBe(0);
    expect(pfVerdict(s.host, WEB)).toBe('block');
    expect((await s.run(() => downCommand(s.io, { stateDir: s.stateDir, direct: true }, s.deps))).code).toBe(0);
    expect(s.host.snapshot()).toEqual(prior);
  });
});

describe('macOS host model: awg apply through the daemon', () => {
  it('the CLI is the daemon client: apply 0 → diff 0 → status 0 → down restores the host', async () => {
    const s = setup();
    const prior = s.host.snapshot();
    const { io, pins } = await modelEngineIo(s.host);
    const d = new Daemon({
      platform: darwinPlatform,
      exec: s.host,
      state: new FileStateStore(s.stateDir),
      engines: createInprocEngineHost({ io, uapi: false }),
      wakes: false,
      placement: false,
      loop: { driftMs: 0, debounceMs: 1, backoffBaseMs: 60_000 },
      healthIntervalMs: 0,
      trafficIntervalMs: 0,
    });
    await d.start();
    const socket = join(s.dir, 'awg.sock');
    const server = await startApiServer(d, { socketPath: socket });
    cleanups.push(async () => {
      await server.close();
      await d.stop({ teardown: false });
    });

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
  });
});
