/**
 * The nft lines of the DNS learning stub (resources/dns-stub/stub.ts), which renderTable
 * places: `stubRouteRules` in route_out right after `bypass`, `stubNatRules` first in nat_out.
 *
 * - Every application's DNS query (UDP and TCP port 53, any destination) is redirected to the
 *   stub's port on loopback, after route_out gave it its routing decision: its conntrack mark
 *   is the app's tunnel mark (0: direct), which the stub reads and puts on its upstream query.
 * - The loop guard: the stub's upstream sockets carry SO_MARK (only CAP_NET_ADMIN sockets can).
 *   route_out keeps a premarked packet's mark (`premarked`: it never reaches an app rule or the
 *   default route) without saving it in the conntrack mark, so in nat_out a packet with our
 *   mark bits set and an unmarked connection is the stub's own (or another bypass socket's) —
 *   never redirected. An application's packet marked by route_out has its connection marked
 *   too (setMark saves both). The stub's tunnel-marked query then gets its connection mark
 *   in nat_out (a reply arriving through the tunnel is restored to the tunnel's mark, as an
 *   application's would be); bypass-marked connections stay unmarked, as they are today.
 */
import { AwgError } from '../../errors.js';
import type { NftPolicy } from './policy.js';

const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
const comment = (s: string) => `comment "${s}"`;

function port(p: NftPolicy): number | undefined {
  const port = p.dnsStub?.port;
  if (port === undefined) return undefined;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new AwgError('invalid-config', `DNS stub port ${port}`);
  return port;
}

/** route_out, right after the `bypass` line: keep the mark of the stub's upstream queries. */
export function stubRouteRules(p: NftPolicy): string[] {
  if (port(p) === undefined) return [];
  const mask = hex(p.fwmarkMask);
  return [`meta mark & ${mask} != 0x00000000 counter accept ${comment('premarked')}`];
}

/** nat_out, first: the stub's own queries pass; every other DNS query goes to the stub. */
export function stubNatRules(p: NftPolicy): string[] {
  const at = port(p);
  if (at === undefined) return [];
  const mask = hex(p.fwmarkMask);
  const dns = 'meta l4proto { tcp, udp } th dport 53';
  const own = `meta mark & ${mask} != 0x00000000 ct mark & ${mask} == 0x00000000`;
  return [
    `${own} meta mark & ${mask} != ${hex(p.bypassMark)} ${dns} ct mark set meta mark counter accept ${comment('dns-stub/upstream')}`,
    `${own} ${dns} counter accept ${comment('dns-stub/bypass')}`,
    `${dns} counter redirect to :${at} ${comment('dns-stub')}`,
  ];
}
