/**
 * The firewall policy as plain data: what the model derives from the config and the
 * renderer turns into the full text of our nft table. Pure types and constants.
 */

/** Table comment that marks the table as ours. A table with our name but without it is a conflict. */
export const NFT_MARKER = 'managed-by=awg';

/**
 * The daemon's own sockets (engine UDP to peers, TCP to proxies, endpoint DNS) carry this
 * mark via SO_MARK: every bit of the claimed fwmark mask set. Tunnel marks are values inside
 * the mask, so the allocator must never hand this value to a tunnel. Chosen over
 * `meta skuid 0`: any root process would pass a uid match, while SO_MARK needs
 * CAP_NET_ADMIN, so only the daemon can carry it.
 */
export function bypassMarkOf(fwmarkMask: number): number {
  return fwmarkMask >>> 0;
}

/** A cgroup as nft names it: path relative to /sys/fs/cgroup and depth below the v2 root. */
export interface NftCgroupRef {
  /** e.g. `unified/awg/work` on hybrid hosts, `awg/work` on pure v2 */
  path: string;
  level: number;
}

export type Ipv6Mode = 'tunnel' | 'block' | 'allow';

export type AppAction =
  /** route through the tunnel whose fwmark is `mark`; `ipv6`: mark v6 too, drop it, or leave it direct */
  | { type: 'mark'; mark: number; ipv6: Ipv6Mode }
  /** leave unmarked (exclusion from a default tunnel) */
  | { type: 'direct' }
  | { type: 'drop' };

export interface AppRule {
  /** rule name; used in comments and counters */
  name: string;
  cgroup: NftCgroupRef;
  action: AppAction;
  /** proxy-tunnel rules with `fallback: allow-direct`: redirect this cgroup's TCP to this port (TunnelRule.redirectPortDirect) */
  redirectPort?: number;
  /** per-app DNS: DNAT this cgroup's port-53 traffic to these resolvers (one per family) */
  dns?: { v4?: string; v6?: string };
}

export interface Endpoint {
  address: string;
  port: number;
  protocol: 'udp' | 'tcp';
}

export interface TunnelRule {
  name: string;
  /** the TUN link (`awg-<name>`); absent for proxy tunnels */
  link?: string;
  mark: number;
  /** where the daemon's bypass-marked sockets may go under the kill switch */
  endpoints: Endpoint[];
  /** resolvers reachable through `link` (DNS leak protection allows exactly these) */
  resolvers: string[];
  /** proxy tunnels: marked TCP is redirected to this local port (transparent proxy; a failed dial fails) */
  redirectPort?: number;
  /** proxy tunnels: TCP of app rules with `fallback: allow-direct` goes to this port instead (a failed dial redials direct) */
  redirectPortDirect?: number;
}

export interface FirewallPolicy {
  /** nft table name in family inet (claims.nftTable) */
  table: string;
  /** TUN name prefix (claims.linkPrefix); `<prefix>*` passes the kill switch */
  linkPrefix: string;
  fwmarkMask: number;
  /** bypassMarkOf(fwmarkMask) unless configured otherwise */
  bypassMark: number;
  killSwitch: 'off' | 'on' | 'allowLan';
  dnsLeakProtection: boolean;
  tunnels: TunnelRule[];
  /** ordered; the first matching cgroup decides */
  apps: AppRule[];
  /** full-tunnel mode: everything not matched by an app rule gets this mark */
  defaultRoute?: { mark: number; ipv6: Ipv6Mode };
  /** packets carrying one of these marks are dropped (tunnel down, fallback `block`) */
  blockMarks: number[];
}
