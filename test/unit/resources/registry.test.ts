import { describe, expect, it } from 'vitest';
import { createDrivers } from '../../../src/resources/registry.js';
import { createDarwinDrivers } from '../../../src/platform/darwin/drivers.js';
import { RESOURCE_KINDS } from '../../../src/model/resources.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { ScriptedExec } from '../darwin/fake-exec.js';
import { claims } from '../darwin/helpers.js';

describe('driver registry', () => {
  it('linux: every kind, built from the linux drivers', () => {
    const set = createDrivers({ exec: new ScriptedExec(), platform: 'linux' });
    expect(Object.keys(set).sort()).toEqual(RESOURCE_KINDS.filter((k) => k !== 'service').sort());
    for (const [k, d] of Object.entries(set)) expect(d.kind).toBe(k);
  });

  it('darwin: the same kinds as the macOS set, loaded on first use and forwarded', async () => {
    const set = createDrivers({ exec: new ScriptedExec(), platform: 'darwin' });
    const direct = createDarwinDrivers({ exec: new ScriptedExec() });
    expect(Object.keys(set).sort()).toEqual(Object.keys(direct).sort());
    for (const [k, d] of Object.entries(set)) expect(d.kind).toBe(k);
    const scope = { desired: { resources: [], warnings: [] }, claims, state: new MemoryStateStore() };
    expect(await set.cgroup!.observe(scope)).toEqual(await direct.cgroup.observe(scope));
    const ctx = { exec: new ScriptedExec(), reporter: undefined as never, state: new MemoryStateStore(), dryRun: false, claims };
    await expect(
      set.sysctl!.apply({ kind: 'sysctl', id: 'sysctl/x', action: 'create', after: { key: 'x', value: '1' }, reason: 'r', cause: 'initial' }, ctx),
    ).rejects.toMatchObject({ kind: 'unsupported' });
  });

  it('other platforms: no drivers', () => {
    expect(createDrivers({ exec: new ScriptedExec(), platform: 'win32' })).toEqual({});
  });
});
