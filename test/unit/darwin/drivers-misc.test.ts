import { describe, expect, it } from 'vitest';
import type {
  AddressSpec,
  DesiredState,
  LinkSpec,
  ServiceSpec,
} from '../../../src/model/resources.js';
import { ids } from '../../../src/model/identity.js';
import type { ApplyContext } from '../../../src/resources/driver.js';
import { createDarwinLinkDriver } from '../../../src/resources/link/darwin.js';
import { createDarwinAddressDriver } from '../../../src/resources/address/darwin.js';
import {
  createDarwinServiceDriver,
  NOTE_NOT_LOADED,
} from '../../../src/resources/service/darwin.js';
import { createDarwinCgroupDriver } from '../../../src/resources/cgroup/darwin.js';
import { createDarwinRuleDriver } from '../../../src/resources/rule/darwin.js';
import { createDarwinSysctlDriver } from '../../../src/resources/sysctl/darwin.js';
import { createDarwinDrivers } from '../../../src/resources/platform/darwin-drivers.js';
import { readUtunRegistry, recordUtun } from '../../../src/platform/darwin/utun.js';
import { renderDaemonPlist } from '../../../src/platform/darwin/plist.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { MemoryReporter } from '../../../src/util/reporter.js';
import { RESOURCE_KINDS } from '../../../src/model/resources.js';
import { ScriptedExec } from './fake-exec.js';
import { fixture, sections } from './fixtures.js';
import { claims } from './helpers.js';

const NONE: DesiredState = { resources: [], warnings: [] };

function setup(ifconfig: string) {
  const exec = new ScriptedExec().on('ifconfig', { stdout: ifconfig });
  const state = new MemoryStateStore();
  const reporter = new MemoryReporter();
  const ctx: ApplyContext = { exec, reporter, state, dryRun: false, claims };
  return { exec, state, ctx, reporter };
}

describe('darwin link driver (utun observed, never created)', () => {
  const TS = fixture('ifconfig/ifconfig-utun4-tailscale-modern-jc581.txt');
  const link = (mtu: number, up = true): LinkSpec => ({ name: 'awg-work', kind: 'tun', mtu, up });
  const create = (s: LinkSpec) => ({
    kind: 'link' as const,
    id: ids.link(s.name),
    action: 'create' as const,
    after: s,
    reason: 'r',
    cause: 'initial' as const,
  });

  it('observes only registered utuns, with mtu and admin state', async () => {
    const { exec, state } = setup(fixture('ifconfig/ifconfig2-10.14.6-jc.txt') + TS);
    const d = createDarwinLinkDriver({ exec });
    expect((await d.observe({ desired: NONE, claims, state })).resources).toEqual([]);
    recordUtun(state, 'awg-work', { ifname: 'utun4', pid: 77 });
    recordUtun(state, 'awg-gone', { ifname: 'utun9' });
    const obs = await d.observe({ desired: NONE, claims, state });
    expect(obs.resources).toEqual([
      { kind: 'link', id: 'link/awg-work', spec: link(1280), deps: [] },
    ]);
    expect(obs.facts).toEqual({
      utun: { 'awg-work': 'utun4', 'awg-gone': 'utun9' },
      staleUtun: ['awg-gone=utun9'],
    });
  });

  it('sets MTU on the engine utun; matching state is unchanged', async () => {
    const { exec, state, ctx } = setup(TS);
    recordUtun(state, 'awg-work', { ifname: 'utun4' });
    const d = createDarwinLinkDriver({ exec });
    expect(await d.apply(create(link(1280)), ctx)).toBe('unchanged');
    expect(await d.apply(create(link(1420)), ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual(['ifconfig utun4 mtu 1420']);
    exec.on('ifconfig utun4 down', {
      code: 1,
      stderr: 'ifconfig: SIOCSIFFLAGS: Operation not permitted\n',
    });
    await expect(d.apply(create(link(1280, false)), ctx)).rejects.toMatchObject({
      kind: 'permission',
      message: 'ifconfig utun4 down: SIOCSIFFLAGS: Operation not permitted',
    });
  });

  it('before the engine created it: info, no mutation; a delete leaves a held utun to its engine and forgets it once gone', async () => {
    const { exec, state, ctx, reporter } = setup(TS);
    const d = createDarwinLinkDriver({ exec });
    expect(await d.apply(create(link(1420)), ctx)).toBe('unchanged');
    expect(reporter.events[0]).toMatchObject({ type: 'info' });
    recordUtun(state, 'awg-work', { ifname: 'utun4', pid: 77 });
    const del = {
      kind: 'link' as const,
      id: 'link/awg-work',
      action: 'delete' as const,
      before: link(1280),
      reason: 'r',
      cause: 'config' as const,
    };
    // held by its engine: nothing to do here (the utun goes when the engine, deleted after
    // the link on macOS, stops); the registry entry stays until then
    expect(await d.apply(del, ctx)).toBe('unchanged');
    expect(reporter.events.at(-1)).toMatchObject({
      type: 'info',
      message: 'awg-work: utun4 goes when its engine (pid 77) stops',
    });
    expect(readUtunRegistry(state)).toEqual({ 'awg-work': { ifname: 'utun4', pid: 77 } });
    exec.on('ifconfig', { stdout: fixture('ifconfig/ifconfig-10.11.6-jc.txt') });
    expect(await d.apply(del, ctx)).toBe('unchanged');
    expect(readUtunRegistry(state)).toEqual({});
    expect(exec.mutations).toBe(0);
  });
});

describe('darwin address driver', () => {
  const addr = (cidr: string, family: 4 | 6 = 4): AddressSpec => ({
    link: 'awg-work',
    cidr,
    family,
  });
  const ch = (action: 'create' | 'delete', a: AddressSpec) => ({
    kind: 'address' as const,
    id: ids.address(a),
    action,
    ...(action === 'create' ? { after: a } : { before: a }),
    reason: 'r',
    cause: 'config' as const,
  });

  it('observes v4 and non-link-local v6 of the registered utun; second apply unchanged', async () => {
    const { exec, state, ctx } = setup(
      fixture('ifconfig/ifconfig-utun4-tailscale-modern-jc581.txt'),
    );
    recordUtun(state, 'awg-work', { ifname: 'utun4' });
    const d = createDarwinAddressDriver({ exec });
    const want = [addr('100.11.11.11/32'), addr('fd7a:ab:cd::ef:12/48', 6)];
    expect(
      (await d.observe({ desired: NONE, claims, state })).resources.map((r) => r.spec),
    ).toEqual(want);
    for (const a of want) expect(await d.apply(ch('create', a), ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(0);
  });

  it('always passes the netmask (a classful /8 otherwise, zrok capture) and deletes with -alias', async () => {
    const { exec, state, ctx } = setup(fixture('ifconfig/ifconfig-utun5-classful-mask-zrok.txt'));
    recordUtun(state, 'awg-work', { ifname: 'utun5' });
    const d = createDarwinAddressDriver({ exec });
    expect(
      (await d.observe({ desired: NONE, claims, state })).resources.map((r) => r.spec),
    ).toEqual([addr('10.122.0.1/8')]);
    expect(await d.apply(ch('delete', addr('10.122.0.1/8')), ctx)).toBe('changed');
    expect(await d.apply(ch('create', addr('10.122.0.1/32')), ctx)).toBe('changed');
    expect(await d.apply(ch('create', addr('fd00::2/128', 6)), ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual([
      'ifconfig utun5 inet 10.122.0.1 -alias',
      'ifconfig utun5 inet 10.122.0.1 10.122.0.1 netmask 0xffffffff alias',
      'ifconfig utun5 inet6 fd00::2 prefixlen 128 alias',
    ]);
  });
});

describe('darwin service driver (launchd)', () => {
  const LABEL = 'com.awg.daemon';
  const PATH = '/Library/LaunchDaemons/com.awg.daemon.plist';
  const PLIST = renderDaemonPlist({
    programArguments: ['/usr/local/bin/node', '/usr/local/lib/awg/bin/awg.js', 'daemon'],
  });
  const SPEC: ServiceSpec = { name: LABEL, unitText: PLIST };
  const desired: DesiredState = {
    resources: [{ kind: 'service', id: ids.service(LABEL), spec: SPEC, deps: [] }],
    warnings: [],
  };
  const create = {
    kind: 'service' as const,
    id: ids.service(LABEL),
    action: 'create' as const,
    after: SPEC,
    reason: 'r',
    cause: 'initial' as const,
  };
  const del = {
    kind: 'service' as const,
    id: ids.service(LABEL),
    action: 'delete' as const,
    before: SPEC,
    reason: 'r',
    cause: 'config' as const,
  };
  const NOT_FOUND = {
    code: 113,
    stderr: fixture('launchd/launchctl-print-not-found-stderr-macos27.txt'),
  };
  const RUNNING = { stdout: fixture('launchd/launchctl-print-gui-running-keepalive-macos27.txt') };

  function svc() {
    const exec = new ScriptedExec()
      .on(`cat ${PATH}`, { code: 1, stderr: `cat: ${PATH}: No such file or directory\n` })
      .on(`launchctl print system/${LABEL}`, NOT_FOUND);
    const state = new MemoryStateStore();
    const ctx: ApplyContext = {
      exec,
      reporter: new MemoryReporter(),
      state,
      dryRun: false,
      claims,
    };
    return { exec, state, ctx, d: createDarwinServiceDriver({ exec }) };
  }

  it('writes the plist and bootstraps it; loaded + same text is unchanged', async () => {
    const { exec, state, ctx, d } = svc();
    expect((await d.observe({ desired, claims, state })).resources).toEqual([]);
    expect(await d.apply(create, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual([`tee ${PATH}`, `launchctl bootstrap system ${PATH}`]);
    expect(exec.calls.find((c) => c.line === `tee ${PATH}`)!.input).toBe(PLIST);
    exec.on(`cat ${PATH}`, { stdout: PLIST }).on(`launchctl print system/${LABEL}`, RUNNING);
    expect(await d.apply(create, ctx)).toBe('unchanged');
    expect(exec.mutations).toBe(2);
    const obs = await d.observe({ desired, claims, state });
    expect(obs.resources.map((r) => r.spec)).toEqual([SPEC]);
    expect(obs.facts).toEqual({
      'launchd:com.awg.daemon': { state: 'running', pid: 1076, lastExitCode: 'never' },
    });
  });

  it('plist present but not loaded shows as drift; bootstrap EIO is explained', async () => {
    const { exec, state, ctx, d } = svc();
    exec.on(`cat ${PATH}`, { stdout: PLIST });
    expect((await d.observe({ desired, claims, state })).resources[0]!.spec.unitText).toBe(
      PLIST + NOTE_NOT_LOADED,
    );
    exec.on(`launchctl bootstrap system ${PATH}`, {
      code: 5,
      stderr: fixture('launchd/launchctl-bootstrap-system-eio-15.1-mip.txt'),
    });
    await expect(d.apply(create, ctx)).rejects.toMatchObject({
      kind: 'driver',
      message: expect.stringContaining(
        'Input/output error (launchd says this when the job is already loaded',
      ),
    });
    expect(exec.mutationLines).toEqual([`launchctl bootstrap system ${PATH}`]);
  });

  it('delete boots out by service target (ESRCH tolerated) and removes the plist', async () => {
    const { exec, ctx, d } = svc();
    exec.on(`cat ${PATH}`, { stdout: PLIST }).on(`launchctl print system/${LABEL}`, RUNNING);
    exec.on(`launchctl bootout system/${LABEL}`, {
      code: 3,
      stderr: [
        ...sections('launchd/launchctl-bootout-esrch-and-eio-nix-installer.txt').values(),
      ][0]!.text,
    });
    expect(await d.apply(del, ctx)).toBe('changed');
    expect(exec.mutationLines).toEqual([`launchctl bootout system/${LABEL}`, `rm -f ${PATH}`]);
    exec.on(`cat ${PATH}`, { code: 1 }).on(`launchctl print system/${LABEL}`, NOT_FOUND);
    expect(await d.apply(del, ctx)).toBe('unchanged');
  });

  it('refuses labels outside com.awg.', async () => {
    const { ctx, d } = svc();
    await expect(
      d.apply({ ...create, after: { name: 'org.other.daemon', unitText: '' } }, ctx),
    ).rejects.toMatchObject({ kind: 'bug' });
  });
});

describe('kinds macOS does not have', () => {
  it('observe nothing; apply throws unsupported with the reason', async () => {
    const state = new MemoryStateStore();
    const ctx: ApplyContext = {
      exec: new ScriptedExec(),
      reporter: new MemoryReporter(),
      state,
      dryRun: false,
      claims,
    };
    const cg = createDarwinCgroupDriver();
    expect(await cg.observe({ desired: NONE, claims, state })).toEqual({
      resources: [],
      foreign: [],
    });
    await expect(
      cg.apply(
        {
          kind: 'cgroup',
          id: 'cgroup/awg/work',
          action: 'create',
          after: { path: 'awg/work' },
          reason: 'r',
          cause: 'initial',
        },
        ctx,
      ),
    ).rejects.toMatchObject({
      kind: 'unsupported',
      message: expect.stringContaining('the flow router the daemon hosts'),
    });
    await expect(
      createDarwinRuleDriver().apply(
        {
          kind: 'rule',
          id: 'rule/v4/pref-5200',
          action: 'create',
          after: { family: 4, priority: 5200, action: 'lookup', table: 52000, protocol: 52 },
          reason: 'r',
          cause: 'initial',
        },
        ctx,
      ),
    ).rejects.toMatchObject({ kind: 'unsupported' });
    await expect(
      createDarwinSysctlDriver().apply(
        {
          kind: 'sysctl',
          id: 'sysctl/x',
          action: 'create',
          after: { key: 'x', value: '1' },
          reason: 'r',
          cause: 'initial',
        },
        ctx,
      ),
    ).rejects.toMatchObject({ kind: 'unsupported' });
    expect(
      await cg.apply(
        { kind: 'cgroup', id: 'cgroup/awg/work', action: 'noop', reason: 'r', cause: 'config' },
        ctx,
      ),
    ).toBe('unchanged');
  });

  it('the darwin driver set covers every kind except the engine', () => {
    const set = createDarwinDrivers({ exec: new ScriptedExec() });
    expect(Object.keys(set).sort()).toEqual(RESOURCE_KINDS.filter((k) => k !== 'engine').sort());
    for (const [k, d] of Object.entries(set)) expect(d.kind).toBe(k);
  });
});
