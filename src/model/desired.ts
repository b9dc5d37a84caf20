/**
 * Config → the desired model: resources plus the traffic policy as data. Pure and
 * OS-neutral in what it decides: host facts that shape the result (resolved endpoints, the
 * DNS manager) and secret fingerprints are passed in, never looked up here. Each platform
 * realises the model (resources/<os>.ts): on Linux the policy becomes our nft table, on
 * macOS a PF anchor and the route split.
 */
import { canonicalHost, canonicalPrefix, parseCidr } from '../config/cidr.js';
import { effectiveMtu } from '../config/mtu.js';
import { isWgLike, killSwitchOf, linkName, type Config } from '../config/schema.js';
import { allocate, type Allocation } from './alloc.js';
import { engineSpec, secretsWith } from './engine.js';
import { ids } from './identity.js';
import { V6_DEFAULT_METRIC, type AnyResource, type RouteSpec, type RuleSpec } from './resources.js';
import { placedBy, ruleName } from './match.js';
import { ruleCgroupPath, ruleWho } from './who.js';
import type { AppRule, DestSet, Endpoint, FirewallPolicy, RuleSets } from './policy.js';
import { ruleAction } from './rule-action.js';
import { formatInterval4, formatInterval6, type DestinationSet } from '../config/lists.js';
import { policyClasses, shapeClasses, shaperResources, type RuntimeLimit } from './shaping.js';
import { ENDPOINT_RE } from '../config/schema.js';
import type { IdentityFacts } from './who.js';
import {
  configConditions,
  firstRouteFamilies,
  firstRouteResources,
  UNROUTED_LINK,
  type RoutingFacts,
} from './unrouted.js';

/**
 * What the model reads of the host. From RoutingFacts (model/unrouted.ts), Linux: `unrouted`,
 * the families without a default route, and `unreachableEndpoints`.
 */
export interface HostFacts extends IdentityFacts, RoutingFacts {
  /** endpoint host names resolved before planning (the firewall needs addresses) */
  resolved?: Record<string, string[]>;
  /**
   * Who manages the system resolver. Per-link servers need one that keeps several sets
   * apart (systemd-resolved); elsewhere tunnelled apps get their tunnel's resolver through
   * per-app DNAT and the system resolver is left alone unless `dns.system: default-tunnel`.
   */
  dnsManager?: 'resolved' | 'resolvconf' | 'static';
  /**
   * The host's own DNS servers (as before awg changed resolv.conf, without the tunnels'):
   * where the daemon looks up endpoint host names with bypass-marked sockets when the system
   * resolver fails (resources/endpoints.ts). Probed only when an endpoint is a host name.
   */
  hostResolvers?: string[];
  /** what probing found wrong on the host (e.g. an unreadable state file), shown as warnings */
  probeWarnings?: string[];
  /**
   * Why this host cannot run an engine the config names (probed only for the engines it
   * names; absent: it can): `kernel`, e.g. Linux without the WireGuard module or macOS;
   * `external`, by program path: missing, not a regular file, not executable, or a platform
   * that cannot run one. Each stops prepare with a located error (host-checks.ts).
   */
  engineProblems?: { kernel?: string; external?: Record<string, string> };
  // ---- facts only a platform's realisation reads (the model passes them through)
  /** Linux: nft resolves cgroup paths relative to /sys/fs/cgroup: `unified` on hybrid hosts, `` on pure v2; absent: the v2 mount is outside it */
  cgroupNftPrefix?: string;
  /** Linux: depth of the v2 mount's root inside the hierarchy (containers without a cgroup namespace) */
  cgroupRootDepth?: number;
  /** Linux: where cgroup v2 is mounted (for errors) */
  cgroupMountPoint?: string;
  /**
   * The physical default routes. macOS: for the tunnel endpoints' bypass routes, with the
   * prefixes connected on that interface (`onLink`: an endpoint inside one needs no bypass).
   * Both: their interfaces are the uplinks that limits shape (model/shaping.ts).
   */
  defaultRouteV4?: { gateway: string; interface: string; onLink?: string[] };
  defaultRouteV6?: { gateway: string; interface: string; onLink?: string[] };
  /** Linux: the SSID a default route's wireless interface is associated with (resources/wifi.ts) */
  wifi?: { interface: string; ssid: string };
  /**
   * macOS: the host's own addresses (every interface but our utuns): connections to them go
   * over lo0, where the flow router's `rdr` would catch them, so they are skipped
   * (resources/platform/darwin-flow.ts localAddresses)
   */
  localAddresses?: string[];
}

export type { RuntimeLimit } from './shaping.js';
export { ruleAction };

export const DEFAULT_FACTS: HostFacts = { cgroupNftPrefix: '' };

export interface BuildOptions {
  facts?: HostFacts;
  /** resolved secret values by config path (e.g. `tunnels.work.privateKey`); only fingerprints are kept */
  secrets?: Map<string, string>;
  /** the host's fingerprint key (util/host-key.ts); required with `secrets` */
  fingerprintKey?: Uint8Array;
  /** cgroup subtree awg owns (claims.cgroupRoot); tests use their own */
  cgroupRoot?: string;
  /**
   * Tunnels that are not up now (the daemon's health view). Rules targeting them take their
   * fallback in the firewall. Absent (plain `awg apply`): every tunnel counts as up.
   */
  down?: ReadonlySet<string>;
  /**
   * Rules held on their fallback (`sticky: true`, by name): their target counts as down for
   * them although it is up (daemon/sticky.ts). Absent: none.
   */
  held?: ReadonlySet<string>;
  /**
   * Processes limited at run time (`awg limit PID`, held by the daemon): each a shaping class
   * after the config's (model/shaping.ts).
   */
  runtimeLimits?: readonly RuntimeLimit[];
  /**
   * The daemon runs the DNS stub that learns domain rules' addresses (resources/dns-stub/stub.ts).
   * Without it (a plain `awg apply`) DNS is left alone and learned sets stay empty.
   */
  learn?: boolean;
  /** every rule's `to`, read (config/load.ts LoadResult.destinations), by rule name */
  destinations?: ReadonlyMap<string, DestinationSet>;
}

/**
 * What the config asks of this host, before a platform realises it. `resources` holds every
 * object but the firewall; `policy` is the firewall's content as data, present when the
 * config needs one (a kill switch, per-app rules, tunnels, DNS leak protection, IPv6 block).
 * Never plan against a model: realise it first (resources/registry.ts).
 */
export interface DesiredModel {
  resources: AnyResource[];
  warnings: string[];
  allocation: Allocation;
  policy?: FirewallPolicy;
}

/** metric of fallback routes: loses to every real route, keeps marked traffic from leaking */
export const FALLBACK_METRIC = 4294967295;
/** the sysctl that turns on conntrack accounting (per network namespace) */
export const CONNTRACK_ACCT = 'net.netfilter.nf_conntrack_acct';
export const CGROUP_ROOT = 'awg';
export { V6_DEFAULT_METRIC };

export const canonicalCidr = canonicalPrefix;
const hostCidr = canonicalHost;

export function buildDesired(c: Config, opts: BuildOptions = {}): DesiredModel {
  const facts = opts.facts ?? DEFAULT_FACTS;
  const alloc = allocate(c);
  const proto = c.routing.routeProtocol;
  const out: AnyResource[] = [];
  const warnings: string[] = [...(facts.probeWarnings ?? [])];
  const push = <R extends AnyResource>(r: R) => out.push(r);
  const ks = killSwitchOf(c);
  const downSet = opts.down ?? new Set<string>();
  const v6Tunnelled = c.ipv6 === 'tunnel';
  const secrets = secretsWith(opts.secrets, opts.fingerprintKey);

  const enabledRules = c.rules.filter((r) => r.enabled);
  const perApp = enabledRules.length > 0;
  const fullTunnel = c.default !== 'direct';
  const systemDns = c.dns.system === 'default-tunnel';

  for (const [name, t] of Object.entries(c.tunnels)) {
    const link = linkName(name);
    const a = alloc.tunnels.get(name)!;
    if (!isWgLike(t)) {
      push({
        kind: 'engine',
        id: ids.engine(name),
        deps: [],
        spec: engineSpec(name, t, alloc, secrets),
      });
      continue;
    }
    const linkId = ids.link(link);
    push({
      kind: 'link',
      id: linkId,
      deps: [],
      // the kernel's module serves a link of its own kind; every userspace engine a TUN
      spec: {
        name: link,
        kind: t.engine === 'kernel' ? 'wireguard' : 'tun',
        mtu: effectiveMtu(t),
        up: true,
      },
    });
    for (const addr of t.addresses) {
      const { cidr, family } = hostCidr(addr);
      push({
        kind: 'address',
        id: ids.address({ link, cidr }),
        deps: [linkId],
        spec: { link, cidr, family },
      });
    }
    push({
      kind: 'engine',
      id: ids.engine(name),
      deps: [linkId],
      spec: engineSpec(name, t, alloc, secrets),
    });
    push({
      kind: 'sysctl',
      id: ids.sysctl(`net.ipv4.conf.${link}.rp_filter`),
      deps: [linkId],
      spec: { key: `net.ipv4.conf.${link}.rp_filter`, value: '2' },
    });

    // Table: one route per allowed prefix through the link, plus an unreachable twin at the
    // worst metric so marked traffic is dropped, not leaked, if the link disappears.
    const prefixes = new Map<string, 4 | 6>();
    for (const p of t.peers)
      for (const ip of p.allowedIPs) {
        const c2 = canonicalCidr(ip);
        prefixes.set(c2.cidr, c2.family);
      }
    const coversDefault = { 4: prefixes.has('0.0.0.0/0'), 6: prefixes.has('::/0') };
    for (const [dst, family] of [...prefixes.entries()].sort((a, b) =>
      a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0,
    )) {
      if (family === 6 && !v6Tunnelled) continue;
      const route: RouteSpec = {
        family,
        table: a.table,
        dst,
        type: 'unicast',
        dev: link,
        metric: family === 6 ? V6_DEFAULT_METRIC : 0,
        protocol: proto,
      };
      push({ kind: 'route', id: ids.route(route), deps: [linkId], spec: route });
      const guard: RouteSpec = {
        family,
        table: a.table,
        dst,
        type: 'unreachable',
        metric: FALLBACK_METRIC,
        protocol: proto,
      };
      push({ kind: 'route', id: ids.route(guard), deps: [], spec: guard });
    }
    for (const family of [4, 6] as const) {
      if (family === 6 && !v6Tunnelled) continue;
      const dst = family === 4 ? '0.0.0.0/0' : '::/0';
      // Split tunnel: destinations outside the allowed IPs fall through to the next rule (main).
      if (!coversDefault[family]) {
        const thr: RouteSpec = {
          family,
          table: a.table,
          dst,
          type: 'throw',
          metric: FALLBACK_METRIC,
          protocol: proto,
        };
        push({ kind: 'route', id: ids.route(thr), deps: [], spec: thr });
      }
      // always: `awg exec --tunnel` reaches every tunnel through its `_exec-<name>` cgroup
      {
        const rule: RuleSpec = {
          family,
          priority: a.priority,
          fwmark: a.fwmark,
          fwmask: alloc.mask,
          table: a.table,
          action: 'lookup',
          protocol: proto,
        };
        push({ kind: 'rule', id: ids.rule(rule), deps: [], spec: rule });
      }
    }
    // systemd-resolved keeps servers per link. A tunnel that is not the system's resolver gets
    // its servers with default-route no: resolved then sends it no query (no routing domain
    // names it), so `dns.system: keep` leaves the system resolver as it was; apps of the tunnel
    // reach them by per-app DNAT. The default tunnel under `default-tunnel` is below.
    const systemResolver = fullTunnel && systemDns && name === c.default;
    if (t.dns.length > 0 && facts.dnsManager === 'resolved' && !systemResolver) {
      push({
        kind: 'dns',
        id: ids.dns(link),
        deps: [linkId],
        spec: { scope: link, servers: [...t.dns], domains: [], defaultRoute: false },
      });
    }
  }

  // Specific routes in main (LAN, the underlay) win over tunnel tables, as with wg-quick's
  // `suppress_prefixlength 0`; the kill switch decides whether such traffic may leave.
  const anyMarkRule = out.some((r) => r.kind === 'rule');
  if (anyMarkRule) {
    for (const family of [4, 6] as const) {
      if (family === 6 && !v6Tunnelled) continue;
      const r: RuleSpec = {
        family,
        priority: c.routing.rulePriority,
        table: 254,
        action: 'lookup',
        suppressPrefixLength: 0,
        protocol: proto,
      };
      push({ kind: 'rule', id: ids.rule(r), deps: [], spec: r });
    }
  }
  // a host without a default route: unmarked local packets need a first route (model/unrouted.ts)
  const firstRoute = firstRouteFamilies(c, facts);
  for (const r of firstRouteResources(c, alloc, firstRoute)) push(r);
  for (const h of configConditions(c, facts)) warnings.push(h.message);
  if (fullTunnel) {
    const t = c.tunnels[c.default];
    if (t && isWgLike(t) && t.dns.length > 0 && systemDns) {
      const link = linkName(c.default);
      // systemd-resolved has no global scope of ours: the tunnel's link takes every query with
      // the routing domain `~.` (it outranks the default-route links that match no domain,
      // resolved-dns-scope.c dns_scope_good_domain) and default-route yes; links whose own
      // domains match a name more specifically still get that name (docs/platform-linux.md,
      // "DNS managers"), and the firewall keeps such queries in the tunnel (systemDnsInTunnel)
      push(
        facts.dnsManager === 'resolved'
          ? {
              kind: 'dns',
              id: ids.dns(link),
              deps: [ids.link(link)],
              spec: { scope: link, servers: [...t.dns], domains: ['~.'], defaultRoute: true },
            }
          : {
              kind: 'dns',
              id: ids.dns('system'),
              deps: [ids.link(link)],
              spec: { scope: 'system', servers: [...t.dns], domains: ['~.'] },
            },
      );
    }
  }

  // cgroups for per-app placement: one per rule, so each rule's fallback can switch alone
  const appRules: AppRule[] = [];
  const sets: DestSet[] = [];
  const tunnelNames = Object.keys(c.tunnels);
  const root = opts.cgroupRoot ?? CGROUP_ROOT;
  const classes = shapeClasses(c, root, opts.runtimeLimits);
  const classOfRule = new Map(classes.map((k) => [k.name, k.n]));
  if (perApp || tunnelNames.length > 0) {
    push({ kind: 'cgroup', id: ids.cgroup(root), deps: [], spec: { path: root } });
    c.rules.forEach((rule, i) => {
      if (!rule.enabled) return;
      const name = ruleName(rule, i);
      // program rules place their processes in a cgroup of their own; a rule without `match`
      // names no sender (every program: its destinations decide)
      // identity rules (user, unit, cgroup) are matched where their processes are (`who`)
      const placed = rule.match !== undefined && placedBy(rule.match) !== 'nft';
      const who = placed
        ? undefined
        : ruleWho(rule, facts, { rootDepth: facts.cgroupRootDepth ?? 0 }, i);
      if (who?.kind === 'cgroups')
        sets.push({ name: who.set, kind: 'cgroups', cgroup: ruleCgroupPath(rule, facts)! });
      const path = placed ? `${root}/${name}` : undefined;
      if (path)
        push({ kind: 'cgroup', id: ids.cgroup(path), deps: [ids.cgroup(root)], spec: { path } });
      const a = alloc.tunnels.get(rule.target);
      const tunnel = c.tunnels[rule.target];
      // a rule held on its fallback (sticky) sees its target down
      const down = opts.held?.has(name) ? new Set([...downSet, rule.target]) : downSet;
      // nothing moves an unplaced rule's traffic on when its tunnel is down: `failover`
      // leaves the rule out, so the next rule that fits decides, as for a placed process
      if (!placed && rule.fallback === 'failover' && tunnel && down.has(rule.target)) return;
      const action = ruleAction(rule, a?.fwmark, c.ipv6, down);
      const to = rule.to ? destinationSets(name, opts.destinations?.get(name), sets) : undefined;
      const dns =
        c.dns.perApp && tunnel && action.type === 'mark' && tunnel.dns.length && !rule.to
          ? appDns(tunnel.dns, c.ipv6)
          : undefined;
      const proxyDirect =
        action.type === 'mark' &&
        rule.fallback === 'allow-direct' &&
        a?.redirectPortDirect !== undefined
          ? { redirectPort: a.redirectPortDirect }
          : {};
      const shapeClass = classOfRule.get(`rule/${name}`);
      appRules.push({
        name,
        ...(path !== undefined ? { group: path } : {}),
        ...(who ? { who } : {}),
        ...(to ? { to } : {}),
        action,
        ...proxyDirect,
        ...(dns && (dns.v4 || dns.v6) ? { dns } : {}),
        ...(shapeClass !== undefined ? { shapeClass } : {}),
      });
    });
    // `awg exec --tunnel T` / `--direct` place themselves here before spawning (no window).
    // Names start with `_`, which rule names cannot, so they never collide.
    for (const t of [...tunnelNames].sort()) {
      const path = `${root}/_exec-${t}`;
      push({ kind: 'cgroup', id: ids.cgroup(path), deps: [ids.cgroup(root)], spec: { path } });
      const tunnel = c.tunnels[t]!;
      const dns = c.dns.perApp && tunnel.dns.length ? appDns(tunnel.dns, c.ipv6) : undefined;
      appRules.push({
        name: `_exec-${t}`,
        group: path,
        action: { type: 'mark', mark: alloc.tunnels.get(t)!.fwmark, ipv6: c.ipv6 },
        ...(dns && (dns.v4 || dns.v6) ? { dns } : {}),
      });
    }
    if (tunnelNames.length > 0) {
      const path = `${root}/_exec-direct`;
      push({ kind: 'cgroup', id: ids.cgroup(path), deps: [ids.cgroup(root)], spec: { path } });
      appRules.push({ name: '_exec-direct', group: path, action: { type: 'direct' } });
    }
  }
  // a process limited at run time sits in a cgroup of its own below the one it was in (one of
  // the above, or the root); the daemon makes it and moves the process (daemon/limit-book.ts)
  const runtime = opts.runtimeLimits ?? [];
  if (runtime.length && !(perApp || tunnelNames.length > 0))
    push({ kind: 'cgroup', id: ids.cgroup(root), deps: [], spec: { path: root } });
  for (const l of runtime) {
    const parent = l.group.slice(0, l.group.lastIndexOf('/'));
    push({
      kind: 'cgroup',
      id: ids.cgroup(l.group),
      deps: [ids.cgroup(parent)],
      spec: { path: l.group },
    });
  }

  if (perApp || fullTunnel || tunnelNames.length > 0) {
    push({
      kind: 'sysctl',
      id: ids.sysctl('net.ipv4.conf.all.src_valid_mark'),
      deps: [],
      spec: { key: 'net.ipv4.conf.all.src_valid_mark', value: '1' },
    });
    // conntrack's byte and packet counters per connection: the monitor's UDP counts (`awg top`).
    // Only connections that begin while it is on are counted.
    push({
      kind: 'sysctl',
      id: ids.sysctl(CONNTRACK_ACCT),
      deps: [],
      spec: { key: CONNTRACK_ACCT, value: '1' },
    });
  }

  const shapers = shaperResources(c, classes, uplinks(facts));
  for (const r of shapers) push(r);
  if (classes.length && !uplinks(facts).length)
    warnings.push(
      'limits: this host has no default route, so traffic that leaves without a tunnel is not shaped',
    );

  const policy = firewallPolicy(c, alloc, facts, appRules, warnings);
  if (sets.length) policy.sets = sets;
  if (firstRoute.length) policy.unrouted = { link: UNROUTED_LINK };
  const learning = c.rules.filter(
    (r, i) =>
      r.enabled && sets.some((s) => s.kind === 'learned' && s.name === `l4_${ruleName(r, i)}`),
  );
  // the daemon's DNS stub: every query through it, learned answers in before the app has them
  if (learning.length && opts.learn)
    policy.dnsStub = { port: alloc.dnsStubPort, tunnelPort: alloc.dnsStubTunnelPort };
  if (learning.length && !opts.learn)
    warnings.push(
      `rules ${learning.map((r) => ruleName(r, c.rules.indexOf(r))).join(', ')} name domains: their addresses are learned from DNS answers only while \`awg daemon\` runs; without it those domains fit no connection`,
    );
  if (classes.length) policy.shaping = { classes: policyClasses(classes) };
  const needsFirewall =
    perApp ||
    ks.enabled ||
    c.dns.leakProtection ||
    c.ipv6 === 'block' ||
    fullTunnel ||
    tunnelNames.length > 0 ||
    classes.length > 0;
  return { resources: out, warnings, allocation: alloc, ...(needsFirewall ? { policy } : {}) };
}

/**
 * A rule's destination sets: `d4_/d6_<rule>` hold its CIDRs (inline and from lists, merged),
 * `l4_/l6_<rule>` the addresses its domains resolve to (learned at run time). A family with
 * nothing to hold has no set, so its packets never fit. Without the loaded destinations
 * (never in a real run) the rule holds no set and fits nothing: never every destination.
 */
function destinationSets(rule: string, d: DestinationSet | undefined, sets: DestSet[]): RuleSets {
  const to: RuleSets = {};
  if (!d) return to;
  if (d.v4.length) {
    to.static4 = `d4_${rule}`;
    sets.push({ name: to.static4, kind: 'static', family: 4, elements: d.v4.map(formatInterval4) });
  }
  if (d.domains.size) {
    to.learned4 = `l4_${rule}`;
    sets.push({ name: to.learned4, kind: 'learned', family: 4 });
  }
  if (d.v6.length) {
    to.static6 = `d6_${rule}`;
    sets.push({ name: to.static6, kind: 'static', family: 6, elements: d.v6.map(formatInterval6) });
  }
  if (d.domains.size) {
    to.learned6 = `l6_${rule}`;
    sets.push({ name: to.learned6, kind: 'learned', family: 6 });
  }
  return to;
}

/** the host's uplink devices (its default routes' interfaces), where direct traffic leaves */
function uplinks(facts: HostFacts): string[] {
  return [facts.defaultRouteV4?.interface, facts.defaultRouteV6?.interface].filter(
    (d): d is string => d !== undefined,
  );
}

/**
 * A group's per-app resolvers: the tunnel's first of each family (IPv6 only when it goes
 * through the tunnels). A family without one is left out of the spec, not set to undefined.
 */
/** the default tunnel is the system's resolver (`dns.system: default-tunnel` with its servers) */
function systemDnsTunnel(c: Config): boolean {
  const t = c.default !== 'direct' ? c.tunnels[c.default] : undefined;
  return c.dns.system === 'default-tunnel' && !!t && isWgLike(t) && t.dns.length > 0;
}

function appDns(dns: readonly string[], ipv6: Config['ipv6']): NonNullable<AppRule['dns']> {
  const v4 = dns.find((d) => !d.includes(':'));
  const v6 = ipv6 === 'tunnel' ? dns.find((d) => d.includes(':')) : undefined;
  return { ...(v4 !== undefined ? { v4 } : {}), ...(v6 !== undefined ? { v6 } : {}) };
}

/** host:port → addresses (literal, or resolved in the facts); unresolved names give a warning */
function endpointAddrs(
  ep: string,
  facts: HostFacts,
  warnings: string[],
): { addrs: string[]; port: number; named?: true } {
  const m = ENDPOINT_RE.exec(ep)!;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (parseCidr(host)) return { addrs: [host], port };
  const r = facts.resolved?.[host];
  if (!r?.length)
    warnings.push(
      `endpoint ${host} is not resolved: the kill switch admits no traffic to it until it resolves`,
    );
  return { addrs: r ?? [], port, named: true };
}

function firewallPolicy(
  c: Config,
  alloc: Allocation,
  facts: HostFacts,
  apps: AppRule[],
  warnings: string[],
): FirewallPolicy {
  const ks = killSwitchOf(c);
  let hostNames = false;
  const tunnels = Object.entries(c.tunnels).map(([name, t]) => {
    const mark = alloc.tunnels.get(name)!.fwmark;
    const endpoints: Endpoint[] = [];
    if (isWgLike(t)) {
      for (const p of t.peers) {
        if (!p.endpoint) continue;
        const e = endpointAddrs(p.endpoint, facts, warnings);
        if (e.named) hostNames = true;
        for (const address of e.addrs) endpoints.push({ address, port: e.port, protocol: 'udp' });
      }
      return { name, link: linkName(name), mark, endpoints, resolvers: [...t.dns] };
    }
    const e = endpointAddrs(
      `${t.server.includes(':') ? `[${t.server}]` : t.server}:${t.port}`,
      facts,
      warnings,
    );
    if (e.named) hostNames = true;
    for (const address of e.addrs) endpoints.push({ address, port: e.port, protocol: 'tcp' });
    const ta = alloc.tunnels.get(name)!;
    return {
      name,
      mark,
      endpoints,
      resolvers: [...t.dns],
      redirectPort: ta.redirectPort!,
      redirectPortDirect: ta.redirectPortDirect!,
      ...(t.type === 'socks5' && t.udp ? { udp: true as const } : {}),
    };
  });
  const def = c.default !== 'direct' ? alloc.tunnels.get(c.default) : undefined;
  const bypassResolvers = hostNames && facts.hostResolvers?.length ? [...facts.hostResolvers] : [];
  return {
    fwmarkMask: alloc.mask,
    bypassMark: alloc.bypassMark,
    killSwitch: !ks.enabled ? 'off' : ks.allowLan ? 'allowLan' : 'on',
    dnsLeakProtection: c.dns.leakProtection,
    tunnels,
    apps,
    ...(def ? { defaultRoute: { mark: def.fwmark, ipv6: c.ipv6 } } : {}),
    ...(def && systemDnsTunnel(c) ? { systemDnsInTunnel: true as const } : {}),
    blockMarks: [],
    ...(bypassResolvers.length ? { bypassResolvers } : {}),
  };
}
