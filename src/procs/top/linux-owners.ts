/**
 * Socket inode → the process whose file table holds it: /proc/PID/fd/N links read
 * `socket:[INODE]`. Reading every process's fds costs a readlink per open file, so the
 * answers are kept and a search runs only for inodes not seen before, nearest first:
 * 1. the processes that already own sockets (a busy client opens more);
 * 2. the processes in the cgroup the socket was made in (its cgroup id, when resolved);
 * 3. every process, once per read at most; what that does not find is not searched again
 *    (a socket of another pid namespace, or one whose process exited).
 * A socket shared by several processes (inherited across fork) is given to the first found.
 * A kept answer holds until its process exits or the socket leaves the dump.
 */
import { readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';

/** The reads the search needs; a fake in unit tests. */
export interface FdFs {
  pids(): number[];
  /** the fd numbers of a process; undefined when gone or unreadable */
  fds(pid: number): string[] | undefined;
  /** readlink /proc/PID/fd/N */
  link(pid: number, fd: string): string | undefined;
  alive(pid: number): boolean;
  /** the pids in a cgroup (a path relative to the v2 mount, `/a/b`); undefined when unknown */
  cgroupPids(path: string): number[] | undefined;
}

export function linuxFdFs(proc = '/proc', cgroupMount?: string): FdFs {
  return {
    pids: () => {
      const out: number[] = [];
      for (const n of readdirSync(proc)) {
        const c = n.charCodeAt(0);
        if (c >= 48 && c <= 57) out.push(Number(n));
      }
      return out;
    },
    fds(pid) {
      try {
        return readdirSync(`${proc}/${pid}/fd`);
      } catch {
        return undefined;
      }
    },
    link(pid, fd) {
      try {
        return readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        return undefined;
      }
    },
    alive(pid) {
      try {
        statSync(`${proc}/${pid}`);
        return true;
      } catch {
        return false;
      }
    },
    cgroupPids(path) {
      if (cgroupMount === undefined) return undefined;
      try {
        const text = readFileSync(`${cgroupMount}${path === '/' ? '' : path}/cgroup.procs`, 'utf8');
        return text
          .split('\n')
          .filter((l) => l !== '')
          .map(Number);
      } catch {
        return undefined;
      }
    },
  };
}

export interface OwnerStats {
  /** processes whose fds were read, and links read, since the start */
  processesRead: number;
  linksRead: number;
  fullScans: number;
}

/** `socket:[123]` → 123 */
function socketInode(link: string): number | undefined {
  if (!link.startsWith('socket:[')) return undefined;
  const n = Number(link.slice(8, -1));
  return Number.isInteger(n) ? n : undefined;
}

export class SocketOwners {
  private readonly byInode = new Map<number, number>();
  private readonly unfound = new Set<number>();
  readonly stats: OwnerStats = { processesRead: 0, linksRead: 0, fullScans: 0 };

  constructor(private readonly fs: FdFs) {}

  /**
   * The owner pid of each of `inodes` that has one. `cgroupOf` names the cgroup a socket was
   * made in (a hint where to look first).
   */
  resolve(
    inodes: ReadonlySet<number>,
    cgroupOf: (inode: number) => string | undefined = () => undefined,
  ): Map<number, number> {
    for (const i of this.byInode.keys()) if (!inodes.has(i)) this.byInode.delete(i);
    for (const i of this.unfound) if (!inodes.has(i)) this.unfound.delete(i);
    // an owner that exited: its inodes (passed on to a child, perhaps) are searched again
    const pids = new Set(this.byInode.values());
    for (const p of pids) {
      if (this.fs.alive(p)) continue;
      pids.delete(p);
      for (const [i, q] of this.byInode) if (q === p) this.byInode.delete(i);
    }
    const missing = new Set<number>();
    for (const i of inodes)
      if (i !== 0 && !this.byInode.has(i) && !this.unfound.has(i)) missing.add(i);
    if (missing.size > 0) {
      const read = new Set<number>();
      const search = (candidates: Iterable<number>): void => {
        for (const p of candidates) {
          if (missing.size === 0) return;
          if (read.has(p)) continue;
          read.add(p);
          this.readProcess(p, missing);
        }
      };
      search(pids);
      const groups = new Set<string>();
      for (const i of missing) {
        const g = cgroupOf(i);
        if (g !== undefined) groups.add(g);
      }
      for (const g of groups) search(this.fs.cgroupPids(g) ?? []);
      if (missing.size > 0) {
        this.stats.fullScans++;
        search(this.fs.pids());
      }
      for (const i of missing) this.unfound.add(i);
    }
    const out = new Map<number, number>();
    for (const i of inodes) {
      const p = this.byInode.get(i);
      if (p !== undefined) out.set(i, p);
    }
    return out;
  }

  private readProcess(pid: number, missing: Set<number>): void {
    const fds = this.fs.fds(pid);
    if (!fds) return;
    this.stats.processesRead++;
    for (const fd of fds) {
      const link = this.fs.link(pid, fd);
      this.stats.linksRead++;
      if (link === undefined) continue;
      const inode = socketInode(link);
      if (inode === undefined || !missing.has(inode)) continue;
      missing.delete(inode);
      this.byInode.set(inode, pid);
    }
  }
}
