import { describe, expect, it } from 'vitest';
import { loadPlatform, observeReads } from '../../../src/resources/registry.js';
import { createDarwinDrivers } from '../../../src/resources/platform/darwin-drivers.js';
import { linuxObserveReads } from '../../../src/resources/reads.js';
import { RESOURCE_KINDS } from '../../../src/model/resources.js';
import { linuxCallerNatives } from '../../../src/native/peercred.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { ScriptedExec } from '../darwin/fake-exec.js';
import { claims } from '../darwin/helpers.js';

describe('platform registry', () => {
  it('linux: every kind, built from the linux drivers', async () => {
    const set = await (await loadPlatform('linux')).drivers({ exec: new ScriptedExec() });
    expect(Object.keys(set).sort()).toEqual(RESOURCE_KINDS.filter((k) => k !== 'service').sort());
    for (const [k, d] of Object.entries(set)) expect(d.kind).toBe(k);
  });

  it('darwin: the macOS set; kinds macOS lacks refuse with `unsupported`', async () => {
    const p = await loadPlatform('darwin');
    const set = await p.drivers({ exec: new ScriptedExec() });
    const direct = createDarwinDrivers({ exec: new ScriptedExec() });
    expect(Object.keys(set).sort()).toEqual(Object.keys(direct).sort());
    for (const [k, d] of Object.entries(set)) expect(d.kind).toBe(k);
    const scope = {
      desired: { resources: [], warnings: [] },
      claims,
      state: new MemoryStateStore(),
    };
    expect(await set.cgroup!.observe(scope)).toEqual(await direct.cgroup.observe(scope));
    const ctx = {
      exec: new ScriptedExec(),
      reporter: undefined as never,
      state: new MemoryStateStore(),
      dryRun: false,
      claims,
    };
    await expect(
      set.sysctl!.apply(
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
  });

  it('other platforms: no drivers, a model realised without a firewall and a warning saying so', async () => {
    const p = await loadPlatform('win32');
    expect(await p.drivers({ exec: new ScriptedExec() })).toEqual({});
    const d = p.realise(
      {
        resources: [],
        warnings: [],
        allocation: undefined as never,
        policy: {
          fwmarkMask: 1,
          bypassMark: 1,
          killSwitch: 'on',
          dnsLeakProtection: false,
          tunnels: [],
          apps: [],
          blockMarks: [],
        },
      },
      {},
    );
    expect(d.resources).toEqual([]);
    expect(d.warnings.join('\n')).toMatch(/no firewall for win32/);
  });

  it('the daemon API’s caller check per platform: SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS (whose calls need a Mac), none elsewhere', async () => {
    expect(await (await loadPlatform('linux')).callerNatives()).toBe(linuxCallerNatives);
    const mac = await (await loadPlatform('darwin')).callerNatives();
    expect(() => mac.peer(0)).toThrow(
      expect.objectContaining({
        kind: 'unsupported',
        message: expect.stringMatching(/libSystem bindings need macOS/),
      }),
    );
    expect(() => mac.acl('/')).toThrow(expect.objectContaining({ kind: 'unsupported' }));
    await expect((await loadPlatform('win32')).callerNatives()).rejects.toMatchObject({
      kind: 'unsupported',
    });
  });

  it('one platform object per OS; prefetchable reads only where observing spawns them', async () => {
    expect(await loadPlatform('linux')).toBe(await loadPlatform('linux'));
    expect(observeReads('awg', 'linux')).toEqual(linuxObserveReads('awg'));
    expect(observeReads('awg', 'darwin')).toEqual([]);
  });
});
