/**
 * Hosts without a default route (docs/platform-linux.md, "Hosts without a default route").
 *
 * Kernel: a locally generated packet gets its first route lookup at connect()/sendmsg(),
 * with the socket's mark, before the nft route chain can mark it. With no route for it that
 * call fails (ENETUNREACH) and the packet never reaches the chain that would send it into a
 * tunnel. An unreachable/blackhole/prohibit route fails it the same way (EHOSTUNREACH, EINVAL,
 * EACCES); only a unicast route lets it through to the output hook.
 *
 * So for each family whose traffic goes into tunnels on a host that routes nowhere beyond the
 * main table's own prefixes, awg gives unmarked locally generated packets a first route of its
 * own: `default dev awg-_noroute` in the band's last table, where `awg-_noroute` is a TUN no
 * engine holds (the device drops what reaches it), looked up by an ip rule at the band's last
 * priority, `iif lo fwmark 0/<mask>` (never forwarded packets, never marked ones). The route
 * chain then marks the packet and the kernel routes it again by its mark, as on any host; what
 * stays unmarked (a direct rule, `awg exec --direct`) the firewall rejects on that device with
 * "no route", so it fails as it would without awg. The rule before it looks main up for the
 * same packets: a default route that appears later (DHCP) wins over ours at once, before the
 * next reconcile removes them. A proxy tunnel's marked packets (no table of their own) take
 * the same first route by a rule at the tunnel's slot, until nat_out redirects them to the
 * local listener. Pure.
 */
import { effectiveMtu } from '../config/mtu.js';
import { BAND_SIZE, isWgLike, LINK_PREFIX, type Config } from '../config/schema.js';
import type { Allocation } from './alloc.js';
import { ids } from './identity.js';
import { V6_DEFAULT_METRIC, type AnyResource, type RouteSpec, type RuleSpec } from './resources.js';

/** the TUN that holds the first route; `_` cannot begin a tunnel name, so no tunnel's link is named so */
export const UNROUTED_LINK = `${LINK_PREFIX}_noroute`;
/** the band's last table and priority: the first route; the priority before it looks main up */
export const UNROUTED_OFFSET = BAND_SIZE - 1;

/** What the main table routes when it has no default route (one family). */
export interface UnroutedFamily {
  /** the prefixes the main table routes (unicast, not default, not through our links): all that direct traffic reaches */
  reach: string[];
  /**
   * main's default route is of this type: every lookup that reaches it ends with its error,
   * awg's `suppress_prefixlength 0` rule included (the kernel suppresses routes, not errors)
   */
  mainDefault?: 'unreachable' | 'blackhole' | 'prohibit';
}

/** An endpoint the engines' bypass-marked sockets have no route to. */
export interface UnreachableEndpoint {
  tunnel: string;
  /** the endpoint's host as configured (an address or a host name) */
  host: string;
  address: string;
  /** the kernel's answer to the route lookup, e.g. `Network is unreachable` */
  reason: string;
}

/** The routing facts of a host (probed on Linux, resources/facts.ts). */
export interface RoutingFacts {
  /** per family: no default route (absent: there is one, or it was not probed) */
  unrouted?: { v4?: UnroutedFamily; v6?: UnroutedFamily };
  /** probed only in unrouted families: elsewhere the default route reaches every endpoint */
  unreachableEndpoints?: UnreachableEndpoint[];
}

export type HostConditionKind =
  'no-default-route' | 'default-route-unusable' | 'endpoint-unreachable';

/** What this host's routing keeps from working, for `awg status` and plan warnings. */
export interface HostCondition {
  kind: HostConditionKind;
  message: string;
  family?: 4 | 6;
  /** no-default-route: the prefixes direct traffic reaches */
  reach?: string[];
  tunnel?: string;
  address?: string;
}

/** the families whose traffic goes into tunnels: IPv4 with any tunnel, IPv6 with `ipv6: tunnel` */
export function tunnelledFamilies(c: Pick<Config, 'tunnels' | 'ipv6'>): (4 | 6)[] {
  if (!Object.keys(c.tunnels).length) return [];
  return c.ipv6 === 'tunnel' ? [4, 6] : [4];
}

/** the tunnelled families that get awg's first route: unrouted, and main's default (if any) not an error route */
export function firstRouteFamilies(
  c: Pick<Config, 'tunnels' | 'ipv6'>,
  facts: RoutingFacts,
): (4 | 6)[] {
  return tunnelledFamilies(c).filter((f) => {
    const u = facts.unrouted?.[`v${f}`];
    return u !== undefined && u.mainDefault === undefined;
  });
}

/**
 * The first route's resources: the TUN (the tunnels' smallest MTU, so TCP's first segment
 * size already fits them; at least IPv6's 1280), per family its route and two rules, and a
 * rule per proxy tunnel.
 */
export function firstRouteResources(
  c: Config,
  alloc: Allocation,
  families: readonly (4 | 6)[],
): AnyResource[] {
  if (!families.length) return [];
  const out: AnyResource[] = [];
  const proto = c.routing.routeProtocol;
  const table = c.routing.tableBase + UNROUTED_OFFSET;
  const mtus = Object.values(c.tunnels).flatMap((t) => (isWgLike(t) ? [effectiveMtu(t)] : []));
  const linkId = ids.link(UNROUTED_LINK);
  out.push({
    kind: 'link',
    id: linkId,
    deps: [],
    spec: {
      name: UNROUTED_LINK,
      kind: 'tun',
      mtu: mtus.length ? Math.max(1280, Math.min(...mtus)) : 1500,
      up: true,
    },
  });
  const local = (family: 4 | 6, priority: number, fwmark: number, into: number): RuleSpec => ({
    family,
    priority,
    iif: 'lo',
    fwmark,
    fwmask: alloc.mask,
    table: into,
    action: 'lookup',
    protocol: proto,
  });
  for (const family of families) {
    const route: RouteSpec = {
      family,
      table,
      dst: family === 4 ? '0.0.0.0/0' : '::/0',
      type: 'unicast',
      dev: UNROUTED_LINK,
      metric: family === 6 ? V6_DEFAULT_METRIC : 0,
      protocol: proto,
    };
    out.push({ kind: 'route', id: ids.route(route), deps: [linkId], spec: route });
    const rules = [
      local(family, c.routing.rulePriority + UNROUTED_OFFSET - 1, 0, 254),
      local(family, c.routing.rulePriority + UNROUTED_OFFSET, 0, table),
    ];
    for (const [name, t] of Object.entries(c.tunnels)) {
      if (isWgLike(t)) continue;
      const a = alloc.tunnels.get(name)!;
      rules.push(local(family, a.priority, a.fwmark, table));
    }
    for (const r of rules) out.push({ kind: 'rule', id: ids.rule(r), deps: [], spec: r });
  }
  return out;
}

const SHOWN = 8;

function listed(prefixes: readonly string[]): string {
  if (!prefixes.length) return 'no destination outside this host';
  const more = prefixes.length - SHOWN;
  return `only ${prefixes.slice(0, SHOWN).join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
}

/**
 * What this host's routing keeps from working: per tunnelled family, no default route (what
 * direct traffic still reaches) or one that fails every lookup; each endpoint without a route.
 */
export function hostConditions(
  facts: RoutingFacts,
  tunnelled: readonly (4 | 6)[],
  firstRoute: readonly (4 | 6)[],
): HostCondition[] {
  const out: HostCondition[] = [];
  for (const family of tunnelled) {
    const u = facts.unrouted?.[`v${family}`];
    if (!u) continue;
    const ip = family === 4 ? 'IPv4' : 'IPv6';
    if (u.mainDefault) {
      out.push({
        kind: 'default-route-unusable',
        family,
        message: `the main table's ${ip} default route is ${u.mainDefault}: route lookups end there with an error before awg's tunnel rules, so traffic beyond the main table's other routes reaches no tunnel (replace it with a unicast route, or remove it)`,
      });
      continue;
    }
    out.push({
      kind: 'no-default-route',
      family,
      reach: [...u.reach],
      message: `no ${ip} default route in the main table: rules and default with target direct reach ${listed(u.reach)}${firstRoute.includes(family) ? `; tunnelled traffic takes its first route from ${UNROUTED_LINK}` : ''}`,
    });
  }
  for (const e of facts.unreachableEndpoints ?? [])
    out.push({
      kind: 'endpoint-unreachable',
      tunnel: e.tunnel,
      address: e.address,
      message: `tunnel ${e.tunnel}: endpoint ${e.host === e.address ? e.address : `${e.host} (${e.address})`} unreachable: no route (${e.reason}); its engine's packets cannot leave this host`,
    });
  return out;
}

/** hostConditions of a config on a host with these facts */
export function configConditions(
  c: Pick<Config, 'tunnels' | 'ipv6'>,
  facts: RoutingFacts,
): HostCondition[] {
  return hostConditions(facts, tunnelledFamilies(c), firstRouteFamilies(c, facts));
}
