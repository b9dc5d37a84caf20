/** Host facts the desired model and its realisation depend on, probed cheaply before planning. */
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { ENDPOINT_RE, isWgLike, type Config } from '../config/schema.js';
import { parseCidr } from '../config/cidr.js';
import type { HostFacts } from '../model/desired.js';
import { nftBaseOf, parseCgroup2Mount } from './cgroup/parse.js';
import type { DnsDriverLike } from './facts-types.js';

/**
 * Last successful resolution per host name, for this process's lifetime (the daemon's).
 * Under the kill switch or DNS leak protection the daemon's own lookups may be dropped
 * (getaddrinfo's sockets carry no bypass mark); a failed re-resolution must not take the
 * endpoint out of the kill switch's allowed set and cut a working tunnel.
 */
const lastResolved = new Map<string, string[]>();

/** Endpoint host names of the config → their addresses now (the last good ones when a lookup fails). */
export async function resolveEndpoints(config: Config | undefined): Promise<Record<string, string[]>> {
  const resolved: Record<string, string[]> = {};
  if (!config) return resolved;
  const hosts = new Set<string>();
  for (const t of Object.values(config.tunnels)) {
    if (isWgLike(t)) for (const p of t.peers) {
      const m = p.endpoint ? ENDPOINT_RE.exec(p.endpoint) : null;
      if (m?.[2] && !parseCidr(m[2])) hosts.add(m[2]);
    }
    else if (!parseCidr(t.server)) hosts.add(t.server);
  }
  await Promise.all(
    [...hosts].map(async (h) => {
      try {
        resolved[h] = (await lookup(h, { all: true, verbatim: true })).map((a) => a.address).sort();
        lastResolved.set(h, resolved[h]);
      } catch {
        resolved[h] = lastResolved.get(h) ?? [];
      }
    }),
  );
  return resolved;
}

/**
 * Linux: where cgroup v2 is mounted (nft resolves `socket cgroupv2` paths relative to
 * /sys/fs/cgroup), the endpoints' addresses and the DNS manager.
 */
export async function probeLinuxFacts(config?: Config, dns?: DnsDriverLike): Promise<HostFacts> {
  const facts: HostFacts = { cgroupNftPrefix: '', cgroupRootDepth: 0 };
  try {
    const m = parseCgroup2Mount(await readFile('/proc/self/mountinfo', 'utf8'));
    if (m) {
      const base = nftBaseOf(m);
      facts.cgroupNftPrefix = base.nftPrefix;
      facts.cgroupRootDepth = base.rootDepth;
      facts.cgroupMountPoint = m.mountPoint;
    }
  } catch {
    /* no procfs: no cgroup facts */
  }
  facts.resolved = await resolveEndpoints(config);
  try {
    const dnsManager = dns ? await dns.manager() : undefined;
    if (dnsManager) facts.dnsManager = dnsManager;
  } catch {
    /* unknown: per-link DNS is not planned */
  }
  return facts;
}
