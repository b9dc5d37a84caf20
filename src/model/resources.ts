/**
 * Desired and observed system state as plain data. Drivers observe the system into these
 * shapes; the planner compares them. Every resource has a stable id derived from its
 * identity fields, so the desired and the observed copy of one object share an id.
 *
 * Pure module: no I/O.
 */
import type { AwgObfuscation } from '../config/schema.js';
import type { KeepaliveSpec } from '../config/keepalive.js';

/**
 * Kinds in creation order (deletion runs in reverse). The firewall comes before links so a
 * kill switch is closed before any tunnel exists; rules come after routes so no marked
 * packet is sent to a table that is still empty; shapers after links (their TUN and ifb).
 */
export const RESOURCE_KINDS = [
  'sysctl',
  'cgroup',
  'firewall',
  'link',
  'shaper',
  'address',
  'engine',
  'route',
  'rule',
  'dns',
  'service',
] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/**
 * A link `awg-<tunnel>`, owned (ifalias marker): a persistent TUN for a userspace engine, or
 * (`engine: kernel`) a `wireguard` link that Linux's WireGuard module serves; or an `ifb`
 * `awgq-<hash>` that a shaper redirects a device's traffic to (model/shaping.ts).
 */
export interface LinkSpec {
  name: string;
  kind: 'tun' | 'wireguard' | 'ifb';
  mtu: number;
  up: boolean;
}

/**
 * One limited group in a shaper: a rule's processes (`rule/<name>`) or a process limited at
 * run time (`pid/<pid>`). Class `n` (1..32) is HTB class `1:<n hex>`; its traffic carries
 * skb priority `1:<n hex>` (egress) and local ports `ports` (ingress).
 */
export interface ShaperClass {
  n: number;
  name: string;
  /** bit/s in this shaper's direction */
  rate: number;
  /** inclusive local port range its connections are source-NATed into */
  ports: [number, number];
}

/**
 * The shaping of one device in one direction (model/shaping.ts). `ifb` absent: the device is
 * a TUN of ours and carries the HTB as its root qdisc (egress only). `ifb` present: a clsact
 * on the device redirects the classes' traffic to that ifb of ours, which carries the HTB.
 */
export interface ShaperSpec {
  device: string;
  direction: 'egress' | 'ingress';
  ifb?: string;
  /** bit/s: a tunnel's own limit, the parent of every class (the rest shares it too) */
  total?: number;
  /** ordered by n */
  classes: ShaperClass[];
  /**
   * Observed only (the model never sets it): what of our tree is missing or not as built (a
   * deleted class, leaf queue or filter). Any damage is a difference, so the driver rebuilds.
   */
  damage?: string[];
}

export interface AddressSpec {
  link: string;
  /** canonical CIDR, e.g. 10.0.0.2/32 or fd00::2/128 */
  cidr: string;
  family: 4 | 6;
}

export type RouteType = 'unicast' | 'unreachable' | 'blackhole' | 'throw';
/** the kernel stores an IPv6 route's metric 0 as 1024; desire what it will report */
export const V6_DEFAULT_METRIC = 1024;
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
  /**
   * macOS only: the interface scope (`route -ifscope`), a link name resolved like `dev`. The
   * route then serves only sockets bound to that interface (IP_BOUND_IF), the way a Linux
   * per-tunnel table serves only marked traffic; `table` carries that tunnel's table number.
   */
  ifscope?: string;
}

export interface RuleSpec {
  family: 4 | 6;
  priority: number;
  /** `fwmark value/mask` selector */
  fwmark?: number;
  fwmask?: number;
  /**
   * `iif` selector: `lo` selects locally generated packets only (the kernel's output route
   * lookups carry the loopback device as their input interface; forwarded ones their own)
   */
  iif?: string;
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
  /**
   * Kill switch on: the table the early unit loads at boot, before any network is configured
   * (normalised like `ruleset`): the kill switch without what needs the running daemon (per-app
   * cgroup rules, the default tunnel's marks). Persisted next to the state (Linux:
   * `<state>/killswitch-boot.nft`); absent when the kill switch is off.
   */
  boot?: string;
}

export interface SysctlSpec {
  key: string;
  value: string;
}

export interface DnsSpec {
  /** link the servers are attached to, or `system` for the global resolver */
  scope: string;
  servers: string[];
  /** search domains; `~name` routes queries under `name` without searching it (`~.`: every query) */
  domains: string[];
  /**
   * systemd-resolved only (a link scope): whether the link is one of resolved's default routes,
   * i.e. gets the queries no routing domain claims. Absent: resolved's own heuristic (yes
   * unless the link has routing-only domains).
   */
  defaultRoute?: boolean;
}

export interface CgroupSpec {
  /** path below the cgroup v2 root, e.g. `awg/work` */
  path: string;
}

export interface ServiceSpec {
  name: string;
  unitText: string;
}

/**
 * AmneziaWG obfuscation as configured (ranges in the config's forms), the header protection
 * key replaced by its fingerprint.
 */
export type EngineObfuscation = Omit<AwgObfuscation, 'headerProtectionKey'> & {
  headerProtectionKey?: string;
};

/** One peer of a WireGuard/AmneziaWG engine, UAPI-shaped; keys in base64. */
export interface WgEnginePeer {
  publicKey: string;
  /** fingerprint of the preshared key; null: none */
  presharedKey: string | null;
  /** `host:port` or `[v6]:port` as configured (not as roamed) */
  endpoint: string | null;
  /** canonical CIDRs */
  allowedIPs: string[];
  /**
   * seconds; 0 = off. AmneziaWG 3.x: `"MIN-MAX"`, an interval drawn from it each time the
   * timer is armed (config/keepalive.ts; a one-value range is its number)
   */
  persistentKeepalive: KeepaliveSpec;
}

export interface WgEngineConfig {
  /** fingerprint of the private key (`none`: a live engine without one) */
  privateKey: string;
  /** 0 = random */
  listenPort: number;
  /** mark of the engine's own UDP (the bypass mark) */
  fwmark: number;
  peers: WgEnginePeer[];
  /** amneziawg only */
  obfuscation?: EngineObfuscation;
}

/** A proxy engine: the transparent proxy towards an upstream SOCKS5/HTTP proxy. */
export interface ProxyEngineConfig {
  server: string;
  port: number;
  /** local listener whose failed dials fail the connection */
  redirectPort: number;
  /** local listener whose failed dials redial direct (`fallback: allow-direct`) */
  redirectPortDirect: number;
  /** mark of every socket towards the proxy (the bypass mark) */
  fwmark: number;
  dns: string[];
  /** password: fingerprint of the secret */
  auth: { username: string; password: string } | null;
  /** socks5 only: the apps' UDP (and DNS) through UDP ASSOCIATE */
  udp?: boolean;
  /** http only: TLS to the proxy */
  tls?: boolean;
}

/**
 * Who runs a WireGuard/AmneziaWG tunnel, when not our embedded engine: `kernel` (Linux's
 * module behind a `wireguard` link, generic netlink) or an external UAPI engine (`path -f
 * <link>`, its socket `<uapiDir>/<link>.sock`).
 */
export type EngineHostSpec = 'kernel' | { external: string; uapiDir: string };

export interface WgEngineSpec {
  tunnel: string;
  type: 'wireguard' | 'amneziawg';
  /** the link the engine serves: the persistent TUN (userspace engines), the `wireguard` link (kernel) */
  link: string;
  /** absent: the embedded engine (so specs and plans of configs without `engine:` are as before) */
  engine?: EngineHostSpec;
  config: WgEngineConfig;
}

export interface ProxyEngineSpec {
  tunnel: string;
  type: 'socks5' | 'http';
  link?: undefined;
  config: ProxyEngineConfig;
}

/**
 * Desired state of one userspace tunnel engine, discriminated by `type` (built by
 * model/engine.ts). Secrets appear only as fingerprints.
 */
export type EngineSpec = WgEngineSpec | ProxyEngineSpec;

export function isProxyEngine(spec: EngineSpec): spec is ProxyEngineSpec {
  return spec.type === 'socks5' || spec.type === 'http';
}

/** Which host serves an engine spec: the embedded engine (and proxies), the kernel, an external program. */
export type EngineKind = 'embedded' | 'kernel' | 'external';

export function engineKindOf(spec: EngineSpec): EngineKind {
  if (isProxyEngine(spec) || spec.engine === undefined) return 'embedded';
  return spec.engine === 'kernel' ? 'kernel' : 'external';
}

export interface SpecByKind {
  link: LinkSpec;
  shaper: ShaperSpec;
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
  /**
   * A conflict made by another awg state directory (its owner tag, resources/owner-lock.ts):
   * while one is here, nothing is applied or removed (those objects' routes and rules carry
   * no tag of their own, and its saved originals are in that directory).
   */
  owner?: string;
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
