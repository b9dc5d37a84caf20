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
 * UDP — stated honestly: not routed per app. PF has no transparent UDP redirect we can
 * read the original destination of without divert sockets, so UDP follows the routing
 * table (the default route). With `udp: 'block'` (rendered when a rule can block: its
 * target is `block`, or a fallback can block) the UDP of user-session processes (uid
 * >= 501, macOS's first user id) is dropped outside loopback and the skip list, so an app a
 * rule blocks cannot leak over UDP (QUIC falls back to TCP, which the router sees). System
 * daemons (uid < 501: mDNSResponder's DNS, timed's NTP) keep their UDP.
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
  /** the router's listener port (127.0.0.1, and ::1 with v6) */
  port: number;
  /** uid whose sockets are never redirected: the router's own (the daemon: 0) */
  routerUid: number;
  /** also redirect IPv6 TCP (to ::1) */
  ipv6: boolean;
  /** UDP of user processes: follow the routing table, or drop it (fail closed) */
  udp: 'default' | 'block';
  /** extra destinations never redirected (addresses or prefixes: the tunnels' endpoints) */
  skip: string[];
}

export const FLOW_SKIP_TABLE = 'awg_flow_skip';
/** macOS gives the first user account uid 501; below are system daemons */
export const FIRST_USER_UID = 501;

const SKIP4 = ['127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '255.255.255.255/32'];
const SKIP6 = ['::1/128', 'fe80::/10', 'ff00::/8'];

/** the table definition and translation rules: PF wants them before any filter rule */
export function renderFlowTranslation(f: PfFlowRouter): string[] {
  const skip = [...SKIP4, ...(f.ipv6 ? SKIP6 : []), ...[...new Set(f.skip)].sort()];
  const l = [`table <${FLOW_SKIP_TABLE}> const { ${skip.join(' ')} }`];
  l.push(
    `rdr pass on lo0 inet proto tcp from any to ! <${FLOW_SKIP_TABLE}> -> 127.0.0.1 port ${f.port}`,
  );
  if (f.ipv6)
    l.push(
      `rdr pass on lo0 inet6 proto tcp from any to ! <${FLOW_SKIP_TABLE}> -> ::1 port ${f.port}`,
    );
  return l;
}

/** filter rules: before the kill switch's (they are `quick`, and must see the SYN first) */
export function renderFlowFilter(f: PfFlowRouter): string[] {
  const l: string[] = [];
  if (f.udp === 'block')
    l.push(
      `block drop out quick on ! lo0 proto udp from any to ! <${FLOW_SKIP_TABLE}> user >= ${FIRST_USER_UID}`,
    );
  const fams = f.ipv6 ? ['inet', 'inet6'] : ['inet'];
  for (const fam of fams)
    l.push(
      `pass out quick on ! lo0 route-to lo0 ${fam} proto tcp from any to ! <${FLOW_SKIP_TABLE}> user != ${f.routerUid} flags S/SA keep state`,
    );
  return l;
}

export const RDR_ANCHOR_RULE = 'rdr-anchor "com.awg/*"';

/**
 * The main ruleset with our `rdr-anchor` hook among the translation rules (after the last
 * `nat-anchor`/`rdr-anchor`/`nat`/`rdr` line of pf.conf, else before its first filter
 * line): pfctl refuses translation rules after filter rules. Only needed with a flow
 * router; pf-render.ts renderMainRuleset stays as it was for everything else.
 */
export function withRdrAnchor(mainRuleset: string): string {
  const lines = mainRuleset.replace(/\n$/, '').split('\n');
  if (lines.some((x) => x.trim() === RDR_ANCHOR_RULE)) return mainRuleset;
  const isTrans = (x: string) => /^\s*(nat-anchor|rdr-anchor|binat-anchor|nat|rdr|binat)\b/.test(x);
  const isFilter = (x: string) => /^\s*(anchor|pass|block|load anchor)\b/.test(x);
  let at = -1;
  lines.forEach((x, i) => {
    if (isTrans(x)) at = i + 1;
  });
  if (at < 0) {
    at = lines.findIndex(isFilter);
    if (at < 0) at = lines.length;
  }
  lines.splice(at, 0, RDR_ANCHOR_RULE);
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
 * The flow router's PF settings for a policy: v6 unless the default route blocks it, the
 * tunnels' endpoints skipped, user UDP dropped when `rulesCanBlock` (the caller asks
 * rulesCanBlock above; fail closed: an app a rule blocks must not
 * leak over UDP, which the router cannot see).
 */
export function pfFlowRouterFor(
  policy: FirewallPolicy,
  o: { port: number; rulesCanBlock: boolean; routerUid?: number },
): PfFlowRouter {
  return {
    port: o.port,
    routerUid: o.routerUid ?? 0,
    ipv6: (policy.defaultRoute?.ipv6 ?? 'tunnel') !== 'block',
    udp: o.rulesCanBlock ? 'block' : 'default',
    skip: [...new Set(policy.tunnels.flatMap((t) => t.endpoints.map((e) => e.address)))].sort(),
  };
}
