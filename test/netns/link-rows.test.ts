/**
 * The links and addresses read in-process over rtnetlink (resources/link/rows.ts,
 * native/rtnl-links.ts) against the `ip -j -d link show` / `ip -j -d addr show` processes they
 * replace, on the real kernel: in a namespace per topology — veth pairs (one end down, a peer
 * down: NO-CARRIER, M-DOWN), a bridge with a port, persistent TUN and TAP devices (owner,
 * group, pi, multi_queue), links of awg's prefix with and without the marker alias, alternative
 * names, IPv4 (labels, secondary, a peer address) and IPv6 (nodad, scopes) addresses, and a
 * dummy and a wireguard link where the kernel has them — every row holds the same values for
 * each key awg reads or the reader prints (ifindex, ifname, link, flags, mtu, operstate,
 * ifalias, linkinfo's kind and a TUN's info_data; each address's family, local, address,
 * prefixlen, scope, label and flags), in the same order, and the link, address and shaper
 * drivers' parses of both are equal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyAddresses } from '../../src/resources/address/parse.js';
import { classifyLinks, type IpLinkJson } from '../../src/resources/link/parse.js';
import { netlinkLinkRows, rowsOfJson } from '../../src/resources/link/rows.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['sysctl']);

const LINK_KEYS = ['ifindex', 'ifname', 'link', 'flags', 'mtu', 'operstate', 'ifalias'] as const;
const ADDR_KEYS = [
  'family',
  'local',
  'address',
  'prefixlen',
  'scope',
  'label',
  'dynamic',
  'secondary',
  'temporary',
  'nodad',
  'noprefixroute',
  'mngtmpaddr',
  'tentative',
  'deprecated',
  'home',
  'optimistic',
  'dadfailed',
  'autojoin',
  'stable-privacy',
] as const;

type Row = IpLinkJson & Record<string, unknown>;

function pick(o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** what is compared of a row: the keys above, linkinfo's kind, a TUN's info_data */
function view(r: Row): Record<string, unknown> {
  const li = r.linkinfo;
  return {
    ...pick(r, LINK_KEYS),
    kind: li?.info_kind,
    data: li?.info_kind === 'tun' ? li.info_data : undefined,
    addrs: r.addr_info?.map((a) => pick(a as Record<string, unknown>, ADDR_KEYS)),
  };
}

async function ipRows(ns: string, what: 'link' | 'addr'): Promise<Row[]> {
  const r = await nsExec(ns, 'ip', ['-j', '-d', what, 'show']);
  return rowsOfJson(r.stdout, `ip ${what}`) as Row[];
}

async function ip(ns: string, lines: readonly string[]) {
  await nsExec(ns, 'ip', ['-batch', '-'], { input: `${lines.join('\n')}\n` });
}

/** whether the kernel makes a link of `kind` (dummy and wireguard are modules some kernels lack) */
async function canMake(ns: string, kind: string, name: string): Promise<boolean> {
  const r = await nsExec(ns, 'ip', ['link', 'add', name, 'type', kind], { allowFail: true });
  return r.code === 0;
}

async function sameRows(ns: string): Promise<{ links: Row[]; addrs: Row[] }> {
  const [ipLinks, ipAddrs] = await Promise.all([ipRows(ns, 'link'), ipRows(ns, 'addr')]);
  const links = (await netlinkLinkRows(false, ns)) as Row[];
  const addrs = (await netlinkLinkRows(true, ns)) as Row[];
  expect(links.map(view)).toEqual(ipLinks.map(view));
  expect(addrs.map(view)).toEqual(ipAddrs.map(view));
  for (const prefix of ['awg-', 'awgq-', 'd'])
    for (const v of [{}, { pending: new Set(['awg-un']), mine: '0123456789ab' }]) {
      expect(classifyLinks(links, prefix, v)).toEqual(classifyLinks(ipLinks, prefix, v));
      expect(classifyAddresses(addrs, prefix, v)).toEqual(classifyAddresses(ipAddrs, prefix, v));
    }
  return { links, addrs };
}

describe.skipIf(skip)('links and addresses over netlink = `ip -j -d link|addr show`', () => {
  beforeAll(async () => {
    await sweepStaleNetns();
  });
  const made: string[] = [];
  afterAll(async () => {
    for (const ns of made) await destroyNetns(ns);
  });
  const inNs = async (f: (ns: string) => Promise<void>) => {
    const ns = await createNetns('linkrows');
    made.push(ns);
    try {
      await nsExec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.default.addr_gen_mode=1']);
      await f(ns);
    } finally {
      made.splice(made.indexOf(ns), 1);
      await destroyNetns(ns);
    }
  };

  it('a fresh namespace: lo only, up and then down', async () => {
    await inNs(async (ns) => {
      const { links } = await sameRows(ns);
      expect(links.map((l) => l.ifname)).toEqual(['lo']);
      await ip(ns, ['link set lo down']);
      const down = await sameRows(ns);
      expect(down.links[0]!.flags).toEqual(['LOOPBACK']);
    });
  });

  it('veth pairs up and down, a bridge with a port, alt names, aliases, IPv4 and IPv6 addresses', async () => {
    await inNs(async (ns) => {
      await ip(ns, [
        'link set lo up',
        'link add d0 type veth peer name d0p',
        'link set d0p up',
        'link set d0 up mtu 1400',
        'link add d1 type veth peer name d1p',
        'link set d1 up',
        'link add d2 type veth peer name d2p',
        'link add br0 type bridge',
        'link set d2p master br0',
        'link set br0 up',
        'link set d2p up',
        'link property add dev d0 altname d0-alt altname d0-second',
        'link set d1 alias "a link, with words"',
        'addr add 10.200.50.2/24 dev d0 label d0:lan',
        'addr add 10.200.50.3/24 dev d0',
        'addr add 10.200.60.1 peer 10.200.60.2/32 dev d1',
        'addr add 192.168.77.1/16 dev br0 noprefixroute',
        'addr add fd00:200::2/120 dev d0 nodad',
        'addr add 2001:db8::1/64 dev br0 nodad',
        'addr add fe80::99/64 dev d1 nodad',
        'addr add fd00:300::5/64 dev d2 nodad valid_lft 300 preferred_lft 100',
      ]);
      const { links, addrs } = await sameRows(ns);
      const byName = new Map(links.map((l) => [l.ifname, l]));
      expect(byName.get('d1')!.flags).toContain('NO-CARRIER');
      expect(byName.get('d1')!.flags).toContain('M-DOWN');
      expect(byName.get('d1')!.ifalias).toBe('a link, with words');
      const d0 = addrs.find((l) => l.ifname === 'd0')!;
      expect(d0.addr_info!.map((a) => a.local)).toEqual([
        '10.200.50.2',
        '10.200.50.3',
        'fd00:200::2',
      ]);
    });
  });

  it('persistent TUN and TAP devices of awg and of others, marked and not, down and up', async () => {
    await inNs(async (ns) => {
      await ip(ns, [
        'tuntap add dev awg-t0 mode tun user 0',
        'tuntap add dev awg-t1 mode tun user 65534 group 65534 multi_queue',
        'tuntap add dev awg-tap mode tap pi',
        'tuntap add dev awg-un mode tun',
        'tuntap add dev other0 mode tun user 12345 vnet_hdr',
        'link set awg-t0 alias "awg:managed owner=0123456789ab" mtu 1420 up',
        'link set awg-t1 alias "awg:managed owner=ba9876543210"',
        'link set awg-tap alias awg:managed',
        'addr add 10.200.245.2/32 dev awg-t0',
        'addr add fd00:245::2/128 dev awg-t0 nodad',
        'addr add 10.200.246.2/32 dev awg-t1',
      ]);
      const { links } = await sameRows(ns);
      const t0 = links.find((l) => l.ifname === 'awg-t0')!;
      expect(t0.linkinfo).toMatchObject({
        info_kind: 'tun',
        info_data: { type: 'tun', pi: false, persist: true },
      });
      const owned = classifyLinks(links, 'awg-', { mine: '0123456789ab' });
      expect(owned.owned.map((l) => l.spec.name)).toEqual(['awg-t0']);
    });
  });

  it('dummy and wireguard links where the kernel makes them, an ifb of awg', async () => {
    await inNs(async (ns) => {
      const made: string[] = [];
      for (const [kind, name] of [
        ['dummy', 'x0'],
        ['wireguard', 'awg-wg0'],
        ['ifb', 'awgq-x'],
      ] as const)
        if (await canMake(ns, kind, name)) made.push(name);
      if (made.includes('x0')) await ip(ns, ['link set x0 up', 'addr add 10.9.9.9/8 dev x0']);
      if (made.includes('awg-wg0')) await ip(ns, ['link set awg-wg0 alias awg:managed']);
      if (made.includes('awgq-x')) await ip(ns, ['link set awgq-x alias awg:managed up']);
      await sameRows(ns);
    });
  });
});
