/**
 * NftPolicy (the model's FirewallPolicy in nft terms, policy.ts) → the full text of our nft
 * table. Pure; golden-tested.
 *
 * The output is written in the exact form `nft list table` prints (sorted anonymous sets,
 * 8-digit marks, and-masks that already include the or-value), so that the normalised
 * read-back of an untouched table equals the rendered text and drift is a plain string
 * comparison. `socket cgroupv2 level N "path"` exists only in the text syntax (nft 1.0.6 JSON
 * drops the level), hence text throughout.
 *
 * Chains:
 * - `route_out` (route hook output, mangle): per-app marking by cgroup, first match wins,
 *   then the connection's own mark (`connection`: a segment the kernel sends without the
 *   app's full socket — TIME_WAIT, request socket, none — matches no cgroup), then the default
 *   tunnel. A route-type chain makes the kernel re-route a packet whose mark changed, so
 *   `ip rule fwmark X lookup X` applies. The mark is saved to the conntrack mark.
 * - `restore_mark` (prerouting, mangle): replies get the connection's mark back; a connection
 *   that arrives on a TUN for this host gets that tunnel's mark (`inbound/<tunnel>`).
 *   Kernel needs: a re-routed packet keeps the source address picked for the original route,
 *   so `nat_post` masquerades marked traffic leaving a TUN; the reply then arrives on the TUN
 *   from an Internet address, which strict rp_filter would drop because the reverse lookup
 *   without a mark points at the main uplink. With `net.ipv4.conf.all.src_valid_mark=1` the
 *   reverse lookup uses the restored mark (→ tunnel table → the TUN) and strict rp_filter
 *   passes; without it rp_filter must be loose (2) on the TUN. Per-app DNS to a 127.0.0.x stub
 *   re-routed off loopback additionally needs `net.ipv4.conf.<tun>.route_localnet=1`
 *   (the kernel refuses loopback sources on other devices). Those sysctls are sysctl
 *   resources, saved and restored.
 * - `nat_out` (nat output -100): per-app DNS DNAT; transparent-proxy redirects: per app
 *   (`proxy-direct/<rule>`, allow-direct rules) before the by-mark one (`proxy/<tunnel>`);
 *   a proxy tunnel's DNS goes to its engine (TCP/53 via the proxy, UDP/53 to its UDP socket).
 * - `nat_post` (nat postrouting srcnat): masquerade of marked traffic on its TUN. With limits
 *   (model/shaping.ts), a limited group's connections are source-NATed into its class's port
 *   range first (`shape/…`: on a TUN by the masquerade, elsewhere keeping the address), so
 *   the ingress shapers can tell its replies by destination port.
 * - `shape_out` (filter output, after route_out): runtime limits (`awg limit PID`) set their
 *   class's skb priority, overriding their rule's class; route_out sets a limited rule's
 *   (`meta priority set 1:<minor>`, which the egress HTBs classify by).
 * - `filter_out` (filter output): proxy-tunnel leak guard (marked traffic not redirected to a
 *   local listener is dropped), blocking marks, the daemon's bypass-marked endpoint lookups
 *   to the host's resolvers (`endpoint-dns`), DNS leak protection, kill switch (a
 *   connection that began in a tunnel leaves by no other device; under allowLan only flows
 *   conntrack knows from their start may use the LAN exception). The table is not tied to
 *   the daemon's lifetime, so the kill switch holds while it is stopped.
 * - `count_in` (filter input): per-app ingress counters (`app-in/<rule>`), by the cgroup of
 *   the receiving socket (the kernel looks the socket up for the match); loopback first and
 *   uncounted per rule (as in route_out); counts only, every packet is accepted. Egress is counted by the app's rule in `route_out`.
 * - `filter_post` (filter postrouting) → `rerouted`: the same DNS leak protection and kill
 *   switch for packets carrying a TUN tunnel's mark, judged by the device they really leave by;
 *   with `dns.system: default-tunnel` alone (`systemDnsInTunnel`), only the default tunnel's
 *   DNS, which must not leave by another device.
 */
import ipaddr from '../../util/ipaddr.js';
import { AwgError } from '../../errors.js';
import type { FirewallSpec } from '../../model/resources.js';
import type { DestSet, Ipv6Mode } from '../../model/policy.js';
import { classHandle } from '../../model/shaping.js';
import { cgroupSetComment } from './cgroup-sets.js';
import { elementCommands, elementsDigest, keepElements, staticSetComment } from './set-elements.js';
import { NFT_MARKER, type NftAppRule, type NftPolicy } from './policy.js';
import { normaliseRuleset } from './normalise.js';
import { stubNatRules, stubRouteRules } from './render-dns-stub.js';
import { proxyRuleRedirects, proxyTunnelRedirects } from './render-proxy.js';
import {
  cg,
  checkMark,
  comment,
  familyOf,
  LAN4,
  LAN6,
  mark32,
  priority,
  quoted,
  set,
  setMark,
  sortAddrs,
} from './render-syntax.js';
export { mark32, sortAddrs } from './render-syntax.js';

function markRules(
  p: NftPolicy,
  match: string,
  mark: number,
  ipv6: Ipv6Mode,
  name: string,
  shapeClass?: number,
): string[] {
  const m = match ? `${match} ` : '';
  const prio = priority(shapeClass);
  const set4 = `${setMark(p, mark)} ${prio}counter accept`;
  if (ipv6 === 'tunnel') return [`${m}${set4} ${comment(name)}`];
  if (ipv6 === 'block')
    return [
      `${m}meta nfproto ipv6 counter drop ${comment(`${name}/ipv6-blocked`)}`,
      `${m}${set4} ${comment(name)}`,
    ];
  return [
    `${m}meta nfproto ipv4 ${set4} ${comment(name)}`,
    `${m}${prio}counter accept ${comment(`${name}/ipv6-direct`)}`,
  ];
}

/** the sender part of an app rule's match: its cgroup, its uid, its cgroup set, or nothing */
function who(a: NftAppRule): string {
  if (a.cgroup) return cg(a.cgroup);
  if (a.who?.kind === 'uid') {
    if (!Number.isInteger(a.who.uid) || a.who.uid < 0 || a.who.uid > 0xfffffffe)
      throw new AwgError('bug', `${a.name}: uid ${a.who.uid}`);
    return `meta skuid ${a.who.uid}`;
  }
  if (a.who?.kind === 'cgroups') {
    if (!Number.isInteger(a.who.level) || a.who.level < 1)
      throw new AwgError('bug', `${a.name}: cgroup level ${a.who.level} must be ≥ 1`);
    return `socket cgroupv2 level ${a.who.level} @${setName(a.who.set)}`;
  }
  return '';
}

/** nft set names of ours: a letter, then letters, digits, `_`, `.`, `-` (rule names fit after a prefix) */
export function setName(s: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_.-]{0,200}$/.test(s))
    throw new AwgError('invalid-config', `${JSON.stringify(s)} is not a usable nft set name`);
  return s;
}

/**
 * A rule with destinations: one line per set, in the order static IPv4, learned IPv4, static
 * IPv6, learned IPv6. A packet to an address in none of them goes on to the next rule.
 */
function destinationRules(p: NftPolicy, a: NftAppRule, w: string): string[] {
  const to = a.to!;
  const name = `app/${a.name}`;
  const m = w ? `${w} ` : '';
  const prio = priority(a.shapeClass);
  const v4: string[] = [];
  const v6: string[] = [];
  switch (a.action.type) {
    case 'direct':
      v4.push(`${prio}counter accept`);
      v6.push(`${prio}counter accept`);
      break;
    case 'drop':
      v4.push('counter drop');
      v6.push('counter drop');
      break;
    case 'mark': {
      checkMark(p, a.action.mark, name);
      const set = `${setMark(p, a.action.mark)} ${prio}counter accept`;
      v4.push(set);
      v6.push(
        a.action.ipv6 === 'tunnel'
          ? set
          : a.action.ipv6 === 'block'
            ? 'counter drop'
            : `${prio}counter accept`,
      );
      break;
    }
  }
  const out: string[] = [];
  const line = (fam: 'ip' | 'ip6', set: string | undefined, what: string[]) => {
    if (set !== undefined)
      out.push(`${m}${fam} daddr @${setName(set)} ${what[0]!} ${comment(`${name}/@${set}`)}`);
  };
  line('ip', to.static4, v4);
  line('ip', to.learned4, v4);
  line('ip6', to.static6, v6);
  line('ip6', to.learned6, v6);
  return out;
}

function appRules(p: NftPolicy, a: NftAppRule): string[] {
  const name = `app/${a.name}`;
  const m = who(a);
  if (a.to) return destinationRules(p, a, m);
  if (!m) throw new AwgError('bug', `${name}: a rule with neither senders nor destinations`);
  switch (a.action.type) {
    case 'direct':
      return [`${m} ${priority(a.shapeClass)}counter accept ${comment(name)}`];
    case 'drop':
      return [`${m} counter drop ${comment(name)}`];
    case 'mark':
      checkMark(p, a.action.mark, name);
      return markRules(p, m, a.action.mark, a.action.ipv6, name, a.shapeClass);
  }
}

/**
 * nat_post's port-range NAT of the limited classes (model/shaping.ts): on each TUN ahead of
 * its plain masquerade, elsewhere (direct traffic) keeping the source address. Only TCP and
 * UDP have ports; loopback is left alone.
 */
function shapeNat(p: NftPolicy): { perTunnel: Map<string, string[]>; direct: string[] } {
  const perTunnel = new Map<string, string[]>();
  const direct: string[] = [];
  const classes = p.shaping?.classes ?? [];
  if (!classes.length) return { perTunnel, direct };
  const mask = mark32(p.fwmarkMask);
  const l4 = 'meta l4proto { tcp, udp } counter';
  for (const t of p.tunnels) {
    if (!t.link) continue;
    perTunnel.set(
      t.name,
      classes.map(
        (k) =>
          `oifname ${quoted(t.link!, 'link')} meta mark & ${mask} == ${mark32(t.mark)} meta priority ${classHandle(k.n)} ${l4} masquerade to :${k.ports[0]}-${k.ports[1]} ${comment(`shape/${t.name}/${k.name}`)}`,
      ),
    );
  }
  for (const k of classes)
    for (const fam of ['ip', 'ip6'] as const)
      direct.push(
        `meta priority ${classHandle(k.n)} ${l4} snat ${fam} to ${fam} saddr:${k.ports[0]}-${k.ports[1]} ${comment(`shape/${k.name}${fam === 'ip6' ? '/ipv6' : ''}`)}`,
      );
  return { perTunnel, direct };
}

/** a named set's declaration, without elements (static ones are added after: set-elements.ts) */
function setLines(s: DestSet): string[] {
  const type = s.kind === 'cgroups' ? 'cgroupsv2' : s.family === 6 ? 'ipv6_addr' : 'ipv4_addr';
  const body = [`type ${type}`];
  if (s.kind === 'static') {
    const els = s.elements ?? [];
    const digest = elementsDigest(els);
    keepElements(digest, els);
    body.push('flags interval', `comment "${staticSetComment(els.length, digest)}"`);
  } else if (s.kind === 'learned') body.push('flags timeout');
  else if (s.cgroup !== undefined) body.push(`comment "${cgroupSetComment(s.cgroup)}"`);
  return [`\tset ${setName(s.name)} {`, ...body.map((b) => `\t\t${b}`), '\t}', ''];
}

function chain(name: string, hook: string, rules: string[]): string[] {
  return [`\tchain ${name} {`, `\t\t${hook}`, ...rules.map((r) => `\t\t${r}`), '\t}'];
}

/** every (mark, ipv6 mode) an app rule or the default route marks with */
function marking(p: NftPolicy): { mark: number; ipv6: Ipv6Mode }[] {
  return [
    ...p.apps.flatMap((a) => (a.action.type === 'mark' ? [a.action] : [])),
    ...(p.defaultRoute ? [p.defaultRoute] : []),
  ];
}

/** The table definition alone (what `nft list table inet <name>` prints, minus counters). */
export function renderTable(p: NftPolicy): string {
  const mask = mark32(p.fwmarkMask);
  const byMark = (m: number) => `meta mark & ${mask} == ${mark32(m)}`;
  quoted(p.table, 'table name');

  const route = [
    `oifname "lo" counter return ${comment('loopback')}`,
    `${byMark(p.bypassMark)} counter return ${comment('bypass')}`,
    ...stubRouteRules(p),
  ];
  for (const a of p.apps) route.push(...appRules(p, a));
  // A packet the kernel sends without the app's full socket (the ACK or RST of a TIME_WAIT
  // socket, the SYN-ACK of a request socket, the RST of a closed port) matches no cgroup: it
  // takes the mark its connection got from the app's first packets or from `inbound/` below
  route.push(
    `ct mark & ${mask} != 0x00000000 meta mark set ct mark counter accept ${comment('connection')}`,
  );
  if (p.defaultRoute) {
    checkMark(p, p.defaultRoute.mark, 'default route');
    route.push(...markRules(p, '', p.defaultRoute.mark, p.defaultRoute.ipv6, 'default'));
  }

  const restore = [
    `ct mark & ${mask} != 0x00000000 meta mark set ct mark counter ${comment('restore-mark')}`,
  ];
  // A connection without a mark of ours whose packet arrives through a TUN to this host is the
  // tunnel's: its replies (also the kernel's own, e.g. a SYN-ACK or the RST of a closed port)
  // go back through it. That is a connection that came in through the tunnel, and one that a
  // socket bound to the TUN opened (the daemon's health probe, `ping -I`, `curl --interface`)
  // with no rule's mark: the SYN-ACK that reaches it after its socket closed (a probe's timeout
  // racing the SYN's retransmission) is answered by the kernel's RST without a socket, which
  // without the mark took the main table and left by the underlay. IPv6 only where a rule
  // routes IPv6 into the tunnel (otherwise the tunnel has no IPv6 routes).
  for (const t of p.tunnels) {
    if (!t.link) continue;
    checkMark(p, t.mark, `tunnel ${t.name}`);
    const v6 = marking(p).some((a) => a.mark === t.mark && a.ipv6 === 'tunnel');
    restore.push(
      `iifname ${quoted(t.link, 'link')}${v6 ? '' : ' meta nfproto ipv4'} ct mark & ${mask} == 0x00000000 fib daddr type local ${setMark(p, t.mark)} counter ${comment(`inbound/${t.name}`)}`,
    );
  }

  const natOut: string[] = [...stubNatRules(p, who)];
  const proxyByMark = new Map(
    p.tunnels.filter((t) => t.redirectPort !== undefined).map((t) => [t.mark, t]),
  );
  const proxyOf = (a: NftAppRule) =>
    a.action.type === 'mark' ? proxyByMark.get(a.action.mark) : undefined;
  for (const a of p.apps) {
    if (!a.dns || a.to) continue;
    const m = who(a);
    if (!m) continue;
    const px = proxyOf(a);
    if (px) {
      // a proxy tunnel's resolvers are reached through the proxy: TCP/53 (also to a local
      // stub, which is not marked) into the transparent proxy, which sends it to the
      // tunnel's resolver; UDP/53 to the engine's UDP socket on the same port number
      natOut.push(
        `${m} tcp dport 53 counter redirect to :${a.redirectPort ?? px.redirectPort} ${comment(`dns/${a.name}`)}`,
        `${m} udp dport 53 counter redirect to :${px.redirectPort} ${comment(`dns/${a.name}`)}`,
      );
      continue;
    }
    if (a.dns.v4)
      natOut.push(
        `${m} meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 counter dnat ip to ${ipaddr.IPv4.parse(a.dns.v4).toString()} ${comment(`dns/${a.name}`)}`,
      );
    if (a.dns.v6)
      natOut.push(
        `${m} meta nfproto ipv6 meta l4proto { tcp, udp } th dport 53 counter dnat ip6 to ${ipaddr.IPv6.parse(a.dns.v6).toString()} ${comment(`dns/${a.name}`)}`,
      );
  }
  // transparent-proxy redirects (render-proxy.ts): per rule in rule order, then by mark;
  // only marked packets, so the app's loopback traffic stays untouched
  const proxyCtx = { who, byMark, comment, setName };
  natOut.push(...proxyRuleRedirects(p, proxyCtx));
  const shaped = shapeNat(p);
  const natPost: string[] = p.shaping?.classes.length
    ? [`oifname "lo" counter accept ${comment('loopback')}`]
    : [];
  for (const t of p.tunnels) {
    checkMark(p, t.mark, `tunnel ${t.name}`);
    natPost.push(...(shaped.perTunnel.get(t.name) ?? []));
    natOut.push(...proxyTunnelRedirects(t, proxyCtx));
    if (t.link)
      natPost.push(
        `oifname ${quoted(t.link, 'link')} ${byMark(t.mark)} counter masquerade ${comment(`snat/${t.name}`)}`,
      );
  }

  natPost.push(...shaped.direct);
  // runtime limits: after route_out, so a process's own class overrides its rule's
  const shapeOut = (p.shaping?.classes ?? [])
    .filter((k) => k.runtime)
    .map(
      (k) => `${cg(k.cgroup)} meta priority set ${classHandle(k.n)} ${comment(`shape/${k.name}`)}`,
    );

  // `oifname` is the route chosen before nat output: a connection redirected to a local
  // transparent proxy still names the physical device, so admit local destinations too.
  const filter = [
    `oifname "lo" counter accept ${comment('loopback')}`,
    `fib daddr type local counter accept ${comment('local')}`,
  ];
  // a host without a default route: unmarked local packets' first route is this link of ours
  // (model/unrouted.ts); what is still unmarked here goes direct, and has no route
  if (p.unrouted)
    filter.push(
      `meta mark & ${mask} == 0x00000000 oifname ${quoted(p.unrouted.link, 'link')} counter reject with icmpx no-route ${comment('no-route')}`,
    );
  // A proxy tunnel has no TUN and no route: what carries its mark and was not redirected to
  // a local listener above would leave directly. UDP the tunnel does not carry (but DNS),
  // ICMP, and TCP of connections older than the redirect are dropped.
  for (const t of p.tunnels) {
    if (t.redirectPort === undefined) continue;
    filter.push(
      `${byMark(t.mark)} meta l4proto != tcp counter drop ${comment(`proxy-nontcp/${t.name}`)}`,
      `${byMark(t.mark)} counter drop ${comment(`proxy-unredirected/${t.name}`)}`,
    );
  }
  for (const m of [...new Set(p.blockMarks)].sort((a, b) => a - b)) {
    checkMark(p, m, 'blocking mark');
    filter.push(`${byMark(m)} counter drop ${comment(`blocked/${mark32(m)}`)}`);
  }
  // Kernel: every chain of one hook sees the `oifname` of the route chosen before the hook, so a
  // packet re-routed by its mark (route_out) or by DNAT (nat_out) still names the uplink here.
  // TUN-marked packets therefore face the rules below in `filter_post` (postrouting), where
  // `oifname` is the device they leave by; everything else faces them here.
  /** every TUN of ours: `"awg-*"` */
  const ourTuns = `${quoted(p.linkPrefix, 'link prefix').slice(0, -1)}*"`;
  const egress: string[] = [];
  const endpointDns: string[] = [];
  // the daemon's own lookups of endpoint host names (bypass-marked, resources/endpoints.ts)
  // to the host's resolvers: ahead of the DNS leak drop and the kill switch, which would
  // otherwise leave a restarted daemon unable to find its endpoints
  if ((p.killSwitch !== 'off' || p.dnsLeakProtection) && p.bypassResolvers?.length) {
    for (const fam of [4, 6] as const) {
      const rs = sortAddrs(
        p.bypassResolvers.filter((r) => familyOf(r) === fam).map((r) => ipaddr.parse(r).toString()),
      );
      if (rs.length)
        endpointDns.push(
          `${byMark(p.bypassMark)} ${fam === 4 ? 'ip' : 'ip6'} daddr ${set(rs)} meta l4proto { tcp, udp } th dport 53 counter accept ${comment('endpoint-dns')}`,
        );
    }
  }
  if (p.dnsLeakProtection) {
    for (const t of p.tunnels) {
      if (!t.link) continue;
      for (const fam of [4, 6] as const) {
        const rs = sortAddrs(t.resolvers.filter((r) => familyOf(r) === fam));
        if (rs.length)
          egress.push(
            `oifname ${quoted(t.link, 'link')} ${fam === 4 ? 'ip' : 'ip6'} daddr ${set(rs)} meta l4proto { tcp, udp } th dport { 53, 853 } counter accept ${comment(`dns/${t.name}`)}`,
          );
      }
    }
    egress.push(
      `meta l4proto { tcp, udp } th dport { 53, 853 } counter drop ${comment('dns-leak')}`,
    );
  }
  if (p.killSwitch !== 'off') {
    egress.push(`oifname ${ourTuns} counter accept ${comment('tunnels')}`);
    for (const t of p.tunnels) {
      for (const e of t.endpoints) {
        if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535)
          throw new AwgError('invalid-config', `tunnel ${t.name}: endpoint port ${e.port}`);
        const fam = familyOf(e.address) === 4 ? 'ip' : 'ip6';
        const addr = ipaddr.parse(e.address).toString();
        egress.push(
          `${byMark(p.bypassMark)} ${fam} daddr ${addr} ${e.protocol} dport ${e.port} counter accept ${comment(`endpoint/${t.name}`)}`,
        );
        // a SOCKS5 proxy's UDP relay: the port is the proxy's choice (its ASSOCIATE reply)
        if (t.udp && e.protocol === 'tcp')
          egress.push(
            `${byMark(p.bypassMark)} ${fam} daddr ${addr} meta l4proto udp counter accept ${comment(`endpoint-udp/${t.name}`)}`,
          );
      }
    }
    egress.push(`udp sport 68 udp dport 67 counter accept ${comment('dhcp')}`);
    egress.push(`udp sport 546 udp dport 547 counter accept ${comment('dhcpv6')}`);
    egress.push(
      `icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } counter accept ${comment('ndp')}`,
    );
    if (p.killSwitch === 'allowLan') {
      // Only what conntrack knows as a real flow may use the LAN exception: a TCP segment that
      // opens an entry without a SYN (the kernel's answer after conntrack lost the
      // connection, e.g. a TIME_WAIT ACK) or that conntrack finds invalid (its RST once the NAT
      // binding is gone) could belong to a tunnelled flow, which never leaves outside a tunnel
      egress.push(
        `tcp flags != syn / fin,syn,rst,ack ct state new counter drop ${comment('lan-midstream')}`,
      );
      egress.push(`ct state invalid counter drop ${comment('lan-invalid')}`);
      egress.push(`ip daddr ${set(sortAddrs(LAN4))} counter accept ${comment('lan')}`);
      egress.push(`ip6 daddr ${set(sortAddrs(LAN6))} counter accept ${comment('lan6')}`);
    }
    egress.push(`counter drop ${comment('kill-switch')}`);
  }
  const rerouted = egress.length ? p.tunnels.filter((t) => t.link) : [];
  for (const t of rerouted)
    filter.push(`${byMark(t.mark)} counter accept ${comment(`rerouted/${t.name}`)}`);
  // without the kill switch and leak protection, `dns.system: default-tunnel` alone: only the
  // default tunnel's marked DNS is judged in `rerouted` (by its real device), nothing else is
  const judged = rerouted.length
    ? rerouted
    : p.systemDnsInTunnel && p.defaultRoute
      ? p.tunnels.filter((t) => t.link && t.mark === p.defaultRoute!.mark)
      : [];
  // a connection that began in a tunnel (its conntrack mark) but whose packet is not marked
  // for a tunnel now (its rule turned direct, its tunnel is gone) never leaves by another
  // device: that would put the tunnelled flow's payload on the underlay in the clear
  const tunnelsAt = egress.findIndex((r) => r.endsWith(comment('tunnels')));
  // bypass-marked packets never carry a TUN tunnel's mark: `rerouted` needs no endpoint-dns
  filter.push(
    ...(egress.length ? endpointDns : []),
    ...(tunnelsAt < 0
      ? egress
      : [
          ...egress.slice(0, tunnelsAt + 1),
          `ct mark & ${mask} != 0x00000000 counter drop ${comment('tunnelled-connection')}`,
          ...egress.slice(tunnelsAt + 1),
        ]),
  );
  const post = judged.map(
    (t) => `${byMark(t.mark)} counter jump rerouted ${comment(`rerouted/${t.name}`)}`,
  );

  // first match wins, as in route_out; `accept` ends only this chain (other chains still see it)
  // loopback is not counted, as route_out does not count it on the way out
  // by sockets' cgroups only: a uid or a destination says nothing reliable about an inbound packet
  const counted = p.apps.filter((a) => !a.to && (a.cgroup || a.who?.kind === 'cgroups'));
  const countIn = counted.length
    ? [
        `iifname "lo" counter accept ${comment('loopback')}`,
        ...counted.map((a) => `${who(a)} counter accept ${comment(`app-in/${a.name}`)}`),
      ]
    : [];

  const lines = [
    `table inet ${p.table} {`,
    `\tcomment "${NFT_MARKER}"`,
    ...(p.sets ?? []).flatMap(setLines),
    ...chain('route_out', 'type route hook output priority mangle; policy accept;', route),
    '',
    ...chain(
      'restore_mark',
      'type filter hook prerouting priority mangle; policy accept;',
      restore,
    ),
    '',
    ...chain('nat_out', 'type nat hook output priority -100; policy accept;', natOut),
    '',
    ...chain('nat_post', 'type nat hook postrouting priority srcnat; policy accept;', natPost),
    '',
    ...chain('filter_out', 'type filter hook output priority filter; policy accept;', filter),
    ...(shapeOut.length
      ? [
          '',
          ...chain(
            'shape_out',
            'type filter hook output priority mangle + 1; policy accept;',
            shapeOut,
          ),
        ]
      : []),
    ...(countIn.length
      ? [
          '',
          ...chain('count_in', 'type filter hook input priority filter; policy accept;', countIn),
        ]
      : []),
    ...(post.length
      ? [
          '',
          '\tchain rerouted {',
          ...[
            `oifname "lo" counter accept ${comment('loopback')}`,
            // a tunnelled app's DNS to an on-link resolver is routed by `suppress_prefixlength 0`
            // to the uplink: under the kill switch, leak protection or `dns.system:
            // default-tunnel` (the system resolver's own queries) it must not leave there
            `oifname != ${ourTuns} meta l4proto { tcp, udp } th dport { 53, 853 } counter drop ${comment('dns-outside-tunnel')}`,
            ...egress,
          ].map((r) => `\t\t${r}`),
          '\t}',
          '',
          ...chain(
            'filter_post',
            'type filter hook postrouting priority filter; policy accept;',
            post,
          ),
        ]
      : []),
    '}',
  ];
  return lines.join('\n') + '\n';
}

/**
 * The policy the early unit loads at boot (kill switch on): the same table without what only
 * the running daemon can satisfy. `socket cgroupv2` matches fail to load while their cgroup
 * does not exist (no per-app rules, so no per-app DNS or counters either), and without the
 * default tunnel's mark nothing is routed into a tunnel that is not up yet: every packet
 * faces the kill switch, which lets out loopback, our TUNs (`awg-*`, by name, once the
 * daemon creates them), the daemon's bypass-marked endpoint traffic and endpoint lookups,
 * DHCP, DHCPv6, neighbour discovery and (allowLan) the LAN. No limits (nothing is shaped yet). The daemon's first apply
 * replaces it with the full table in one transaction.
 */
export function bootPolicy(p: NftPolicy): NftPolicy | undefined {
  if (p.killSwitch === 'off') return undefined;
  const { defaultRoute: _default, shaping: _shaping, sets: _sets, dnsStub: _stub, ...rest } = p;
  return { ...rest, apps: [] };
}

export function firewallSpec(p: NftPolicy): FirewallSpec {
  const boot = bootPolicy(p);
  return {
    family: 'inet',
    table: p.table,
    ruleset: normaliseRuleset(renderTable(p)),
    ...(boot ? { boot: normaliseRuleset(renderTable(boot)) } : {}),
  };
}

/**
 * One atomic transaction: `add table` makes the delete safe when the table is absent; the
 * table never disappears in between (nft applies the whole file or nothing).
 */
export function renderTransaction(spec: FirewallSpec): string {
  return `add table inet ${spec.table}\ndelete table inet ${spec.table}\n${spec.ruleset}${elementCommands('inet', spec.table, spec.ruleset)}`;
}
