import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { LinkSpec } from '../../../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../../../src/resources/driver.js';
import { FakeLinkDriver } from '../../../../src/resources/link/driver.fake.js';
import { createLinuxLinkDriver } from '../../../../src/resources/link/linux.js';
import {
  LINK_MARKER,
  linkAlias,
  parseLinkAlias,
  parseLinkJson,
} from '../../../../src/resources/link/parse.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { RecordingExec } from '../../../helpers/exec.js';

const fixture = readFileSync(
  new URL('../../../fixtures/linux/link/ip-j-d-link.json', import.meta.url),
  'utf8',
);
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
const READ = 'ip -j -d link show';

function ctx(exec: RecordingExec): ApplyContext {
  return {
    exec,
    reporter: new MemoryReporter(),
    state: new MemoryStateStore(),
    dryRun: exec.dryRun,
    claims,
  };
}
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

describe('link parser (captured ip -j -d link)', () => {
  const p = parseLinkJson(fixture, 'awg-');

  it('owns only marked TUNs with our prefix', () => {
    expect(p.owned.map((l) => l.spec)).toEqual([
      { name: 'awg-work', kind: 'tun', mtu: 1380, up: true },
      { name: 'awg-home', kind: 'tun', mtu: 1500, up: false },
    ]);
    expect(p.owned[0]!.details).toMatchObject({ pi: false, persist: true, owner: 'root' });
  });

  it('reports unmarked or non-TUN awg- links as conflicts and ignores the rest', () => {
    expect(p.conflicts.map((c) => c.name)).toEqual(['awg-x', 'awg-veth']);
    expect(p.conflicts[0]!.reason).toMatch(/no awg:managed alias/);
    expect(p.conflicts[1]!.reason).toMatch(/veth/);
  });

  it('a link being made (the state says so) without any alias is ours, unmarked; a foreign alias is not', () => {
    const q = parseLinkJson(fixture, 'awg-', { pending: new Set(['awg-x', 'awg-veth']) });
    expect(q.owned.find((l) => l.spec.name === 'awg-x')?.details.unmarked).toBe(true);
    // a veth is never a link we make
    expect(q.conflicts.map((c) => c.name)).toEqual(['awg-veth']);
  });

  it('owner tags: the alias carries the state directory that made the link; another owner is a conflict', () => {
    const tagged = JSON.stringify([
      {
        ifindex: 7,
        ifname: 'awg-a',
        flags: ['UP'],
        mtu: 1420,
        ifalias: linkAlias('0123456789ab'),
        linkinfo: { info_kind: 'tun', info_data: { type: 'tun' } },
      },
    ]);
    const p2 = parseLinkJson(tagged, 'awg-');
    expect(p2.owned[0]!.details.ownerTag).toBe('0123456789ab');
    expect(parseLinkJson(tagged, 'awg-', { mine: '0123456789ab' }).owned).toHaveLength(1);
    const other = parseLinkJson(tagged, 'awg-', { mine: 'ba9876543210' });
    expect(other.owned).toEqual([]);
    expect(other.conflicts[0]).toMatchObject({ name: 'awg-a', owner: '0123456789ab' });
    expect(parseLinkAlias('awg:managed owner=xyz')).toBeUndefined();
  });

  it('honours another prefix and empty output', () => {
    expect(parseLinkJson(fixture, 'tun').conflicts.map((c) => c.name)).toEqual(['tun9']);
    expect(parseLinkJson('', 'awg-')).toEqual({ owned: [], conflicts: [] });
  });
});

// `ip -j -d link show` of a wireguard link as iproute2 prints one (the module is missing on
// the machine the other captures come from): linkinfo carries only the kind
const WG_LINKS = JSON.stringify([
  {
    ifindex: 12,
    ifname: 'awg-kern',
    flags: ['POINTOPOINT', 'NOARP', 'UP', 'LOWER_UP'],
    mtu: 1380,
    qdisc: 'noqueue',
    operstate: 'UNKNOWN',
    link_type: 'none',
    ifalias: LINK_MARKER,
    linkinfo: { info_kind: 'wireguard' },
  },
  {
    ifindex: 13,
    ifname: 'awg-wg0',
    flags: ['POINTOPOINT', 'NOARP'],
    mtu: 1420,
    operstate: 'DOWN',
    link_type: 'none',
    linkinfo: { info_kind: 'wireguard' },
  },
]);

describe('link parser: wireguard links (engine: kernel)', () => {
  it('owns a marked wireguard link as kind wireguard; an unmarked one is a conflict', () => {
    const p = parseLinkJson(WG_LINKS, 'awg-');
    expect(p.owned.map((l) => l.spec)).toEqual([
      { name: 'awg-kern', kind: 'wireguard', mtu: 1380, up: true },
    ]);
    expect(p.conflicts.map((c) => [c.name, c.reason])).toEqual([
      ['awg-wg0', `it has no ${LINK_MARKER} alias`],
    ]);
  });
});

describe('Linux link driver without root (canned reads)', () => {
  it('observes owned links and conflicts', async () => {
    const d = createLinuxLinkDriver({ exec: new RecordingExec({ [READ]: fixture }) });
    const o = await d.observe(scope);
    expect(o.resources.map((r) => r.id)).toEqual(['link/awg-work', 'link/awg-home']);
    expect(o.foreign).toEqual([
      expect.objectContaining({ id: 'link/awg-x', relation: 'conflict' }),
      expect.objectContaining({ id: 'link/awg-veth', relation: 'conflict' }),
    ]);
  });

  it('apply of what is in place is unchanged with zero mutations', async () => {
    const exec = new RecordingExec({ [READ]: fixture });
    const d = createLinuxLinkDriver({ exec });
    expect(
      await d.apply(
        change('create', { name: 'awg-work', kind: 'tun', mtu: 1380, up: true }),
        ctx(exec),
      ),
    ).toBe('unchanged');
    expect(exec.mutations).toBe(0);
  });

  it('updates mtu and admin state with one ip link set', async () => {
    const exec = new RecordingExec({ [READ]: fixture });
    const d = createLinuxLinkDriver({ exec });
    expect(
      await d.apply(
        change('update', { name: 'awg-home', kind: 'tun', mtu: 1420, up: true }),
        ctx(exec),
      ),
    ).toBe('changed');
    expect(exec.log).toEqual(['ip link set dev awg-home mtu 1420 up']);
  });

  it('refuses to touch a foreign awg- link, and never deletes it', async () => {
    const exec = new RecordingExec({ [READ]: fixture });
    const d = createLinuxLinkDriver({ exec });
    await expect(
      d.apply(change('create', { name: 'awg-x', kind: 'tun', mtu: 1420, up: true }), ctx(exec)),
    ).rejects.toMatchObject({ kind: 'conflict' });
    expect(
      await d.apply(
        change('delete', undefined, { name: 'awg-x', kind: 'tun', mtu: 1500, up: false }),
        ctx(exec),
      ),
    ).toBe('unchanged');
    expect(exec.mutations).toBe(0);
  });

  it('deletes a marked link with ip link del', async () => {
    const exec = new RecordingExec({ [READ]: fixture });
    const d = createLinuxLinkDriver({ exec });
    expect(
      await d.apply(
        change('delete', undefined, { name: 'awg-home', kind: 'tun', mtu: 1500, up: false }),
        ctx(exec),
      ),
    ).toBe('changed');
    expect(exec.log).toEqual(['ip link del dev awg-home']);
    expect(
      await d.apply(
        change('delete', undefined, { name: 'awg-gone', kind: 'tun', mtu: 1500, up: false }),
        ctx(exec),
      ),
    ).toBe('unchanged');
  });

  it('create under dry-run records the ioctl and netlink steps and does nothing', async () => {
    const exec = new RecordingExec({ [READ]: fixture }, true);
    const d = createLinuxLinkDriver({ exec });
    expect(
      await d.apply(
        change('create', { name: 'awg-new', kind: 'tun', mtu: 1420, up: true }),
        ctx(exec),
      ),
    ).toBe('changed');
    expect(exec.log).toEqual([
      '[ioctl] create persistent tun awg-new (no_pi, owner 0)',
      `[netlink] ip link set dev awg-new alias ${LINK_MARKER} mtu 1420 up`,
    ]);
  });

  it('a wireguard link: created by RTM_NEWLINK of that kind, then marked like a TUN', async () => {
    const exec = new RecordingExec({ [READ]: fixture }, true);
    const d = createLinuxLinkDriver({ exec });
    await d.apply(
      change('create', { name: 'awg-new', kind: 'wireguard', mtu: 1420, up: true }),
      ctx(exec),
    );
    expect(exec.log).toEqual([
      '[netlink] ip link add awg-new type wireguard',
      `[netlink] ip link set dev awg-new alias ${LINK_MARKER} mtu 1420 up`,
    ]);
  });

  it('another kind of link under the same name is removed first (TUN → wireguard)', async () => {
    const exec = new RecordingExec({ [READ]: fixture }, true);
    const d = createLinuxLinkDriver({ exec });
    const before: LinkSpec = { name: 'awg-work', kind: 'tun', mtu: 1380, up: true };
    await d.apply(change('replace', { ...before, kind: 'wireguard' }, before), ctx(exec));
    expect(exec.log).toEqual([
      'ip link del dev awg-work',
      '[netlink] ip link add awg-work type wireguard',
      `[netlink] ip link set dev awg-work alias ${LINK_MARKER} mtu 1380 up`,
    ]);
  });

  it('rejects names the kernel would refuse', async () => {
    const exec = new RecordingExec({ [READ]: fixture }, true);
    const d = createLinuxLinkDriver({ exec });
    await expect(
      d.apply(
        change('create', { name: 'awg-much-too-long', kind: 'tun', mtu: 1420, up: true }),
        ctx(exec),
      ),
    ).rejects.toMatchObject({ kind: 'invalid-config' });
    expect(exec.mutations).toBe(0);
  });
});

describe('FakeLinkDriver', () => {
  it('is idempotent, fails on the n-th apply and refuses foreign links', async () => {
    const exec = new RecordingExec();
    const d = new FakeLinkDriver().addForeign('awg-x').failOn(3);
    const spec: LinkSpec = { name: 'awg-a', kind: 'tun', mtu: 1420, up: true };
    expect(await d.apply(change('create', spec), ctx(exec))).toBe('changed');
    expect(await d.apply(change('create', spec), ctx(exec))).toBe('unchanged');
    await expect(
      d.apply(change('update', { ...spec, mtu: 1300 }), ctx(exec)),
    ).rejects.toMatchObject({ kind: 'driver' });
    expect(await d.apply(change('update', { ...spec, mtu: 1300 }), ctx(exec))).toBe('changed');
    await expect(
      d.apply(change('create', { ...spec, name: 'awg-x' }), ctx(exec)),
    ).rejects.toMatchObject({ kind: 'conflict' });
    const o = await d.observe(scope);
    expect(o.resources.map((r) => r.spec)).toEqual([{ ...spec, mtu: 1300 }]);
    expect(o.foreign.map((f) => f.id)).toEqual(['link/awg-x']);
    expect(exec.mutations).toBe(2);
  });
});
