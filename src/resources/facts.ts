/** Host facts the desired model and its realisation depend on, probed cheaply before planning. */
import { access, constants, stat } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseCidr } from '../config/cidr.js';
import { BAND_SIZE, ENDPOINT_RE, isWgLike, type Config, type Rule } from '../config/schema.js';
import { identityNames, parsePasswd, type IdentityFacts } from '../model/who.js';
import type { HostFacts } from '../model/desired.js';
import { allocate } from '../model/alloc.js';
import type { StateStore } from '../util/state.js';
import { nftBaseOf, parseCgroup2Mount } from './cgroup/parse.js';
import { endpointHosts, endpointResolverFor, hostResolvers, tunnelResolvers } from './endpoints.js';
import type { DnsDriverLike } from './facts-types.js';
import type { Exec } from '../util/exec.js';
import { LINK_PREFIX } from '../config/schema.js';
import { defaultRouteOf, defaultRouteOfRows } from './route/parse.js';
import { linuxWifiSsid } from './wifi.js';
import { routeGetError, unroutedOf, unroutedOfRows, type RoutingBand } from './route/reach.js';
import type { RoutingReader } from './route/probe-netlink.js';
import { runsOnHost } from './prefetch.js';
import type { RoutingFacts, UnreachableEndpoint } from '../model/unrouted.js';

export interface EndpointProbeOptions {
  /** the state directory: last good answers (endpoints.ts), the original resolv.conf */
  state?: StateStore;
  /** keep new answers there (apply, the daemon); `diff` only reads them */
  persist?: boolean;
  env?: NodeJS.ProcessEnv;
  /** SO_MARK for direct lookups (Linux: the bypass mark); none: the system resolver and the last good answers only */
  mark?: number;
}

/**
 * Endpoint and proxy host names of the config → their addresses now, through the resolver
 * of endpoints.ts (system resolver, then a bypass-marked direct lookup, then the last good
 * answer, which a failed lookup never takes away).
 */
export async function resolveEndpoints(
  config: Config | undefined,
  o: EndpointProbeOptions = {},
): Promise<Record<string, string[]>> {
  const hosts = endpointHosts(config);
  if (!hosts.length) return {};
  const r = endpointResolverFor(o.state, o.persist);
  return r.resolveAll(hosts, o.mark !== undefined ? { mark: o.mark } : {});
}

/**
 * Linux: where cgroup v2 is mounted (nft resolves `socket cgroupv2` paths relative to
 * /sys/fs/cgroup), the endpoints' addresses, the host's own resolvers and the DNS manager.
 */
export async function probeLinuxFacts(
  config?: Config,
  dns?: DnsDriverLike,
  o: Omit<EndpointProbeOptions, 'mark'> & { exec?: Pick<Exec, 'read'> } = {},
): Promise<HostFacts> {
  const facts: HostFacts = { cgroupNftPrefix: '', cgroupRootDepth: 0 };
  // the routes and rules read in this process when `exec` runs on this host: one socket, each
  // family's routes dumped once for the default routes and the routing probe below
  const routed = config && (Object.keys(config.tunnels).length || config.rules.length);
  const reader = o.exec && routed ? await routingReader(o.exec) : undefined;
  try {
    return await probeWith(facts, reader, config, dns, o);
  } finally {
    reader?.close();
  }
}

async function probeWith(
  facts: HostFacts,
  reader: RoutingReader | undefined,
  config: Config | undefined,
  dns: DnsDriverLike | undefined,
  o: Omit<EndpointProbeOptions, 'mark'> & { exec?: Pick<Exec, 'read'> },
): Promise<HostFacts> {
  // the uplinks limits shape: wherever tunnels or rules exist (`awg limit` may add limits at run time)
  if (o.exec && config && (Object.keys(config.tunnels).length || config.rules.length)) {
    Object.assign(facts, await linuxDefaultRoutes(o.exec, reader));
    // a Wi-Fi uplink's SSID: part of the network's identity (daemon/profile-switch.ts)
    const dev = (facts.defaultRouteV4 ?? facts.defaultRouteV6)?.interface;
    const ssid = dev ? await linuxWifiSsid(o.exec, dev) : undefined;
    if (dev && ssid) facts.wifi = { interface: dev, ssid };
  }
  try {
    const m = parseCgroup2Mount(await readFile('/proc/self/mountinfo', 'utf8'));
    if (m) {
      const base = nftBaseOf(m);
      // the facts are kept in the state directory: a prefix nft cannot use is left out
      if (base.nftPrefix !== undefined) facts.cgroupNftPrefix = base.nftPrefix;
      else delete facts.cgroupNftPrefix;
      facts.cgroupRootDepth = base.rootDepth;
      facts.cgroupMountPoint = m.mountPoint;
    }
  } catch {
    /* no procfs: no cgroup facts */
  }
  if (config) Object.assign(facts, await probeIdentityFacts(config.rules, o.exec));
  if (endpointHosts(config).length) {
    // the host's own resolvers: where the direct lookups go, and what the kill switch admits
    // bypass-marked DNS to (FirewallPolicy.bypassResolvers)
    const servers = await hostResolvers({
      ...(o.env ? { env: o.env } : {}),
      ...(o.state ? { state: o.state } : {}),
      exclude: tunnelResolvers(config),
    });
    facts.hostResolvers = servers;
    const resolver = endpointResolverFor(o.state, o.persist);
    resolver.setServers(servers);
    if (resolver.loadError) {
      facts.probeWarnings = [resolver.loadError];
      resolver.loadError = undefined;
    }
    const mark = bypassMarkOf(config!);
    facts.resolved = await resolveEndpoints(config, {
      ...o,
      ...(mark !== undefined ? { mark } : {}),
    });
  } else facts.resolved = {};
  if (o.exec && config && Object.keys(config.tunnels).length) {
    const mark = bypassMarkOf(config);
    const resolved = facts.resolved;
    const endpoints = endpointTargets(configEndpointHosts(config), (h) => resolved?.[h]);
    if (mark !== undefined)
      Object.assign(
        facts,
        await linuxRouting(
          o.exec,
          {
            band: { ...config.routing, bandSize: BAND_SIZE },
            families: routingFamilies(config.ipv6 === 'tunnel', endpoints),
            bypassMark: mark,
            endpoints,
            defaults: facts,
          },
          reader,
        ),
      );
  }
  const engines = await probeLinuxEngines(config);
  if (engines) facts.engineProblems = engines;
  try {
    const dnsManager = dns ? await dns.manager() : undefined;
    if (dnsManager) facts.dnsManager = dnsManager;
  } catch {
    /* unknown: per-link DNS is not planned */
  }
  return facts;
}

/** the engines' bypass mark; undefined when the config's marks do not allocate (buildDesired reports it) */
function bypassMarkOf(config: Config): number | undefined {
  try {
    return allocate(config).bypassMark;
  } catch {
    return undefined;
  }
}

/** An endpoint address of a tunnel: a peer's or a proxy's, literal or resolved. */
export interface EndpointTarget {
  tunnel: string;
  /** as configured: an address or a host name */
  host: string;
  address: string;
}

/** the host of a peer's `host:port` / `[v6]:port` endpoint */
export function endpointHost(endpoint: string): string | undefined {
  const m = ENDPOINT_RE.exec(endpoint);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** each tunnel's endpoint hosts (its peers', a proxy's server) → their addresses: a literal, or `addressesOf(host)` */
export function endpointTargets(
  hosts: readonly { tunnel: string; host: string }[],
  addressesOf: (host: string) => readonly string[] | undefined,
): EndpointTarget[] {
  return hosts.flatMap(({ tunnel, host }) =>
    (parseCidr(host) ? [host] : (addressesOf(host) ?? [])).map((address) => ({
      tunnel,
      host,
      address,
    })),
  );
}

/** the config's endpoint hosts by tunnel */
function configEndpointHosts(config: Config): { tunnel: string; host: string }[] {
  return Object.entries(config.tunnels).flatMap(([tunnel, t]) =>
    (isWgLike(t) ? t.peers.map((p) => p.endpoint && endpointHost(p.endpoint)) : [t.server])
      .filter((host): host is string => Boolean(host))
      .map((host) => ({ tunnel, host })),
  );
}

export interface RoutingProbe {
  band: RoutingBand;
  /** the families to look at: IPv4, IPv6 where it is tunnelled or an endpoint has an IPv6 address */
  families: readonly (4 | 6)[];
  /** what `ip route get` of the endpoints carries: the engines' sockets' mark */
  bypassMark: number;
  endpoints: readonly EndpointTarget[];
  /** main's unicast default routes, when already read (linuxDefaultRoutes): a family with one is routed */
  defaults?: Pick<HostFacts, 'defaultRouteV4' | 'defaultRouteV6'>;
}

/** IPv4 always; IPv6 where it is tunnelled or an endpoint is an IPv6 address (elsewhere its routes matter to nobody) */
export function routingFamilies(
  v6Tunnelled: boolean,
  endpoints: readonly EndpointTarget[],
): (4 | 6)[] {
  return v6Tunnelled || endpoints.some((e) => isIP(e.address) === 6) ? [4, 6] : [4];
}

/**
 * A reader of this host's routes and rules in this process (route/probe-netlink.ts) when
 * `exec` runs its commands on this host; undefined otherwise, or when no netlink socket opens
 * (the `ip` processes then).
 */
export async function routingReader(exec: Pick<Exec, 'read'>): Promise<RoutingReader | undefined> {
  if (!runsOnHost(exec)) return undefined;
  try {
    return (await import('./route/probe-netlink.js')).routingReader(exec);
  } catch {
    return undefined;
  }
}

/** a reader of our own when none is given (closed after), or `exec`'s processes */
async function withReader<T>(
  exec: Pick<Exec, 'read'>,
  given: RoutingReader | undefined,
  nl: (r: RoutingReader) => T,
  ip: () => Promise<T>,
): Promise<T> {
  const r = given ?? (await routingReader(exec));
  if (!r) return ip();
  try {
    return nl(r);
  } finally {
    if (!given) r.close();
  }
}

/**
 * Linux: the families in which this host routes nowhere beyond the main table's prefixes
 * (route/reach.ts), and in those, the endpoints the engines' bypass-marked sockets have no
 * route to (`ip route get ADDR mark M`: the kernel's own answer, awg's rules included). A
 * listing that fails leaves its family out: nothing is added for what was not seen. Read
 * over netlink when `exec` runs on this host (`reader`, or one of its own), else by `ip`.
 */
export async function linuxRouting(
  exec: Pick<Exec, 'read'>,
  o: RoutingProbe,
  reader?: RoutingReader,
): Promise<RoutingFacts> {
  return withReader(
    exec,
    reader,
    (r) => netlinkRouting(r, o),
    () => ipRouting(exec, o),
  );
}

/** `linuxRouting` read through a RoutingReader: the same listings, as rows */
export function netlinkRouting(r: RoutingReader, o: RoutingProbe): RoutingFacts {
  const out: RoutingFacts = {};
  for (const f of o.families) {
    if (o.defaults?.[`defaultRouteV${f}`]) continue;
    try {
      const u = unroutedOfRows(
        { defaults: r.defaultsJson(f), rules: r.rulesJson(f), main: r.mainJson(f) },
        f,
        o.band,
        LINK_PREFIX,
      );
      if (u) (out.unrouted ??= {})[`v${f}`] = u;
    } catch {
      /* a listing failed: nothing is known */
    }
  }
  const found: UnreachableEndpoint[] = [];
  for (const e of o.endpoints) {
    const f = isIP(e.address) === 6 ? 6 : 4;
    if (!out.unrouted?.[`v${f}`]) continue;
    const reason = r.routeGet(e.address, o.bypassMark);
    if (reason !== undefined) found.push({ ...e, reason });
  }
  if (found.length) out.unreachableEndpoints = found;
  return out;
}

/** `linuxRouting` by `ip` processes through `exec` */
export async function ipRouting(exec: Pick<Exec, 'read'>, o: RoutingProbe): Promise<RoutingFacts> {
  const out: RoutingFacts = {};
  const ip = (f: 4 | 6, args: string[]) => exec.read('ip', [`-${f}`, ...args], { allowFail: true });
  await Promise.all(
    o.families.map(async (f) => {
      if (o.defaults?.[`defaultRouteV${f}`]) return;
      const [defaults, rules, main] = await Promise.all([
        ip(f, ['-j', '-N', 'route', 'show', 'table', 'all', 'exact', f === 4 ? '0/0' : '::/0']),
        ip(f, ['-j', '-N', 'rule', 'show']),
        ip(f, ['-j', '-N', 'route', 'show', 'table', 'main']),
      ]);
      if (defaults.code !== 0 || rules.code !== 0 || main.code !== 0) return;
      try {
        const u = unroutedOf(
          { defaults: defaults.stdout, rules: rules.stdout, main: main.stdout },
          f,
          o.band,
          LINK_PREFIX,
        );
        if (u) (out.unrouted ??= {})[`v${f}`] = u;
      } catch {
        /* not JSON: nothing is known */
      }
    }),
  );
  const mark = `0x${(o.bypassMark >>> 0).toString(16)}`;
  const unreachable = await Promise.all(
    o.endpoints.map(async (e): Promise<UnreachableEndpoint | undefined> => {
      const f = isIP(e.address) === 6 ? 6 : 4;
      if (!out.unrouted?.[`v${f}`]) return undefined;
      const r = await ip(f, ['route', 'get', e.address, 'mark', mark]);
      return r.code === 0 ? undefined : { ...e, reason: routeGetError(r.stderr) };
    }),
  );
  const found = unreachable.filter((e): e is UnreachableEndpoint => e !== undefined);
  if (found.length) out.unreachableEndpoints = found;
  return out;
}

type DefaultRoutes = Pick<HostFacts, 'defaultRouteV4' | 'defaultRouteV6'>;

/**
 * The main table's default routes (their interfaces are the uplinks limits shape), over
 * netlink when `exec` runs on this host (`reader`, or one of its own), else by `ip`.
 */
export async function linuxDefaultRoutes(
  exec: Pick<Exec, 'read'>,
  reader?: RoutingReader,
): Promise<DefaultRoutes> {
  return withReader(
    exec,
    reader,
    (r) => netlinkDefaultRoutes(r),
    () => ipDefaultRoutes(exec),
  );
}

/** `linuxDefaultRoutes` read through a RoutingReader */
export function netlinkDefaultRoutes(r: RoutingReader): DefaultRoutes {
  const out: DefaultRoutes = {};
  for (const f of [4, 6] as const) {
    try {
      const d = defaultRouteOfRows(r.mainDefaultsJson(f), LINK_PREFIX);
      if (d) out[`defaultRouteV${f}`] = d;
    } catch {
      /* not read: none */
    }
  }
  return out;
}

/** `linuxDefaultRoutes` by `ip` processes through `exec` */
export async function ipDefaultRoutes(exec: Pick<Exec, 'read'>): Promise<DefaultRoutes> {
  const out: DefaultRoutes = {};
  await Promise.all(
    ([4, 6] as const).map(async (f) => {
      const r = await exec.read(
        'ip',
        ['-j', '-N', `-${f}`, 'route', 'show', 'table', 'main', 'default'],
        {
          allowFail: true,
        },
      );
      const d = r.code === 0 ? defaultRouteOf(r.stdout, LINK_PREFIX) : undefined;
      if (d) out[`defaultRouteV${f}`] = d;
    }),
  );
  return out;
}

/** The engines other than our own that the config names: the kernel's, external programs. */
export function enginesNamed(config: Config | undefined): { kernel: boolean; external: string[] } {
  const external = new Set<string>();
  let kernel = false;
  for (const t of Object.values(config?.tunnels ?? {})) {
    if (!isWgLike(t) || t.engine === undefined || t.engine === 'embedded') continue;
    if (t.engine === 'kernel') kernel = true;
    else external.add(t.engine.external);
  }
  return { kernel, external: [...external].sort() };
}

/** What keeps `path` from being started as an engine: missing, not a regular file, not executable. */
export async function externalProgramProblem(path: string): Promise<string | undefined> {
  try {
    const st = await stat(path);
    if (!st.isFile())
      return `${path} is not a regular file (${st.isDirectory() ? 'a directory' : 'a special file'})`;
    await access(path, constants.X_OK);
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${path} does not exist`;
    if (code === 'EACCES') return `${path} is not executable`;
    return `${path}: ${(e as Error).message}`;
  }
}

/**
 * Linux: whether the kernel's WireGuard module is there (asked of generic netlink, which
 * loads an installed module; nothing is created) and each external program can be started.
 * Undefined when the config names only our engine.
 */
export async function probeLinuxEngines(
  config: Config | undefined,
): Promise<HostFacts['engineProblems']> {
  const named = enginesNamed(config);
  if (!named.kernel && !named.external.length) return undefined;
  const out: NonNullable<HostFacts['engineProblems']> = {};
  if (named.kernel) {
    let why: string | undefined;
    try {
      why = (await import('../native/wg-kernel.js')).kernelWireguardProblem();
    } catch (e) {
      why = (e as Error).message;
    }
    if (why)
      out.kernel = `kernel needs Linux's WireGuard module (modprobe wireguard); this kernel has none (${why})`;
  }
  for (const path of named.external) {
    const why = await externalProgramProblem(path);
    if (why) (out.external ??= {})[path] = `${why}: an external engine must be an executable file`;
  }
  return out;
}

/** systemd runs as init (sd_booted(3): /run/systemd/system exists) */
async function systemdBooted(): Promise<boolean> {
  try {
    return (await stat('/run/systemd/system')).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Linux: what identity rules name (model/who.ts): the uids of their user names (/etc/passwd;
 * a name missing here is reported when planning), and the cgroups of their units as systemd
 * reports them (`systemctl show -p ControlGroup`; a unit that is not running has none yet:
 * the default `/system.slice/<unit>` applies).
 */
export async function probeIdentityFacts(
  rules: readonly Rule[],
  exec?: Pick<Exec, 'read'>,
  passwdFile = '/etc/passwd',
): Promise<IdentityFacts> {
  const { users, units } = identityNames(rules);
  const out: IdentityFacts = {};
  if (users.length) {
    let all: Record<string, number> = {};
    try {
      all = parsePasswd(await readFile(passwdFile, 'utf8'));
    } catch {
      /* unreadable: every name is unknown */
    }
    const known: Record<string, number> = {};
    for (const u of users) if (Object.hasOwn(all, u)) known[u] = all[u]!;
    out.users = known;
  }
  if (units.length && exec && (await systemdBooted())) {
    const cgroups: Record<string, string> = {};
    for (const unit of units) {
      const r = await exec.read('systemctl', ['show', '-p', 'ControlGroup', '--value', unit], {
        allowFail: true,
      });
      const path = r.code === 0 ? r.stdout.trim() : '';
      if (path.startsWith('/') && path !== '/') cgroups[unit] = path;
    }
    if (Object.keys(cgroups).length) out.unitCgroups = cgroups;
  }
  return out;
}
