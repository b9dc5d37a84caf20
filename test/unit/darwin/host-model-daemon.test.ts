/**
 * `awg daemon` on the macOS host model: the real Daemon (loop, reconcile, stop) with the
 * darwin platform, the model's Exec and its engine. Start converges; a crash of the daemon
 * (its engines die with it, nothing is cleaned) leaves the kill switch closed; a new daemon
 * converges again; a graceful stop keeps the kill switch and removes the rest; `down` then
 * restores the host. Verified on the model only (docs/platform-macos.md).
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createDarwinDrivers } from '../../../src/resources/platform/darwin-drivers.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { FileStateStore } from '../../../src/util/state.js';
import { teardown } from '../../../src/pipeline/teardown.js';
import { AppliedStore } from '../../../src/pipeline/applied.js';
import { silentReporter } from '../../../src/util/reporter.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { ModelEngines } from '../../helpers/macos-host/engine.js';
import { pfVerdict, type Packet } from '../../helpers/macos-host/pf-eval.js';
import { wgKeyPair } from '../../helpers/awg.js';
import { freePort } from '../../helpers/route-servers.js';
import { modelDaemon } from '../../helpers/macos-host/daemon.js';
import { macConfig } from '../../helpers/macos-host/scenario.js';
import { capturedProcTable } from '../../helpers/macos-host/procs.js';
import { darwinProcessLister } from '../../../src/procs/list.js';
import { NOTHING_TO_PLACE } from '../../../src/daemon/placement.js';

const me = wgKeyPair();
const peer = wgKeyPair();
const web: Packet = {
  dir: 'out',
  iface: 'en0',
  family: 4,
  proto: 'tcp',
  dst: '93.184.216.34',
  dport: 443,
};

describe('macOS host model: the daemon', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('start converges; a crash leaves the kill switch closed; a new daemon recovers; stop keeps the kill switch; down restores', async () => {
    dir = mkdtempSync(join(tmpdir(), 'awg-machost-daemon-'));
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      `version: 1
tunnels:
  home:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.66.0.2/32]
    dns: [10.66.0.1]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 198.51.100.7:51820
        allowedIPs: [0.0.0.0/0]
default: home
killSwitch: on
dns: { system: default-tunnel, leakProtection: true }
`,
      { mode: 0o600 },
    );
    const host = MacHost.laptop();
    const prior = host.snapshot();
    const state = new FileStateStore(join(dir, 'state'));
    const make = (engines: ModelEngines) =>
      modelDaemon({
        configPath: file,
        platform: darwinPlatform,
        drivers: { ...createDarwinDrivers({ exec: host }), engine: engines },
        exec: host,
        state,
      });
    const finished = async (x: ReturnType<typeof make>) => {
      const e = await x.finished(1);
      if (!e) throw new Error(`no reconcile: ${JSON.stringify(x.events)}`);
      return e;
    };

    let engines = new ModelEngines(host);
    const first = make(engines);
    await first.d.start();
    expect(await finished(first)).toMatchObject({ reason: 'start', outcome: 'converged' });
    expect(host.interfaces.has('utun0')).toBe(true);
    expect(pfVerdict(host, { ...web, iface: 'utun0' })).toBe('pass');

    // the daemon crashes: its engines (and their utuns, and the routes on them) die with it
    engines.kill('home');
    await first.d.stop({ teardown: false });
    expect(host.interfaces.has('utun0')).toBe(false);
    expect(pfVerdict(host, web)).toBe('block');

    // a new daemon (launchd restarts it) converges again
    engines = new ModelEngines(host);
    const second = make(engines);
    await second.d.start();
    expect(await finished(second)).toMatchObject({ reason: 'start', outcome: 'converged' });
    expect([...host.interfaces.keys()].filter((n) => n.startsWith('utun'))).toHaveLength(1);

    // a graceful stop (launchctl bootout) removes the tunnel and keeps the kill switch closed
    const r = await second.d.stop();
    expect(r.keptFirewall).toBe(true);
    expect([...host.interfaces.keys()].filter((n) => n.startsWith('utun'))).toEqual([]);
    expect(pfVerdict(host, web)).toBe('block');

    // `awg down` opens the host again, exactly as it was
    const applied = new AppliedStore(state);
    const down = await teardown(
      {
        drivers: { ...createDarwinDrivers({ exec: host }), engine: engines },
        claims: applied.claims()!,
        state,
        exec: host,
        reporter: silentReporter,
      },
      applied,
    );
    expect(down.errors).toEqual([]);
    expect(host.snapshot()).toEqual(prior);
  });

  it('with a path rule enabled and placement left on: converges, places nothing (no cgroups: the flow router runs instead), lists processes through libproc', async () => {
    dir = mkdtempSync(join(tmpdir(), 'awg-machost-daemon-'));
    const port = await freePort();
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      macConfig({ killSwitch: false }) +
        `rules:\n  - name: mail\n    match: { name: Mail }\n    target: home\n    fallback: block\nrouting: { proxyPortBase: ${port} }\n`,
      { mode: 0o600 },
    );
    const host = MacHost.laptop();
    const engines = new ModelEngines(host);
    const unused = () => {
      throw new Error('no connection reaches the router in this test');
    };
    const { d, events, finished } = modelDaemon({
      flowRouter: {
        natives: async () => ({
          sysctl: unused,
          pidPath: unused,
          originalDst: unused,
          boundTcpFd: unused,
        }),
      },
      configPath: file,
      platform: darwinPlatform,
      drivers: { ...createDarwinDrivers({ exec: host }), engine: engines },
      exec: host,
      state: new FileStateStore(join(dir, 'state')),
      processes: darwinProcessLister(capturedProcTable()),
      placement: undefined,
    });
    await d.start();
    await finished(1);
    expect(events.find((e) => e.type === 'reconcile-finished')).toMatchObject({
      outcome: 'converged',
    });
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    expect((await d.status()).placement).toEqual({
      state: 'active',
      reason: `the flow router applies path rules per TCP connection on 127.0.0.1/::1 port ${port}`,
      execs: 0,
      placed: 0,
      errors: 0,
    });
    // the daemon's tunnel health has not marked `home` down: Mail's TCP goes into it
    expect(await d.listProcesses()).toEqual([
      {
        pid: 530,
        ppid: 1,
        name: 'Mail',
        path: '/Applications/Mail.app/Contents/MacOS/Mail',
        cgroup: '',
        rule: 'mail',
        target: 'home',
        route: 'home',
      },
    ]);
    await d.down();
    expect((await d.status()).placement).toEqual({
      state: 'off',
      reason: NOTHING_TO_PLACE['flow-router'],
      execs: 0,
      placed: 0,
      errors: 0,
    });
    await d.stop({ teardown: true });
  });

  it('config edits (in place, an atomic-rename save) converge; an invalid edit keeps the last good state and is reported; fixing it converges', async () => {
    dir = mkdtempSync(join(tmpdir(), 'awg-machost-daemon-'));
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, macConfig(), { mode: 0o600 });
    const host = MacHost.laptop();
    const engines = new ModelEngines(host);
    const { d, events, finished } = modelDaemon({
      configPath: file,
      platform: darwinPlatform,
      drivers: { ...createDarwinDrivers({ exec: host }), engine: engines },
      exec: host,
      state: new FileStateStore(join(dir, 'state')),
    });
    const wifiDns = () => host.services.find((x) => x.name === 'Wi-Fi')!.dns;
    await d.start();
    expect(await finished(1)).toMatchObject({ reason: 'start', outcome: 'converged' });
    expect(wifiDns()).toEqual(['10.66.0.1']);

    // the watcher is platform-neutral (test/unit/daemon/config-watch.test.ts): woken by hand here
    writeFileSync(file, macConfig().replace('dns: [10.66.0.1]', 'dns: [10.66.0.53]'), {
      mode: 0o600,
    });
    d.wake('config');
    expect(await finished(2)).toMatchObject({ reason: 'config', outcome: 'converged' });
    expect(wifiDns()).toEqual(['10.66.0.53']);

    writeFileSync(
      join(dir, '.awg.yaml.swp'),
      macConfig().replace('dns: [10.66.0.1]', 'dns: [10.66.0.54]'),
      { mode: 0o600 },
    );
    renameSync(join(dir, '.awg.yaml.swp'), file);
    d.wake('config');
    expect(await finished(3)).toMatchObject({ reason: 'config', outcome: 'converged' });
    expect(wifiDns()).toEqual(['10.66.0.54']);

    const good = host.snapshot();
    const mutations = host.mutations;
    writeFileSync(file, 'version: 1\ntunnels: [this is not a map\n', { mode: 0o600 });
    d.wake('config');
    const bad = await finished(4);
    expect(
      events.filter((e) => e.type === 'config-changed').map((e) => (e as { valid: boolean }).valid),
    ).toEqual([true, true, false]);
    expect(
      events.find((e) => e.type === 'error' && (e as { kind: string }).kind === 'invalid-config'),
    ).toBeDefined();
    expect(bad).toMatchObject({ reason: 'config', outcome: 'unchanged' }); // the last good state, re-checked
    expect(host.snapshot()).toEqual(good);
    expect(host.mutations).toBe(mutations);

    writeFileSync(file, macConfig(), { mode: 0o600 });
    d.wake('config');
    expect(await finished(5)).toMatchObject({ reason: 'config', outcome: 'converged' });
    expect(wifiDns()).toEqual(['10.66.0.1']);
    await d.stop();
  });
});
