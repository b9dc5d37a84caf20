import { describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/change.js';
import type { LinkSpec } from '../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../src/resources/driver.js';
import { MemoryStateStore } from '../../src/util/state.js';
import { NsExec } from '../helpers/exec.js';
import { nsExec, requireNetnsPrereqs, snapshotNetns, useNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs();
const { createLinuxLinkDriver } = skip
  ? ({} as typeof import('../../src/resources/link/linux.js'))
  : await import('../../src/resources/link/linux.js');

const claims: Claims = {
  routeProtocol: 167,
  tableBase: 52000,
  bandSize: 100,
  rulePriority: 5200,
  fwmarkMask: 0x0f000000,
  nftTable: 'awg',
  linkPrefix: 'awg-',
  cgroupRoot: 'awg',
};
const scope = { desired: { resources: [], warnings: [] }, claims, state: new MemoryStateStore() };
const ctx = (exec: NsExec): ApplyContext => ({
  exec,
  reporter: exec.reporter,
  state: new MemoryStateStore(),
  dryRun: exec.dryRun,
  claims,
});
const change = (
  action: Change<'link'>['action'],
  after?: LinkSpec,
  before?: LinkSpec,
): Change<'link'> => ({
  kind: 'link',
  id: `link/${(after ?? before)!.name}`,
  action,
  ...(after !== undefined ? { after } : {}),
  ...(before !== undefined ? { before } : {}),
  reason: 'test',
  cause: 'config',
});

async function link(ns: string, dev: string): Promise<string | undefined> {
  const r = await nsExec(ns, 'ip', ['-j', '-d', 'link', 'show', 'dev', dev], { allowFail: true });
  return r.code === 0 ? r.stdout : undefined;
}

describe.skipIf(skip)('Linux link driver in a namespace', () => {
  const ns = useNetns('link');
  const spec: LinkSpec = { name: 'awg-t1', kind: 'tun', mtu: 1420, up: true };

  it('creates a marked persistent TUN; the second apply is unchanged with zero mutations', async () => {
    const before = await snapshotNetns(ns.name);
    const e1 = new NsExec(ns.name);
    const d = createLinuxLinkDriver({ exec: e1, netns: ns.name });
    expect(await d.apply(change('create', spec), ctx(e1))).toBe('changed');
    expect(e1.mutations).toBe(2);
    const j = JSON.parse((await link(ns.name, 'awg-t1'))!)[0];
    expect(j).toMatchObject({ ifname: 'awg-t1', mtu: 1420, ifalias: 'awg:managed' });
    expect(j.flags).toContain('UP');
    expect(j.linkinfo.info_data).toMatchObject({ type: 'tun', pi: false, persist: true });
    expect(String(j.linkinfo.info_data.user)).toMatch(/^(0|root)$/);

    const e2 = new NsExec(ns.name);
    expect(await d.apply(change('create', spec), ctx(e2))).toBe('unchanged');
    expect(e2.mutations).toBe(0);
    const o = await createLinuxLinkDriver({ exec: e2 }).observe(scope);
    expect(o.resources).toEqual([{ kind: 'link', id: 'link/awg-t1', spec, deps: [] }]);
    expect(o.foreign).toEqual([]);

    const e3 = new NsExec(ns.name);
    expect(await d.apply(change('update', { ...spec, mtu: 1380, up: false }), ctx(e3))).toBe(
      'changed',
    );
    expect(e3.log).toEqual(['ip link set dev awg-t1 mtu 1380 down']);
    expect(await d.apply(change('update', { ...spec, mtu: 1380, up: false }), ctx(e3))).toBe(
      'unchanged',
    );
    expect(e3.mutations).toBe(1);

    const e4 = new NsExec(ns.name);
    expect(await d.apply(change('delete', undefined, spec), ctx(e4))).toBe('changed');
    expect(await link(ns.name, 'awg-t1')).toBeUndefined();
    expect(await d.apply(change('delete', undefined, spec), ctx(e4))).toBe('unchanged');
    expect(e4.mutations).toBe(1);
    // delete leaves nothing behind
    expect(await snapshotNetns(ns.name)).toEqual(before);
  });

  it('reports a foreign awg-x as conflict and leaves it byte-identical', async () => {
    await nsExec(ns.name, 'ip', ['tuntap', 'add', 'dev', 'awg-x', 'mode', 'tun']);
    await nsExec(ns.name, 'ip', ['link', 'set', 'dev', 'awg-x', 'mtu', '1300']);
    const orig = await link(ns.name, 'awg-x');
    const exec = new NsExec(ns.name);
    const d = createLinuxLinkDriver({ exec, netns: ns.name });
    const o = await d.observe(scope);
    expect(o.resources).toEqual([]);
    expect(o.foreign).toEqual([
      expect.objectContaining({ kind: 'link', id: 'link/awg-x', relation: 'conflict' }),
    ]);
    await expect(
      d.apply(change('create', { name: 'awg-x', kind: 'tun', mtu: 1420, up: true }), ctx(exec)),
    ).rejects.toMatchObject({ kind: 'conflict' });
    await expect(
      d.apply(change('update', { name: 'awg-x', kind: 'tun', mtu: 1420, up: true }), ctx(exec)),
    ).rejects.toMatchObject({ kind: 'conflict' });
    expect(
      await d.apply(
        change('delete', undefined, { name: 'awg-x', kind: 'tun', mtu: 1300, up: false }),
        ctx(exec),
      ),
    ).toBe('unchanged');
    expect(exec.mutations).toBe(0);
    expect(await link(ns.name, 'awg-x')).toBe(orig);
    await nsExec(ns.name, 'ip', ['link', 'del', 'dev', 'awg-x']);
  });

  it('dry-run reports the mutations and creates nothing', async () => {
    const exec = new NsExec(ns.name, true);
    const d = createLinuxLinkDriver({ exec, netns: ns.name });
    expect(await d.apply(change('create', { ...spec, name: 'awg-dry' }), ctx(exec))).toBe(
      'changed',
    );
    expect(exec.mutations).toBe(2);
    expect(await link(ns.name, 'awg-dry')).toBeUndefined();
  });

  it('a TUN created by the driver can be attached by the data plane with IFF_NO_PI kept', async () => {
    const { TunFile } = await import('../../src/dataplane/tun/file.js');
    const exec = new NsExec(ns.name);
    const d = createLinuxLinkDriver({ exec, netns: ns.name });
    await d.apply(change('create', { ...spec, name: 'awg-dp' }), ctx(exec));
    const f = TunFile.open('awg-dp', { netns: ns.name });
    try {
      expect(f.mtu()).toBe(1420);
    } finally {
      f.close();
    }
    expect(JSON.parse((await link(ns.name, 'awg-dp'))!)[0].linkinfo.info_data.pi).toBe(false);
    await d.apply(
      change('delete', undefined, { ...spec, name: 'awg-dp' }),
      ctx(new NsExec(ns.name)),
    );
    expect(await link(ns.name, 'awg-dp')).toBeUndefined();
  });
});
