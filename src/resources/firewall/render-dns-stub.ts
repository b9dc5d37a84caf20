/**
 * The nft lines of the DNS learning stub (resources/dns-stub/stub.ts), which renderTable
 * places: `stubRouteRules` in route_out right after `bypass`, `stubNatRules` first in nat_out.
 *
 * - Every application's DNS query (UDP and TCP port 53, any destination) is redirected to the
 *   stub on loopback after route_out gave it its routing decision: its conntrack mark is the
 *   app's tunnel mark (0: direct), which the stub reads and puts on its upstream query. The
 *   queries of rules with per-app DNS (by their cgroup) go to the stub's second port, whose
 *   upstream is the resolver of the tunnel the mark names (what the per-app DNAT did).
 * - The loop guard: the stub's upstream sockets carry SO_MARK (only CAP_NET_ADMIN sockets can).
 *   route_out keeps a premarked packet's mark (`premarked`: it never reaches an app rule or the
 *   default route) without saving it in the conntrack mark. So in nat_out an application's
 *   query has no mark of ours (direct) or a marked connection (route_out's setMark saves
 *   both), and the stub's own has a mark and an unmarked connection: it is never redirected
 *   to the stub. It goes on through nat_out (a proxy tunnel's mark still takes its queries to
 *   the engine); a tunnel-marked one has its mark saved in its connection first, so a reply
 *   through the tunnel is restored to the tunnel's mark as an application's would be.
 *   Bypass-marked connections stay unmarked, as they are today.
 */
import { AwgError } from '../../errors.js';
import type { NftAppRule, NftCgroupRef, NftPolicy } from './policy.js';

const hex = (n: number) => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
const comment = (s: string) => `comment ${quote(s)}`;
const DNS = 'meta l4proto { tcp, udp } th dport 53';

function quote(s: string): string {
  if (!/^[A-Za-z0-9_.:/@+=-]*$/.test(s) || s.length > 100)
    throw new AwgError('invalid-config', `${JSON.stringify(s)} cannot be used in an nft rule`);
  return `"${s}"`;
}

const cg = (c: NftCgroupRef) => `socket cgroupv2 level ${c.level} ${quote(c.path)}`;

function port(at: number | undefined): number | undefined {
  if (at === undefined) return undefined;
  if (!Number.isInteger(at) || at < 1 || at > 65535)
    throw new AwgError('invalid-config', `DNS stub port ${at}`);
  return at;
}

/** route_out, right after the `bypass` line: keep the mark of the stub's upstream queries. */
export function stubRouteRules(p: NftPolicy): string[] {
  if (port(p.dnsStub?.port) === undefined) return [];
  return [`meta mark & ${hex(p.fwmarkMask)} != 0x00000000 counter accept ${comment('premarked')}`];
}

/**
 * nat_out, first: every application's DNS query to the stub, never the stub's own. `who` is
 * the sender match of an app rule (render.ts: its cgroup, uid or cgroup set).
 */
export function stubNatRules(
  p: NftPolicy,
  who: (a: NftAppRule) => string = (a) => (a.cgroup ? cg(a.cgroup) : ''),
): string[] {
  const at = port(p.dnsStub?.port);
  if (at === undefined) return [];
  const perApp = port(p.dnsStub?.tunnelPort);
  const mask = hex(p.fwmarkMask);
  const proxied = new Set(p.tunnels.filter((t) => t.redirectPort !== undefined).map((t) => t.mark));
  const out: string[] = [];
  if (perApp !== undefined)
    for (const a of p.apps)
      if (a.dns && a.action.type === 'mark' && !proxied.has(a.action.mark) && who(a))
        out.push(
          `${who(a)} ${DNS} counter redirect to :${perApp} ${comment(`dns-stub/${a.name}`)}`,
        );
  out.push(
    `meta mark & ${mask} == 0x00000000 ${DNS} counter redirect to :${at} ${comment('dns-stub')}`,
    `ct mark & ${mask} != 0x00000000 ${DNS} counter redirect to :${at} ${comment('dns-stub/marked')}`,
    `meta mark & ${mask} != 0x00000000 meta mark & ${mask} != ${hex(p.bypassMark)} ct mark & ${mask} == 0x00000000 ${DNS} ct mark set meta mark counter ${comment('dns-stub/upstream')}`,
  );
  return out;
}
