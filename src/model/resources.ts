/**
 * Desired and observed system state as plain data. Drivers observe the system into these
 * shapes; the planner compares them. Every resource has a stable id derived from its
 * identity fields, so the desired and the observed copy of one object share an id.
 *
 * Pure module: no I/O.
 */

/**
 * Kinds in creation order (deletion runs in reverse). The firewall comes before links so a
 * kill switch is closed before any tunnel exists; rules come after routes so no marked
 * packet is sent to a table that is still empty.
 */
export const RESOURCE_KINDS = [
  'sysctl',
  'cgroup',
  'firewall',
  'link',
  'address',
  'engine',
  'route',
  'rule',
  'dns',
  'service',
] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** A TUN device `awg-<tunnel>`, persistent, owned (ifalias marker). */
export interface LinkSpec {
  name: string;
  kind: 'tun';
  mtu: number;
  up: boolean;
}

export interface AddressSpec {
  link: string;
  /** canonical CIDR, e.g. 10.0.0.2/32 or fd00::2/128 */
  cidr: string;
  family: 4 | 6;
}

export type RouteType = 'unicast' | 'unreachable' | 'blackhole' | 'throw';
export interface RouteSpec {
  family: 4 | 6;
  table: number;
  /** canonical destination CIDR; `0.0.0.0/0`, `::/0` for defaults */
  dst: string;
  type: RouteType;
  /** output device for unicast routes */
  dev?: string;
  via?: string;
  metric: number;
  protocol: number;
}

export interface RuleSpec {
  family: 4 | 6;
  priority: number;
  /** `fwmark value/mask` selector */
  fwmark?: number;
  fwmask?: number;
  table?: number;
  /** `unreachable`/`blackhole` action instead of a table lookup */
  action: 'lookup' | 'unreachable' | 'blackhole';
  suppressPrefixLength?: number;
  invert?: boolean;
  protocol: number;
}

/** Policy object rendered whole into our nft table by a pure renderer. */
export interface FirewallSpec {
  family: 'inet';
  table: string;
  /** full normalised ruleset text of our table, as rendered (the comparison key) */
  ruleset: string;
}

export interface SysctlSpec {
  key: string;
  value: string;
}

export interface DnsSpec {
  /** link the servers are attached to, or `system` for the global resolver */
  scope: string;
  servers: string[];
  domains: string[];
}

export interface CgroupSpec {
  /** path below the cgroup v2 root, e.g. `awg/work` */
  path: string;
}

export interface ServiceSpec {
  name: string;
  unitText: string;
}

/** Desired state of one userspace tunnel engine. Secrets appear only as fingerprints. */
export interface EngineSpec {
  tunnel: string;
  type: 'wireguard' | 'amneziawg' | 'socks5' | 'http';
  link?: string;
  /** non-secret configuration and fingerprints of secrets (see model/engine.ts) */
  config: Record<string, unknown>;
}

export interface SpecByKind {
  link: LinkSpec;
  address: AddressSpec;
  route: RouteSpec;
  rule: RuleSpec;
  firewall: FirewallSpec;
  sysctl: SysctlSpec;
  dns: DnsSpec;
  cgroup: CgroupSpec;
  service: ServiceSpec;
  engine: EngineSpec;
}

export interface Resource<K extends ResourceKind = ResourceKind> {
  kind: K;
  /** stable identity, unique across kinds: `<kind>/<identity>` */
  id: string;
  spec: SpecByKind[K];
  /** ids this resource needs to exist first (creation order; deletion runs reversed) */
  deps: string[];
}

export type AnyResource = { [K in ResourceKind]: Resource<K> }[ResourceKind];

/** Objects awg does not own but that matter for a plan. */
export interface ForeignObject {
  kind: ResourceKind;
  id: string;
  /** `conflict`: has our name/identity but not our marker (never touched). `competitor`: another owner acting on the same traffic. */
  relation: 'conflict' | 'competitor';
  description: string;
}

export interface ObservedState {
  resources: AnyResource[];
  foreign: ForeignObject[];
  /** observation facts that are not resources (kernel version, cgroup mount, dns manager) */
  facts?: Record<string, unknown>;
}

export interface DesiredState {
  resources: AnyResource[];
  warnings: string[];
}

export function resourceId(kind: ResourceKind, identity: string): string {
  return `${kind}/${identity}`;
}
