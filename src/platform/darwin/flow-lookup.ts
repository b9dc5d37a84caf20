/**
 * Who owns a flow on macOS, for the flow router (resources/flow/flow-router.ts): for TCP the
 * `net.inet.tcp.pcblist_n` list (pcblist.ts walks it) searched by the app socket's local
 * address and port and the foreign address and port it connected to (PF's `rdr` rewrites the
 * packets, not the app's pcb, so the pcb still names the original destination), then the
 * executable of the owning process.
 *
 * Which pid: `so_e_pid` when set (the effective owner of a delegated socket: a system daemon
 * such as nsurlsessiond opening connections on an app's behalf marks them with the app's
 * pid), else `so_last_pid` (the last process that used the socket). Both exist from 10.10.
 *
 * UDP (the router's UDP relay, resources/flow/flow-udp.ts): `net.inet.udp.pcblist_n`, by
 * the app socket's local port and address as PF's nat saw them (the datagram's source). A UDP
 * socket is often unconnected (foreign 0.0.0.0:0) and bound to the wildcard address, so the
 * best of these sent it: connected to this destination before unconnected, its own address
 * before the wildcard (`::` / `0.0.0.0`); a socket connected elsewhere did not. Several
 * equally good ones (SO_REUSEPORT) of different processes: unknown (undefined), never a guess.
 *
 * Cache: keyed by (proto, local address, local port) of the app's socket, and valid only
 * while the pcb found there has the same generation (inp_gencnt: unique per socket ever
 * created, never reused). A port that another process reuses is a new socket with a new
 * generation, so it is never attributed to the old owner: the entry is replaced. The cache
 * saves the proc_pidpath call, not the list read (the generation has to be read to know the
 * entry is still valid): one sysctl per accepted connection. Bounded (`maxEntries`, default
 * 4096): the oldest entry goes first. The list's own generation (xig_gen) is not used: it
 * changes with every socket created anywhere, so it would invalidate everything constantly.
 * Two pcbs with the same 4-tuple (an old one in TIME_WAIT, a new one that reused the tuple
 * with SO_REUSEADDR): the newest generation is the connection being routed.
 * The system calls come in through `io` (on a Mac: sysctlbyname from native/darwin/libsystem.ts,
 * proc_pidpath from native/darwin/libproc.ts; captured-layout buffers in tests).
 */
import { decodePcblist, type PcbEntry } from './pcblist.js';

export interface FlowLookupIo {
  /** sysctlbyname: the raw value of `name` */
  sysctl(name: string): Uint8Array;
  /** proc_pidpath: undefined when the process is gone */
  pidPath(pid: number): string | undefined;
}

export interface LookupFlow {
  /** default tcp */
  proto?: 'tcp' | 'udp';
  app: { address: string; port: number };
  dst: { host: string; port: number };
}

const MAX_CACHE = 4096;

interface CacheEntry {
  generation: string;
  owner: { pid: number; path: string };
}

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as Node reports v4 peers of a dual-stack socket) → IPv4 */
const plain = (a: string) => a.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');

export class PcbFlowLookup {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly maxEntries: number;
  lookups = 0;
  pathCalls = 0;

  constructor(
    private readonly io: FlowLookupIo,
    opts: { maxEntries?: number } = {},
  ) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? MAX_CACHE);
  }

  find(flow: LookupFlow): PcbEntry | undefined {
    if (flow.proto === 'udp') return this.findUdp(flow);
    const app = plain(flow.app.address);
    const dst = plain(flow.dst.host);
    let found: PcbEntry | undefined;
    for (const e of decodePcblist(this.io.sysctl('net.inet.tcp.pcblist_n'), 'tcp')) {
      if (
        e.localPort !== flow.app.port ||
        e.localAddress !== app ||
        e.foreignPort !== flow.dst.port ||
        e.foreignAddress !== dst
      )
        continue;
      // the same 4-tuple twice: an old socket lingering (TIME_WAIT) and one that reused the
      // tuple (SO_REUSEADDR); the newest socket is the one that just connected
      if (!found || BigInt(e.generation) > BigInt(found.generation)) found = e;
    }
    return found;
  }

  /** the UDP socket that sent a datagram (see the header); undefined when none or ambiguous */
  private findUdp(flow: LookupFlow): PcbEntry | undefined {
    const app = plain(flow.app.address);
    const dst = plain(flow.dst.host);
    const wild = (a: string) => a === '0.0.0.0' || a === '::';
    let best: PcbEntry[] = [];
    let bestRank = 0;
    for (const e of decodePcblist(this.io.sysctl('net.inet.udp.pcblist_n'), 'udp')) {
      if (e.localPort !== flow.app.port) continue;
      const own = e.localAddress === app;
      if (!own && !wild(e.localAddress)) continue;
      const connected = e.foreignPort !== 0 || !wild(e.foreignAddress);
      if (connected && (e.foreignPort !== flow.dst.port || e.foreignAddress !== dst)) continue;
      const rank = (connected ? 2 : 0) + (own ? 1 : 0) + 1;
      if (rank > bestRank) [best, bestRank] = [[e], rank];
      else if (rank === bestRank) best.push(e);
    }
    const pids = new Set(best.map((e) => e.effectivePid || e.lastPid));
    if (pids.size !== 1) return undefined;
    return best.reduce((a, b) => (BigInt(b.generation) > BigInt(a.generation) ? b : a));
  }

  owner(flow: LookupFlow): { pid: number; path: string } | undefined {
    this.lookups++;
    const e = this.find(flow);
    if (!e) return undefined;
    const key = `${flow.proto ?? 'tcp'} ${e.localAddress} ${e.localPort}`;
    const hit = this.cache.get(key);
    if (hit && hit.generation === e.generation) return hit.owner;
    this.cache.delete(key); // absent, or another socket (new generation) on the same port
    const pid = e.effectivePid || e.lastPid;
    if (!pid || pid <= 0) return undefined;
    this.pathCalls++;
    const path = this.io.pidPath(pid);
    if (!path) return undefined;
    const owner = { pid, path };
    while (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { generation: e.generation, owner });
    return owner;
  }

  get cached(): number {
    return this.cache.size;
  }
}
