/**
 * Captures the fixtures of test/unit/resources/route/probe-netlink.test.ts: in a network
 * namespace of its own, a topology with policy rules and tables, awg's band, error routes,
 * multipath and both families (the "policy" and "error" topologies of
 * test/netns/routing-probe.test.ts together), the kernel's replies to the routing probe's
 * dumps (links, routes and rules per family; each message as the kernel sent it, hex, one a
 * line) and what `ip -j -N` prints of the same listings. Root, iproute2.
 *
 *   npx tsx scripts/capture-route-fixtures.ts [dir]   (default test/fixtures/linux/route/netlink)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NetlinkSocket } from '../src/native/netlink.js';
import { AF_INET, AF_INET6, buildGetLinkDump, type NlMessage } from '../src/native/rtnl.js';
import { buildGetRouteDump, buildGetRuleDump } from '../src/native/rtnl-routing.js';
import { createNetns, destroyNetns, nsExec } from '../test/helpers/netns.js';

const V4 = [
  'link add d0 type veth peer name d0p',
  'link set d0p up',
  'link set d0 up',
  'addr add 10.200.50.2/24 dev d0',
  'link add awg-t0 type veth peer name awg-t0p',
  'link set awg-t0p up',
  'link set awg-t0 up',
  'addr add 10.200.51.2/24 dev awg-t0',
  'route add unreachable default',
  'route add default via 10.200.50.1 table 200 metric 20',
  'rule add pref 1000 from 10.200.60.0/24 lookup 200',
  'route add default dev awg-t0 table 52099 proto 167',
  'rule add pref 5298 fwmark 0xf000000/0xf000000 lookup 52099 proto 167',
  'route add throw 10.0.0.0/8 table 52001 proto 167',
  'route add 10.8.0.0/16 nexthop via 10.200.50.1 nexthop via 10.200.50.3',
  'route add 10.9.0.0/16 via 10.200.50.1 metric 50 proto static',
  'route add 10.77.0.0/16 dev awg-t0',
  'rule add pref 2000 unreachable',
  'rule add pref 2100 not from 10.200.50.0/24 to 10.8.0.9 tos 0x10 iif lo oif d0 uidrange 100-200 ipproto tcp dport 53 lookup 300 protocol static',
  'rule add pref 2150 fwmark 0x1 ipproto udp sport 1000-2000 lookup main suppress_prefixlength 0',
  'rule add pref 5299 iif lo fwmark 0/0xf000000 lookup 52099 protocol 167',
  'rule add pref 2200 goto 30000',
  'rule add pref 30000 lookup 400',
];
const V6 = [
  'addr add fd00:200::2/120 dev d0 nodad',
  'addr add fd00:200::102/120 dev awg-t0 nodad',
  'route add default via fd00:200::1 metric 1024',
  'route add default via fd00:200::3 metric 100',
  'route add default dev awg-t0 table 52099 proto 167 metric 10',
  'route add prohibit 2001:db8:7::/48 table 52001 proto 167',
  'route add 2001:db8:2::/48 nexthop via fd00:200::1 nexthop via fd00:200::3',
  'rule add pref 2000 prohibit',
  'rule add pref 2100 from fd00:200::/120 fwmark 0x2/0x3 nop',
];

/** one message as the kernel sent it: header and payload, hex */
function raw(m: NlMessage): string {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + m.payload.length, 0);
  h.writeUInt16LE(m.type, 4);
  h.writeUInt16LE(m.flags, 6);
  h.writeUInt32LE(m.seq, 8);
  h.writeUInt32LE(m.portid, 12);
  return Buffer.concat([h, m.payload]).toString('hex');
}

const dir = process.argv[2] ?? 'test/fixtures/linux/route/netlink';
mkdirSync(dir, { recursive: true });
const ns = await createNetns('rcapture');
try {
  await nsExec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.default.addr_gen_mode=1']);
  await nsExec(ns, 'ip', ['-4', '-batch', '-'], { input: `${V4.join('\n')}\n` });
  await nsExec(ns, 'ip', ['-6', '-batch', '-'], { input: `${V6.join('\n')}\n` });
  const sock = NetlinkSocket.open({ netns: ns });
  try {
    const save = (name: string, ms: NlMessage[]) =>
      writeFileSync(join(dir, `${name}.hex`), ms.map(raw).join('\n') + '\n');
    save('links', sock.request(buildGetLinkDump(sock.nextSeq(), sock.portid)));
    for (const [f, af] of [
      [4, AF_INET],
      [6, AF_INET6],
    ] as const) {
      save(`v${f}-routes`, sock.request(buildGetRouteDump(af, sock.nextSeq(), sock.portid)));
      save(`v${f}-rules`, sock.request(buildGetRuleDump(af, sock.nextSeq(), sock.portid)));
      const ip = async (name: string, args: string[]) =>
        writeFileSync(
          join(dir, `v${f}-${name}.json`),
          (await nsExec(ns, 'ip', ['-j', '-N', `-${f}`, ...args])).stdout,
        );
      await ip('defaults', ['route', 'show', 'table', 'all', 'exact', f === 4 ? '0/0' : '::/0']);
      await ip('main', ['route', 'show', 'table', 'main']);
      await ip('main-default', ['route', 'show', 'table', 'main', 'default']);
      await ip('all', ['route', 'show', 'table', 'all']);
      await ip('rules', ['rule', 'show']);
    }
  } finally {
    sock.close();
  }
} finally {
  await destroyNetns(ns);
}
console.log(`fixtures written to ${dir}`);
