import { describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/change.js';
import type { AddressSpec, LinkSpec } from '../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../src/resources/driver.js';
import { MemoryStateStore } from '../../src/util/state.js';
import { NsExec } from '../helpers/exec.js';
import { nsExec, requireNetnsPrereqs, snapshotNetns, useNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs();
const linkMod = skip ? undefined : await import('../../src/resources/link/linux.js');
const addrMod = skip ? undefined : await import('../../src/resources/address/linux.js');

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
function change<K extends 'link' | 'address'>(
  kind: K,
  action: Change<K>['action'],
  id: string,
  after?: Change<K>['after'],
  before?: Change<K>['before'],
): Change<K> {
  return { kind, id, action, after, before, reason: 'test', cause: 'config' } as Change<K>;
}

async function addrs(ns: string, dev: string): Promise<string[]> {
  const r = await nsExec(ns, 'ip', ['-j', 'addr', 'show', 'dev', dev], { allowFail: true });
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout)[0].addr_info as { local: string; prefixlen: number }[]).map(
    (a) => `${a.local}/${a.prefixlen}`,
  );
}

describe.skipIf(skip)('Linux address driver in a namespace', () => {
  const ns = useNetns('addr');
  const link: LinkSpec = { name: 'awg-a1', kind: 'tun', mtu: 1420, up: true };
  const v4: AddressSpec = { link: 'awg-a1', cidr: '10.200.30.2/32', family: 4 };
  const v6: AddressSpec = { link: 'awg-a1', cidr: 'fd00:200::30:2/128', family: 6 };

  it('adds v4 and v6 addresses to our link; second apply is unchanged with zero mutations; delete leaves nothing', async () => {
    const before = await snapshotNetns(ns.name);
    const e1 = new NsExec(ns.name);
    const links = linkMod!.createLinuxLinkDriver({ exec: e1, netns: ns.name });
    const d = addrMod!.createLinuxAddressDriver({ exec: e1 });
    await links.apply(change('link', 'create', 'link/awg-a1', link), ctx(e1));
    expect(await d.apply(change('address', 'create', 'a4', v4), ctx(e1))).toBe('changed');
    expect(await d.apply(change('address', 'create', 'a6', v6), ctx(e1))).toBe('changed');
    expect((await addrs(ns.name, 'awg-a1')).sort()).toEqual([
      '10.200.30.2/32',
      'fd00:200::30:2/128',
    ]);
    const shown = JSON.parse(
      (await nsExec(ns.name, 'ip', ['-j', '-6', 'addr', 'show', 'dev', 'awg-a1'])).stdout,
    )[0].addr_info[0];
    expect(shown.tentative).toBeUndefined();

    const e2 = new NsExec(ns.name);
    expect(await d.apply(change('address', 'create', 'a4', v4), ctx(e2))).toBe('unchanged');
    expect(await d.apply(change('address', 'create', 'a6', v6), ctx(e2))).toBe('unchanged');
    expect(e2.mutations).toBe(0);
    const o = await d.observe(scope);
    expect(o.resources.map((r) => r.spec)).toEqual([v4, v6]);

    // drift: someone adds an address to our link; ownership follows the link
    await nsExec(ns.name, 'ip', ['addr', 'add', '10.200.30.9/32', 'dev', 'awg-a1']);
    expect((await d.observe(scope)).resources.map((r) => r.spec.cidr)).toContain('10.200.30.9/32');

    const e3 = new NsExec(ns.name);
    for (const a of (await d.observe(scope)).resources)
      expect(await d.apply(change('address', 'delete', a.id, undefined, a.spec), ctx(e3))).toBe(
        'changed',
      );
    expect(await addrs(ns.name, 'awg-a1')).toEqual([]);
    expect(await d.apply(change('address', 'delete', 'a4', undefined, v4), ctx(e3))).toBe(
      'unchanged',
    );
    expect(e3.mutations).toBe(3);
    await links.apply(change('link', 'delete', 'link/awg-a1', undefined, link), ctx(e3));
    expect(await snapshotNetns(ns.name)).toEqual(before);
  });

  it('never adds to or removes from a foreign awg- link', async () => {
    await nsExec(ns.name, 'ip', ['tuntap', 'add', 'dev', 'awg-fx', 'mode', 'tun']);
    await nsExec(ns.name, 'ip', ['addr', 'add', '10.200.31.2/32', 'dev', 'awg-fx']);
    const orig = (await nsExec(ns.name, 'ip', ['-j', '-d', 'addr', 'show', 'dev', 'awg-fx']))
      .stdout;
    const exec = new NsExec(ns.name);
    const d = addrMod!.createLinuxAddressDriver({ exec });
    expect((await d.observe(scope)).resources).toEqual([]);
    await expect(
      d.apply(
        change('address', 'create', 'x', { link: 'awg-fx', cidr: '10.200.31.3/32', family: 4 }),
        ctx(exec),
      ),
    ).rejects.toMatchObject({ kind: 'conflict' });
    expect(
      await d.apply(
        change('address', 'delete', 'x', undefined, {
          link: 'awg-fx',
          cidr: '10.200.31.2/32',
          family: 4,
        }),
        ctx(exec),
      ),
    ).toBe('unchanged');
    expect(exec.mutations).toBe(0);
    expect(
      (await nsExec(ns.name, 'ip', ['-j', '-d', 'addr', 'show', 'dev', 'awg-fx'])).stdout,
    ).toBe(orig);
    await nsExec(ns.name, 'ip', ['link', 'del', 'dev', 'awg-fx']);
  });
});
