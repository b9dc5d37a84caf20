/**
 * Host names of peer endpoints and proxy servers → addresses, in a way that still works
 * under the kill switch and across restarts of the daemon.
 *
 * Under the kill switch the nft table drops everything the system resolver sends
 * (getaddrinfo's sockets carry no mark), and the table outlives the daemon: a daemon that
 * restarts with a host-name endpoint could never learn its address again. So a name is
 * looked up, in this order:
 * 1. the system resolver (getaddrinfo: /etc/hosts, nsswitch, the configured servers), bounded
 *    to a few seconds;
 * 2. directly, with the bypass mark on the query sockets (native/dns-client.ts), at the host's
 *    own resolvers (`hostResolvers`: resolv.conf as it was before awg changed it, without the
 *    tunnels' servers); the kill switch admits bypass-marked DNS to exactly these
 *    (FirewallPolicy.bypassResolvers);
 * 3. the last good answer, kept in memory and in the state directory
 *    (`resolved-endpoints.json`, written durably: temp file, fsync, rename, fsync of the
 *    directory), so a restarted daemon starts from what worked before the crash.
 * A failed lookup never takes a known address away: the kill switch keeps admitting the
 * endpoint and the tunnel keeps working while DNS is unreachable.
 */
import { lookup } from 'node:dns/promises';
import { readFile, readlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { ENDPOINT_RE, isWgLike, type Config } from '../config/schema.js';
import { parseCidr } from '../config/cidr.js';
import type { StateStore } from '../util/state.js';
import type { Resolver } from '../dataplane/device/resolver.js';
import { DNS_STATE_KEY, type StaticBackup } from './dns/linux.js';
import { parseManagedResolvConf, parseNameservers } from './dns/parse.js';

/** state key (file `resolved-endpoints.json`) of the last good answers */
export const ENDPOINTS_STATE_KEY = 'resolved-endpoints';
/** where systemd-resolved lists the servers its stub forwards to */
export const RESOLVED_UPSTREAM = '/run/systemd/resolve/resolv.conf';
const MAX_HOSTS = 256;
const MAX_FILE = 64 * 1024;

export interface EndpointCacheFile {
  version: 1;
  /** the host's resolvers the direct lookups go to (the last probe's `hostResolvers`) */
  resolvers: string[];
  hosts: Record<string, { addresses: string[]; at: string }>;
}

export type ResolvedVia = 'system' | 'direct' | 'last-good';

export interface Resolution {
  addresses: string[];
  via?: ResolvedVia;
  /** why the live lookups failed (when `via` is `last-good` or nothing was found) */
  error?: string;
}

export interface EndpointResolverOptions {
  /** where the last good answers persist; none: this process's memory only */
  state?: StateStore;
  /** write them there (default true with a state store); a detached engine only reads */
  persist?: boolean;
  /** the system resolver (default getaddrinfo through node:dns) */
  system?: (host: string) => Promise<string[]>;
  /** a direct lookup at `servers` with SO_MARK `mark` (default native/dns-client.ts) */
  direct?: (host: string, servers: string[], mark: number) => Promise<string[]>;
  /** bound on the system resolver (default 3000 ms; a tunnel that swallows its queries would hold it for 10 s) */
  systemTimeoutMs?: number;
}

const systemLookup = async (host: string): Promise<string[]> =>
  (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

const directLookup = async (host: string, servers: string[], mark: number): Promise<string[]> => {
  const { resolveDirect } = await import('../native/dns-client.js');
  return resolveDirect(host, { servers, mark });
};

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

const validAddrs = (v: unknown): string[] | undefined =>
  Array.isArray(v) &&
  v.length <= 64 &&
  v.every((a) => typeof a === 'string' && isIP(a) !== 0 && !a.includes('%'))
    ? (v as string[])
    : undefined;

export class EndpointResolver {
  private readonly hosts = new Map<string, { addresses: string[]; at: string }>();
  private resolvers: string[] = [];
  private loaded = false;
  /** the last load of the state file failed: why (reported once by the caller, then cleared) */
  loadError: string | undefined;

  constructor(private readonly o: EndpointResolverOptions = {}) {}

  /** whether new answers are written to the state directory (see EndpointResolverOptions.persist) */
  setPersist(persist: boolean): void {
    this.o.persist = persist;
  }

  /** the host's resolvers the direct lookups ask (set from each facts probe; persisted) */
  get servers(): string[] {
    this.load();
    return [...this.resolvers];
  }

  setServers(list: string[]): void {
    this.load();
    if (list.length === this.resolvers.length && list.every((s, i) => s === this.resolvers[i]))
      return;
    this.resolvers = [...list];
    this.save();
  }

  /** the last good addresses of `host` (memory, else the state directory) */
  lastGood(host: string): string[] | undefined {
    this.load();
    return this.hosts.get(host)?.addresses;
  }

  /**
   * The addresses of `host` now: the system resolver, else a direct lookup with `mark`
   * (when given and there are servers), else the last good ones. Never rejects; `addresses`
   * is empty when nothing is known.
   */
  async resolve(host: string, opts: { mark?: number } = {}): Promise<Resolution> {
    this.load();
    const errors: string[] = [];
    try {
      const a = (
        await withTimeout(
          (this.o.system ?? systemLookup)(host),
          this.o.systemTimeoutMs ?? 3000,
          'system resolver',
        )
      ).filter((x) => isIP(x) !== 0);
      if (a.length) return { addresses: this.remember(host, a), via: 'system' };
      errors.push('system resolver: no address');
    } catch (e) {
      errors.push(`system resolver: ${(e as Error).message}`);
    }
    if (opts.mark !== undefined && this.resolvers.length) {
      try {
        const a = (await (this.o.direct ?? directLookup)(host, this.resolvers, opts.mark)).filter(
          (x) => isIP(x) !== 0,
        );
        if (a.length) return { addresses: this.remember(host, a), via: 'direct' };
        errors.push('direct: no address');
      } catch (e) {
        errors.push(`direct: ${(e as Error).message}`);
      }
    }
    const last = this.hosts.get(host);
    return last
      ? { addresses: [...last.addresses], via: 'last-good', error: errors.join('; ') }
      : { addresses: [], error: errors.join('; ') };
  }

  /** `resolve` for each host, concurrently: host → sorted addresses */
  async resolveAll(
    hosts: Iterable<string>,
    opts: { mark?: number } = {},
  ): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    await Promise.all(
      [...new Set(hosts)].map(
        async (h) => (out[h] = [...(await this.resolve(h, opts)).addresses].sort()),
      ),
    );
    return out;
  }

  private remember(host: string, addresses: string[]): string[] {
    const prev = this.hosts.get(host);
    const same =
      prev &&
      prev.addresses.length === addresses.length &&
      prev.addresses.every((a, i) => a === addresses[i]);
    this.hosts.delete(host); // re-insert: the map's order is the eviction order
    this.hosts.set(host, {
      addresses: [...addresses],
      at: same ? prev.at : new Date().toISOString(),
    });
    while (this.hosts.size > MAX_HOSTS) this.hosts.delete(this.hosts.keys().next().value!);
    if (!same) this.save();
    return addresses;
  }

  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    const st = this.o.state;
    if (!st) return;
    let f: EndpointCacheFile | undefined;
    try {
      f = st.get<EndpointCacheFile>(ENDPOINTS_STATE_KEY);
    } catch (e) {
      this.loadError = `${join(st.dir, `${ENDPOINTS_STATE_KEY}.json`)} cannot be read (${(e as Error).message}): ignored, and replaced by the next answers`;
      return;
    }
    if (!f || typeof f !== 'object' || f.version !== 1) return;
    this.resolvers = validAddrs(f.resolvers)?.slice(0, 3) ?? [];
    if (f.hosts && typeof f.hosts === 'object')
      for (const [h, v] of Object.entries(f.hosts).slice(0, MAX_HOSTS)) {
        const addresses = validAddrs(v?.addresses);
        if (addresses?.length && h.length <= 253)
          this.hosts.set(h, { addresses, at: typeof v.at === 'string' ? v.at.slice(0, 40) : '' });
      }
  }

  private save(): void {
    const st = this.o.state;
    if (!st || this.o.persist === false) return;
    const f: EndpointCacheFile = {
      version: 1,
      resolvers: this.resolvers,
      hosts: Object.fromEntries(this.hosts),
    };
    try {
      // the state store writes crash-safely (temp file, fsync, rename, fsync of the directory)
      st.set(ENDPOINTS_STATE_KEY, f);
    } catch {
      /* a read-only state directory: the answers stay in memory */
    }
  }
}

const shared = new Map<string, EndpointResolver>();
const sharedMemory = new WeakMap<StateStore, EndpointResolver>();

/**
 * The resolver of this process for `state`'s directory: the daemon's facts probe and the
 * engines it hosts share one, so they agree on the last good answers. `persist` (set by the
 * facts probe: apply and the daemon write, diff only reads) sticks.
 */
export function endpointResolverFor(
  state: StateStore | undefined,
  persist?: boolean,
): EndpointResolver {
  let r: EndpointResolver | undefined;
  if (!state) r = shared.get('') ?? shared.set('', new EndpointResolver()).get('')!;
  else if (state.dir === ':memory:') {
    r = sharedMemory.get(state);
    if (!r) sharedMemory.set(state, (r = new EndpointResolver({ state })));
  } else {
    const key = resolvePath(state.dir);
    r = shared.get(key);
    if (!r) shared.set(key, (r = new EndpointResolver({ state })));
  }
  if (persist !== undefined) r.setPersist(persist);
  return r;
}

/** Host names (not literals) among the config's peer endpoints and proxy servers. */
export function endpointHosts(config: Config | undefined): string[] {
  const hosts = new Set<string>();
  for (const t of Object.values(config?.tunnels ?? {})) {
    if (isWgLike(t)) {
      for (const p of t.peers) {
        const m = p.endpoint ? ENDPOINT_RE.exec(p.endpoint) : null;
        if (m?.[2] && !parseCidr(m[2])) hosts.add(m[2]);
      }
    } else if (!parseCidr(t.server)) hosts.add(t.server);
  }
  return [...hosts].sort();
}

async function readCapped(path: string): Promise<string | undefined> {
  try {
    const b = await readFile(path);
    return b.subarray(0, MAX_FILE).toString('utf8');
  } catch {
    return undefined;
  }
}

export interface HostResolverOptions {
  env?: NodeJS.ProcessEnv;
  /** for the original of a resolv.conf that awg rewrote (`dns-static-backup`) */
  state?: StateStore;
  /** never these (the tunnels' own servers: they are reached through a tunnel) */
  exclude?: string[];
  /** systemd-resolved's upstream list (tests) */
  resolvedUpstream?: string;
}

/**
 * The host's own DNS servers, as the system used them before awg: resolv.conf
 * (AWG_RESOLV_CONF moves it), or its original in the state directory when awg rewrote it
 * (`dns.system: default-tunnel` with a static resolv.conf), or systemd-resolved's upstream
 * servers when resolv.conf points at its stub (the stub's own queries are unmarked and
 * dropped under the kill switch). At most 3, without `exclude`.
 */
export async function hostResolvers(o: HostResolverOptions = {}): Promise<string[]> {
  const env = o.env ?? process.env;
  const path = env.AWG_RESOLV_CONF || '/etc/resolv.conf';
  let text = await readCapped(path);
  if (text !== undefined && parseManagedResolvConf(text)) {
    let b: StaticBackup | undefined;
    try {
      b = o.state?.get<StaticBackup>(DNS_STATE_KEY);
    } catch {
      b = undefined;
    }
    if (b?.kind === 'file')
      text = Buffer.from(b.content, 'base64').subarray(0, MAX_FILE).toString('utf8');
    else if (b?.kind === 'symlink') text = await readCapped(resolvePath(dirname(path), b.target));
    else text = undefined;
  }
  const link = await readlink(path).catch(() => '');
  const stub =
    link.includes('/run/systemd/resolve/') ||
    /^\s*nameserver\s+127\.0\.0\.53\s*$/m.test(text ?? '');
  if (stub) text = (await readCapped(o.resolvedUpstream ?? RESOLVED_UPSTREAM)) ?? text;
  const exclude = new Set(
    (o.exclude ?? []).map((a) => parseNameservers(`nameserver ${a}`)[0] ?? a),
  );
  return parseNameservers(text ?? '', 16)
    .filter((a) => !exclude.has(a))
    .slice(0, 3);
}

/** Every tunnel's own DNS servers (excluded from the host's). */
export function tunnelResolvers(config: Config | undefined): string[] {
  return Object.values(config?.tunnels ?? {}).flatMap((t) => t.dns);
}

/**
 * The data plane's Resolver over `r`: an engine re-resolving a peer's host name asks the same
 * chain, with its own fwmark (the bypass mark) on direct lookups.
 */
export function engineResolver(r: EndpointResolver): Resolver {
  return {
    async resolve(host, ctx) {
      const res = await r.resolve(host, ctx?.mark ? { mark: ctx.mark } : {});
      if (!res.addresses.length) throw new Error(res.error ?? 'no address');
      return res.addresses;
    },
  };
}
