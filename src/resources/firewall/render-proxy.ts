/**
 * The nft lines of proxy tunnels' transparent redirects (nat_out), which renderTable places
 * after per-app DNS: `proxyRuleRedirects` (per rule) then `proxyTunnelRedirects` (by mark).
 *
 * A proxy tunnel's engine listens on port P (strict: what the proxy cannot carry is dropped)
 * and P + 48 (allow-direct: what the proxy cannot carry goes directly), TCP and UDP
 * (src/proxy/transparent.ts, udp-redirect.ts). A rule with `fallback: allow-direct`
 * (AppRule.redirectPort) sends its marked TCP and UDP to P + 48; everything else carrying the
 * tunnel's mark goes to P: TCP, UDP/53 when the tunnel has resolvers, and every UDP port when
 * the tunnel carries UDP (`udp`). Marked UDP left unredirected is dropped in filter_out
 * (`proxy-nontcp/<tunnel>`), never sent direct.
 *
 * First match: nat_out cannot see which rule marked a packet, only the mark, so an
 * allow-direct rule's lines would also take the packets of an earlier strict rule that marks
 * into the same tunnel and matches the same sender (an identity rule covering a placed
 * program, or a destination-only rule, which names no sender; two placed rules never share a
 * process). Such strict rules get lines of their own, in rule order, ahead of the allow-direct
 * rule's — to P, or (UDP the tunnel cannot
 * carry) `accept`, which ends nat_out without a redirect and leaves the packet to the leak
 * guard. So nat_out's first match is route_out's.
 *
 * With resolvers, UDP/53 keeps its path (`proxy-dns/<tunnel>` to P: DNS never falls back
 * to a direct query): the per-rule UDP lines leave port 53 alone.
 */
import type { NftAppRule, NftPolicy } from './policy.js';

type TunnelRule = NftPolicy['tunnels'][number];

export interface ProxyRenderContext {
  /** the sender part of a rule's match ('' for none) */
  who(a: NftAppRule): string;
  /** `meta mark & MASK == M` */
  byMark(m: number): string;
  comment(s: string): string;
  setName(s: string): string;
}

/** one match per destination set of a rule (route_out's order), or one empty match */
function destinationMatches(a: NftAppRule, c: ProxyRenderContext): string[] {
  if (!a.to) return [''];
  const out: string[] = [];
  for (const [fam, set] of [
    ['ip', a.to.static4],
    ['ip', a.to.learned4],
    ['ip6', a.to.static6],
    ['ip6', a.to.learned6],
  ] as const)
    if (set !== undefined) out.push(`${fam} daddr @${c.setName(set)}`);
  return out;
}

const join = (...parts: string[]) => parts.filter((x) => x !== '').join(' ');

/** the UDP match of the per-rule lines: every port, or all but 53 when DNS has its own path */
const udpMatch = (t: TunnelRule) => (t.resolvers.length ? 'udp dport != 53' : 'meta l4proto udp');

/**
 * Per-rule redirects: each allow-direct rule's TCP and UDP to its port, preceded by the strict
 * rules of the same tunnel that come before it in rule order.
 */
export function proxyRuleRedirects(p: NftPolicy, c: ProxyRenderContext): string[] {
  const tunnelOf = (a: NftAppRule): TunnelRule | undefined =>
    a.action.type === 'mark'
      ? p.tunnels.find(
          (t) =>
            t.redirectPort !== undefined && a.action.type === 'mark' && t.mark === a.action.mark,
        )
      : undefined;
  const apps = p.apps.map((a) => ({ a, t: tunnelOf(a), direct: a.redirectPort !== undefined }));
  // a strict rule needs lines only when a later allow-direct rule of its tunnel could take its
  // packets: two placed rules never can (a process sits in one cgroup), any other pair may
  const shadowed = (i: number) =>
    apps
      .slice(i + 1)
      .some((r) => r.direct && r.t === apps[i]!.t && !(r.a.cgroup && apps[i]!.a.cgroup));
  const out: string[] = [];
  apps.forEach(({ a, t, direct }, i) => {
    if (!t || (!direct && !shadowed(i))) return;
    const port = direct ? a.redirectPort! : t.redirectPort!;
    const note = c.comment(`${direct ? 'proxy-direct' : 'proxy-strict'}/${a.name}`);
    for (const to of destinationMatches(a, c)) {
      const m = join(c.who(a), to, c.byMark(t.mark));
      out.push(`${m} meta l4proto tcp counter redirect to :${port} ${note}`);
      // allow-direct: the engine carries the UDP through the proxy or directly; strict: through
      // the proxy when the tunnel carries UDP, otherwise nat_out ends here and the leak guard drops it
      if (direct) out.push(`${m} ${udpMatch(t)} counter redirect to :${port} ${note}`);
      else if (t.udp) out.push(`${m} meta l4proto udp counter redirect to :${port} ${note}`);
      else out.push(`${m} ${udpMatch(t)} counter accept ${note}`);
    }
  });
  return out;
}

/** By mark, for what no rule line above took (the default route, strict rules): TCP, DNS, UDP. */
export function proxyTunnelRedirects(t: TunnelRule, c: ProxyRenderContext): string[] {
  if (t.redirectPort === undefined) return [];
  const m = c.byMark(t.mark);
  const out = [
    `${m} meta l4proto tcp counter redirect to :${t.redirectPort} ${c.comment(`proxy/${t.name}`)}`,
  ];
  if (t.resolvers.length)
    out.push(
      `${m} udp dport 53 counter redirect to :${t.redirectPort} ${c.comment(`proxy-dns/${t.name}`)}`,
    );
  if (t.udp)
    out.push(
      `${m} meta l4proto udp counter redirect to :${t.redirectPort} ${c.comment(`proxy-udp/${t.name}`)}`,
    );
  return out;
}
