/**
 * Who owns a TCP flow on macOS, for the flow router (resources/engine/flow-router.ts): the
 * `net.inet.tcp.pcblist_n` list (pcblist.ts walks it) searched by the app socket's local
 * address and port and the foreign address and port it connected to (PF's `rdr` rewrites the
 * packets, not the app's pcb, so the pcb still names the original destination), then the
 * executable of the owning process.
 *
 * Which pid: `so_e_pid` when set (the effective owner of a delegated socket: a system daemon
 * such as nsurlsessiond opening connections on an app's behalf marks them with the app's
 * pid), else `so_last_pid` (the last process that used the socket). Both exist from 10.10.
 *
 * Cached by socket generation (inp_gencnt: unique per socket ever created), so a port that
 * another process reuses is never attributed to the old owner; the cache is bounded. The
 * list is read once per lookup (one sysctl per accepted connection). The system calls come
 * in through `io` (native/darwin/libsystem.ts on a Mac; captured-layout buffers in tests).
 */
import { decodePcblist, type PcbEntry } from './pcblist.js';

export interface FlowLookupIo {
  /** sysctlbyname: the raw value of `name` */
  sysctl(name: string): Uint8Array;
  /** proc_pidpath: undefined when the process is gone */
  pidPath(pid: number): string | undefined;
}

export interface LookupFlow {
  app: { address: string; port: number };
  dst: { host: string; port: number };
}

const MAX_CACHE = 4096;

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as Node reports v4 peers of a dual-stack socket) → IPv4 */
const plain = (a: string) => a.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');

export class PcbFlowLookup {
  private readonly cache = new Map<string, { pid: number; path: string }>();
  lookups = 0;
  pathCalls = 0;

  constructor(private readonly io: FlowLookupIo) {}

  find(flow: LookupFlow): PcbEntry | undefined {
    const app = plain(flow.app.address);
    const dst = plain(flow.dst.host);
    return decodePcblist(this.io.sysctl('net.inet.tcp.pcblist_n'), 'tcp').find(
      (e) => e.localPort === flow.app.port && e.localAddress === app && e.foreignPort === flow.dst.port && e.foreignAddress === dst,
    );
  }

  owner(flow: LookupFlow): { pid: number; path: string } | undefined {
    this.lookups++;
    const e = this.find(flow);
    if (!e) return undefined;
    const hit = this.cache.get(e.generation);
    if (hit) return hit;
    const pid = e.effectivePid || e.lastPid;
    if (!pid || pid <= 0) return undefined;
    this.pathCalls++;
    const path = this.io.pidPath(pid);
    if (!path) return undefined;
    const owner = { pid, path };
    if (this.cache.size >= MAX_CACHE) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(e.generation, owner);
    return owner;
  }

  get cached(): number {
    return this.cache.size;
  }
}
