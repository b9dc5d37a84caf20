/**
 * The traffic policy as plain data, OS-neutral: which flows are marked into which tunnel,
 * which are dropped, where DNS is redirected, and what the kill switch lets through. The
 * model derives it from the config (model/desired.ts); each platform turns it into its own
 * firewall: nftables on Linux (resources/firewall/render.ts), a PF anchor on macOS
 * (platform/darwin/pf-render.ts). Pure types.
 */

export type Ipv6Mode = 'tunnel' | 'block' | 'allow';

export type AppAction =
  /** route through the tunnel whose mark is `mark`; `ipv6`: mark v6 too, drop it, or leave it direct */
  | { type: 'mark'; mark: number; ipv6: Ipv6Mode }
  /** leave unmarked (exclusion from a default tunnel) */
  | { type: 'direct' }
  | { type: 'drop' };

/** One group of processes (a rule, or `awg exec`'s per-tunnel groups) and what its traffic gets. */
export interface AppRule {
  /** rule name (`_exec-<tunnel>`, `_exec-direct` for `awg exec`); used in comments and counters */
  name: string;
  /**
   * the group's path below the process-group root, e.g. `awg/browser` (a cgroup on Linux):
   * rules that place processes (program rules). Absent: the rule names its senders by
   * `who`, or (neither) applies to every sender.
   */
  group?: string;
  /** senders named by identity, not placed: a uid, or the cgroups of a runtime-filled set */
  who?: Who;
  /** destinations the rule applies to (named sets of FirewallPolicy.sets); absent: every one */
  to?: RuleSets;
  action: AppAction;
  /** proxy-tunnel rules with `fallback: allow-direct`: redirect this group's TCP and UDP to this port (TunnelRule.redirectPortDirect) */
  redirectPort?: number;
  /** per-app DNS: send this group's port-53 traffic to these resolvers (one per family) */
  dns?: { v4?: string; v6?: string };
  /** a limited rule: its traffic carries skb priority `1:<n hex>` (ShapeClass n) */
  shapeClass?: number;
}

/** senders named by identity: `meta skuid`, or `socket cgroupv2 level N @set` (cgroups filled at run time) */
export type { Who } from './who.js';
import type { Who } from './who.js';

/** a rule's destination sets by family: static (CIDRs, loaded with the table), learned (DNS answers) */
export interface RuleSets {
  static4?: string;
  static6?: string;
  learned4?: string;
  learned6?: string;
}

/**
 * A named set of the firewall. `static`: addresses and prefixes from `to.cidrs`/`to.lists`,
 * merged (sorted, disjoint) so the kernel never rewrites them; `learned`: addresses the DNS
 * stub installs with a timeout; `cgroups`: cgroup v2 paths filled at run time.
 */
export interface DestSet {
  name: string;
  kind: 'static' | 'learned' | 'cgroups';
  /** static and learned sets; cgroups sets hold paths */
  family?: 4 | 6;
  /** static sets: the elements, nft syntax (`203.0.113.0/24`, `a-b` ranges) */
  elements?: string[];
  /** cgroups sets: the cgroup they hold, from the hierarchy root (`/system.slice/x.service`) */
  cgroup?: string;
}

/**
 * One shaping class as the firewall sees it: packets of `group` carry skb priority
 * `1:<n hex>`, and their connections are source-NATed into `ports` (model/shaping.ts).
 */
export interface ShapeClass {
  n: number;
  /** `rule/<name>` or `pid/<pid>` */
  name: string;
  /** the process group below the group root (a rule's, or a runtime limit's own) */
  group: string;
  ports: [number, number];
  /**
   * a runtime limit (`awg limit PID`): its priority is set in a chain of its own that runs
   * after the rules' (`shape_out`), so it overrides the class of the rule the process is in
   */
  runtime?: true;
}

export interface Endpoint {
  address: string;
  port: number;
  protocol: 'udp' | 'tcp';
}

export interface TunnelRule {
  name: string;
  /** the tunnel's link (`awg-<name>`); absent for proxy tunnels */
  link?: string;
  mark: number;
  /** where the daemon's bypass-marked sockets may go under the kill switch */
  endpoints: Endpoint[];
  /** resolvers reachable through `link` (DNS leak protection allows exactly these) */
  resolvers: string[];
  /** proxy tunnels: marked TCP is redirected to this local port (transparent proxy; a failed dial fails) */
  redirectPort?: number;
  /** proxy tunnels: TCP and UDP of app rules with `fallback: allow-direct` go to this port instead (what the proxy cannot carry goes direct) */
  redirectPortDirect?: number;
  /** SOCKS5 tunnels with `udp: true`: marked UDP (every port) goes to `redirectPort` too, and the daemon's UDP may reach the proxy's addresses on any port (its relay) */
  udp?: true;
}

export interface FirewallPolicy {
  /** the claimed mark bits; tunnel marks are values inside it */
  fwmarkMask: number;
  /** carried by the daemon's own sockets (engines, proxies): never re-tunnelled, admitted by the kill switch */
  bypassMark: number;
  killSwitch: 'off' | 'on' | 'allowLan';
  dnsLeakProtection: boolean;
  tunnels: TunnelRule[];
  /** ordered; the first matching group decides */
  apps: AppRule[];
  /** full-tunnel mode: everything not matched by an app rule gets this mark */
  defaultRoute?: { mark: number; ipv6: Ipv6Mode };
  /**
   * `dns.system: default-tunnel` in full-tunnel mode: DNS (53/853) that carries the default
   * route's mark leaves by no device but a TUN of ours, also without the kill switch or leak
   * protection. It catches what the system resolver still sends to a LAN resolver (with
   * systemd-resolved: names under the LAN link's own domains) and main's on-link routes
   * (`suppress_prefixlength 0`) would send out by the LAN.
   */
  systemDnsInTunnel?: true;
  /** packets carrying one of these marks are dropped (tunnel down, fallback `block`) */
  blockMarks: number[];
  /**
   * The host's own resolvers: bypass-marked DNS (the daemon's lookups of endpoint host names,
   * resources/endpoints.ts) may reach them under the kill switch and DNS leak protection.
   * Present only when an endpoint is a host name.
   */
  bypassResolvers?: string[];
  /** present when a limit exists: every class, ordered by n */
  shaping?: { classes: ShapeClass[] };
  /** named sets referenced by `apps[].to` / `apps[].who`, in rule order */
  sets?: DestSet[];
  /** the DNS learning stub's ports (every DNS query goes to one of them: render-dns-stub.ts) */
  dnsStub?: { port: number; tunnelPort?: number };
  /**
   * A host without a default route: `link` holds the first route of unmarked local packets
   * (model/unrouted.ts); what leaves unmarked by it is rejected with "no route"
   */
  unrouted?: { link: string };
}
