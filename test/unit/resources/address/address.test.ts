import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { AddressSpec, LinkSpec } from '../../../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../../../src/resources/driver.js';
import { FakeAddressDriver } from '../../../../src/resources/address/driver.fake.js';
import { addrArgs, createLinuxAddressDriver } from '../../../../src/resources/address/linux.js';
import { classifyAddresses, parseAddrJson } from '../../../../src/resources/address/parse.js';
import { FakeLinkDriver } from '../../../../src/resources/link/driver.fake.js';
import type { IpLinkJson } from '../../../../src/resources/link/parse.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';
import { RecordingExec } from '../../../helpers/exec.js';

const fixture = readFileSync(
  new URL('../../../fixtures/linux/address/ip-j-d-addr.json', import.meta.url),
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
const READ = 'ip -j -d addr show';
const ctx = (exec: RecordingExec): ApplyContext => ({
  exec,
  reporter: new MemoryReporter(),
  state: new MemoryStateStore(),
  dryRun: exec.dryRun,
  claims,
});
const change = (
  action: Change<'address'>['action'],
  after?: AddressSpec,
  before?: AddressSpec,
): Change<'address'> => ({
  kind: 'address',
  id: `address/${(after ?? before)!.link}/${(after ?? before)!.cidr}`,
  action,
  ...(after !== undefined ? { after } : {}),
  ...(before !== undefined ? { before } : {}),
  reason: 'test',
  cause: 'config',
});

describe('address parser (captured ip -j -d addr)', () => {
  it('owns addresses on our links only', () => {
    const p = parseAddrJson(fixture, 'awg-');
    expect(p.owned).toEqual([
      { link: 'awg-work', cidr: '10.200.1.2/32', family: 4 },
      { link: 'awg-work', cidr: 'fd00:200::2/128', family: 6 },
      { link: 'awg-home', cidr: '10.200.2.2/24', family: 4 },
    ]);
    expect([...p.ownedLinks]).toEqual(['awg-work', 'awg-home']);
    expect([...p.foreignLinks.keys()]).toEqual(['awg-x', 'awg-veth']);
  });

  it('skips IPv6 link-local and canonicalises IPv6 text', () => {
    const links = JSON.parse(fixture) as IpLinkJson[];
    const work = links.find((l) => l.ifname === 'awg-work')!;
    work.addr_info = [
      { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      { family: 'inet6', local: 'FD00:0200:0:0::0005', prefixlen: 128, scope: 'global' },
    ];
    expect(classifyAddresses(links, 'awg-').owned.filter((a) => a.link === 'awg-work')).toEqual([
      { link: 'awg-work', cidr: 'fd00:200::5/128', family: 6 },
    ]);
  });

  it('renders ip commands with nodad for IPv6', () => {
    expect(addrArgs('add', { link: 'awg-a', cidr: 'fd00::2/128', family: 6 })).toEqual([
      '-6',
      'addr',
      'add',
      'fd00::2/128',
      'dev',
      'awg-a',
      'nodad',
    ]);
    expect(addrArgs('del', { link: 'awg-a', cidr: '10.0.0.2/32', family: 4 })).toEqual([
      '-4',
      'addr',
      'del',
      '10.0.0.2/32',
      'dev',
      'awg-a',
    ]);
  });
});

describe('Linux address driver without root (canned reads)', () => {
  it('observes owned addresses with a link dependency, and conflicts for desired addresses on foreign links', async () => {
    const d = createLinuxAddressDriver({ exec: new RecordingExec({ [READ]: fixture }) });
    const want: AddressSpec = { link: 'awg-x', cidr: '10.200.3.9/32', family: 4 };
    const o = await d.observe({
      desired: {
        resources: [{ kind: 'address', id: 'address/awg-x/10.200.3.9/32', spec: want, deps: [] }],
        warnings: [],
      },
      claims,
      state: new MemoryStateStore(),
    });
    expect(o.resources[0]).toEqual({
      kind: 'address',
      id: 'address/awg-work/10.200.1.2/32',
      spec: { link: 'awg-work', cidr: '10.200.1.2/32', family: 4 },
      deps: ['link/awg-work'],
    });
    expect(o.foreign).toEqual([
      expect.objectContaining({ id: 'address/awg-x/10.200.3.9/32', relation: 'conflict' }),
    ]);
  });

  it('is idempotent and only touches our links', async () => {
    const exec = new RecordingExec({ [READ]: fixture });
    const d = createLinuxAddressDriver({ exec });
    expect(
      await d.apply(
        change('create', { link: 'awg-work', cidr: 'fd00:200::2/128', family: 6 }),
        ctx(exec),
      ),
    ).toBe('unchanged');
    expect(
      await d.apply(
        change('create', { link: 'awg-work', cidr: 'fd00:200::3/128', family: 6 }),
        ctx(exec),
      ),
    ).toBe('changed');
    await expect(
      d.apply(change('create', { link: 'awg-x', cidr: '10.200.3.3/32', family: 4 }), ctx(exec)),
    ).rejects.toMatchObject({ kind: 'conflict' });
    expect(
      await d.apply(
        change('delete', undefined, { link: 'awg-x', cidr: '10.200.3.2/32', family: 4 }),
        ctx(exec),
      ),
    ).toBe('unchanged');
    await expect(
      d.apply(change('create', { link: 'awg-none', cidr: '10.200.9.1/32', family: 4 }), ctx(exec)),
    ).rejects.toMatchObject({ kind: 'driver' });
    expect(
      await d.apply(
        change(
          'replace',
          { link: 'awg-home', cidr: '10.200.2.3/24', family: 4 },
          { link: 'awg-home', cidr: '10.200.2.2/24', family: 4 },
        ),
        ctx(exec),
      ),
    ).toBe('changed');
    expect(exec.log).toEqual([
      'ip -6 addr add fd00:200::3/128 dev awg-work nodad',
      'ip -4 addr del 10.200.2.2/24 dev awg-home',
      'ip -4 addr add 10.200.2.3/24 dev awg-home',
    ]);
  });

  it('under dry-run an address on a link that exists only in the plan is reported, not refused', async () => {
    const exec = new RecordingExec({ [READ]: fixture }, true);
    const d = createLinuxAddressDriver({ exec });
    expect(
      await d.apply(
        change('create', { link: 'awg-new', cidr: '10.200.9.1/32', family: 4 }),
        ctx(exec),
      ),
    ).toBe('changed');
    expect(exec.log).toEqual(['ip -4 addr add 10.200.9.1/32 dev awg-new']);
  });
});

describe('FakeAddressDriver', () => {
  it('follows the fake link: needs it to exist, loses addresses when it goes', async () => {
    const exec = new RecordingExec();
    const links = new FakeLinkDriver();
    const d = new FakeAddressDriver(links);
    const a: AddressSpec = { link: 'awg-a', cidr: '10.200.0.2/32', family: 4 };
    await expect(d.apply(change('create', a), ctx(exec))).rejects.toMatchObject({ kind: 'driver' });
    const l: LinkSpec = { name: 'awg-a', kind: 'tun', mtu: 1420, up: true };
    links.seed(l);
    expect(await d.apply(change('create', a), ctx(exec))).toBe('changed');
    expect(await d.apply(change('create', a), ctx(exec))).toBe('unchanged');
    const scope = {
      desired: { resources: [], warnings: [] },
      claims,
      state: new MemoryStateStore(),
    };
    expect((await d.observe(scope)).resources).toEqual([
      { kind: 'address', id: 'address/awg-a/10.200.0.2/32', spec: a, deps: ['link/awg-a'] },
    ]);
    links.objects.clear();
    expect((await d.observe(scope)).resources).toEqual([]);
    expect(exec.mutations).toBe(1);
  });

  it('fails on the n-th apply', async () => {
    const d = new FakeAddressDriver().failOn(1, 'permission');
    await expect(
      d.apply(
        change('create', { link: 'awg-a', cidr: '10.200.0.2/32', family: 4 }),
        ctx(new RecordingExec()),
      ),
    ).rejects.toMatchObject({ kind: 'permission' });
  });
});
