/**
 * PF rules of the macOS flow router (per-app routing; resources/flow/flow-router.ts).
 * Pure; golden-tested (test/unit/darwin/pf-flow.test.ts). Rendered into the same anchor as
 * the kill switch (`com.awg/awg`, pf-render.ts) when the policy has a flow router, and only
 * then: a policy without one renders byte for byte as before.
 *
 * How a TCP flow of an app reaches the router (the recipe transparent proxies use on macOS,
 * since `rdr` only acts on packets coming IN on an interface):
 * 1. filter, outbound: `pass out quick on ! lo0 route-to lo0 … proto tcp … user != <uid>
 *    flags S/SA`: the app's SYN, whatever interface the routing table chose (the physical
 *    one, or a utun under the default tunnel's 0/1 + 128/1), is sent to lo0 instead;
 * 2. translation, inbound on lo0: `rdr pass on lo0 … -> 127.0.0.1 port <port>` rewrites it
 *    to the router's listener. PF keeps the state, so the router reads the original
 *    destination with DIOCNATLOOK (native/darwin/pfnatlook.ts originalDstDarwin) and the
 *    app's replies are rewritten back. The app's pcb still names the original destination,
 *    which is what the owner lookup matches (platform/darwin/flow-lookup.ts).
 *
 * Loop avoidance — decided: by user. The route-to rule excludes the router's uid
 * (`user != 0`: the daemon runs as root under launchd), so the router's own outbound
 * sockets are never redirected again. Rejected: a PF tag (a tag set on the outbound packet
 * is not documented to survive the loopback re-input that `rdr` needs), binding alone
 * (IP_BOUND_IF chooses the interface, but the route-to rule would still match the SYN on
 * it), a reserved source-port range (needs port management in the router). The dialers
 * still bind their sockets with IP_BOUND_IF (direct: the physical interface; tunnel: its
 * utun) so the routing table's 0/1 + 128/1 cannot send a direct flow into the tunnel.
 * Consequence (documented, warned): processes running as root are not routed per app;
 * their TCP follows the routing table (the default route) and the kill switch.
 *
 * UDP of user processes (uid >= 501, macOS's first user id; system daemons below keep the
 * routing table: mDNSResponder's DNS, timed's NTP), a port per flow. `rdr` alone cannot
 * carry it: PF keys a translated state by its target and the client's address and port
 * (lan_ext), so a second destination of one UDP socket would collide with the first state
 * and be dropped. So PF gives every flow its own source first (xnu bsd/net/pf.c, read, never
 * run):
 * 1. filter on the outbound interface: `pass out quick on ! lo0 route-to lo0 … proto udp …
 *    user >= 501 no state` (stateless: a floating state here would be found again on lo0,
 *    before any translation rule there);
 * 2. translation, outbound on lo0 (pf_route tests the packet on lo0): `nat on lo0 … -> ::1 /
 *    127.0.0.1 port 1024:65535` gives the flow a loopback source and a port of its own (PF's
 *    pf_get_sport); its state is made by `pass out quick on lo0 … keep state (if-bound)`,
 *    bound to lo0 so the next datagram on the physical interface does not match it there
 *    (a floating one would translate it and send it out unrouted);
 * 3. translation, inbound on lo0: `rdr pass on lo0 … proto udp … -> 127.0.0.1 port <port>`:
 *    the router's one UDP socket gets the datagram from the flow's own loopback port.
 * The router finds where it was going (DIOCNATLOOK PF_OUT on the rdr state) and who sent it
 * (DIOCNATLOOK PF_IN on the nat state: the app's address and port, its pcblist_n owner);
 * its replies to the flow's port are translated back by both states and reach the app on
 * lo0 from the original destination. Left: two live flows to different destinations given
 * the same nat port (pf_get_sport checks only (destination, port)) collide at step 3, and
 * the later one is dropped until the other's state expires (about live flows / 64512 per
 * new flow; fail-closed).
 *
 * Never redirected: destinations in the table `<awg_flow_skip>` (loopback, link-local,
 * multicast, broadcast, the tunnels' endpoints, the host's own addresses when given). The
 * `rdr` on lo0 has no user match: every connection to one of the host's own addresses
 * travels over lo0 and would be redirected, the router's own redial included (a loop the
 * router ends by refusing flows of its own pid); hence the host's addresses in the skip
 * list (resources/platform/darwin-flow.ts localAddresses). A negated table matches as intended; a
 * negated `{ }` list would not (PF expands it into rules that each match everything else).
 */
import { effectiveRoute, ruleName, type RuleMatcher } from '../../model/match.js';
import type { FirewallPolicy } from '../../model/policy.js';

export interface PfFlowRouter {
  /** the router's listener port, TCP and UDP (127.0.0.1, and ::1 with v6) */
  port: number;
  /** uid whose sockets are never redirected: the router's own (the daemon: 0) */
  routerUid: number;
  /** also redirect IPv6 (to ::1) */
  ipv6: boolean;
  /** extra destinations never redirected (addresses or prefixes: the tunnels' endpoints) */
  skip: string[];
}

export const FLOW_SKIP_TABLE = 'awg_flow_skip';
/** macOS gives the first user account uid 501; below are system daemons */
export const FIRST_USER_UID = 501;

const SKIP4 = ['127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32'];
const SKIP6 = ['::1/128', 'fe80::/10', 'ff00::/8'];

/** the ports PF's `nat` on lo0 gives UDP flows (step 2 above) */
export const FLOW_NAT_PORTS = '1024:65535';

const fams = (f: PfFlowRouter) =>
  f.ipv6
    ? ([
        ['inet', '127.0.0.1'],
        ['inet6', '::1'],
      ] as const)
    : ([['inet', '127.0.0.1']] as const);

/** the table definition and translation rules: PF wants them before any filter rule */
export function renderFlowTranslation(f: PfFlowRouter): string[] {
  const skip = [...SKIP4, ...(f.ipv6 ? SKIP6 : []), ...[...new Set(f.skip)].sort()];
  const to = `to ! <${FLOW_SKIP_TABLE}>`;
  const l = [`table <${FLOW_SKIP_TABLE}> const { ${skip.join(' ')} }`];
  for (const [fam, lo] of fams(f))
    l.push(`nat on lo0 ${fam} proto udp from any ${to} -> ${lo} port ${FLOW_NAT_PORTS}`);
  for (const proto of ['tcp', 'udp'])
    for (const [fam, lo] of fams(f))
      l.push(`rdr pass on lo0 ${fam} proto ${proto} from any ${to} -> ${lo} port ${f.port}`);
  return l;
}

/** the state of a UDP flow's `nat` on lo0, bound there: before `pass quick on lo0` */
export function renderFlowLoopback(f: PfFlowRouter): string[] {
  return fams(f).map(
    ([fam]) =>
      `pass out quick on lo0 ${fam} proto udp from any to ! <${FLOW_SKIP_TABLE}> keep state (if-bound)`,
  );
}

/** filter rules: before the kill switch's (they are `quick`, and must see the SYN first) */
export function renderFlowFilter(f: PfFlowRouter): string[] {
  const l: string[] = [];
  const to = `to ! <${FLOW_SKIP_TABLE}>`;
  for (const [fam] of fams(f))
    l.push(
      `pass out quick on ! lo0 route-to lo0 ${fam} proto udp from any ${to} user >= ${FIRST_USER_UID} no state`,
    );
  for (const [fam] of fams(f))
    l.push(
      `pass out quick on ! lo0 route-to lo0 ${fam} proto tcp from any ${to} user != ${f.routerUid} flags S/SA keep state`,
    );
  return l;
}

export const NAT_ANCHOR_RULE = 'nat-anchor "com.awg/*"';
export const RDR_ANCHOR_RULE = 'rdr-anchor "com.awg/*"';

/**
 * The main ruleset with our translation hooks, `nat-anchor` then `rdr-anchor`, among its
 * translation rules (after the last `nat-anchor`/`rdr-anchor`/`nat`/`rdr` line of pf.conf,
 * else before its first filter line): pfctl refuses translation rules after filter rules.
 * Each is added once (a ruleset with only `rdr-anchor` gets `nat-anchor` before it). Only
 * needed with a flow router; pf-render.ts renderMainRuleset stays as it was for everything
 * else.
 */
export function withTranslationAnchors(mainRuleset: string): string {
  const lines = mainRuleset.replace(/\n$/, '').split('\n');
  const has = (rule: string) => lines.some((x) => x.trim() === rule);
  if (has(NAT_ANCHOR_RULE) && has(RDR_ANCHOR_RULE)) return mainRuleset;
  const isTrans = (x: string) => /^\s*(nat-anchor|rdr-anchor|binat-anchor|nat|rdr|binat)\b/.test(x);
  const isFilter = (x: string) => /^\s*(anchor|pass|block|load anchor)\b/.test(x);
  let at = lines.findIndex((x) => x.trim() === RDR_ANCHOR_RULE);
  if (at < 0) {
    lines.forEach((x, i) => {
      if (isTrans(x)) at = i + 1;
    });
    if (at < 0) {
      at = lines.findIndex(isFilter);
      if (at < 0) at = lines.length;
    }
  }
  lines.splice(at, 0, ...[NAT_ANCHOR_RULE, RDR_ANCHOR_RULE].filter((r) => !has(r)));
  return lines.join('\n') + '\n';
}

/**
 * Can an enabled rule of `rules` send a flow to `blocked`, now or once its tunnel is down?
 * Asked of match.ts itself (each rule alone, its tunnel down: the most it can block), so it
 * agrees with the router: `block` targets, `fallback: drop` on any target (a `direct` rule
 * with `drop` blocks too), a tunnel rule whose fallback is `block` or `failover`.
 */
export function rulesCanBlock(rules: RuleMatcher['rules']): boolean {
  return rules.some(
    (r, index) =>
      r.enabled !== false &&
      effectiveRoute(
        [{ index, name: ruleName(r, index), target: r.target, fallback: r.fallback ?? 'block' }],
        () => false,
      ) === 'blocked',
  );
}

/**
 * The flow router's PF settings for a policy: v6 unless the default route blocks it (then
 * the anchor blocks v6 for everyone, pf-render.ts), the tunnels' endpoints skipped.
 */
export function pfFlowRouterFor(
  policy: FirewallPolicy,
  o: { port: number; routerUid?: number },
): PfFlowRouter {
  return {
    port: o.port,
    routerUid: o.routerUid ?? 0,
    ipv6: (policy.defaultRoute?.ipv6 ?? 'tunnel') !== 'block',
    skip: [...new Set(policy.tunnels.flatMap((t) => t.endpoints.map((e) => e.address)))].sort(),
  };
}
