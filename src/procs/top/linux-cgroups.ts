/**
 * cgroup v2 id → path. On cgroup v2 a cgroup's id (what sock_diag reports as
 * INET_DIAG_CGROUP_ID, and bpf_get_current_cgroup_id) is the inode number of its directory
 * in the cgroup2 file system (kernfs node id; 64-bit kernels). So the names are learned by
 * stat: a walk of awg's own subtree (bounded; walked again only when an id not seen before
 * appears, once per read at most), the mount's root, and the cgroups of the processes the
 * reading names (/proc/PID/cgroup). Paths are relative to the mount, with a leading slash
 * (`/awg/browser`; `/` for the root).
 */
import { readdirSync, statSync } from 'node:fs';

/** The reads the names need; a fake in unit tests. */
export interface CgroupFs {
  /** the inode (= cgroup id) of a cgroup directory (path relative to the mount); undefined when gone */
  id(path: string): number | undefined;
  /** the child cgroups' names; [] when gone */
  children(path: string): string[];
}

export function linuxCgroupFs(mountPoint: string): CgroupFs {
  const abs = (p: string): string => (p === '/' ? mountPoint : `${mountPoint}${p}`);
  return {
    id(path) {
      try {
        return Number(statSync(abs(path), { bigint: true }).ino);
      } catch {
        return undefined;
      }
    },
    children(path) {
      try {
        return readdirSync(abs(path), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => d.name);
      } catch {
        return [];
      }
    },
  };
}

/** directories read per walk of the subtree at most (a runaway tree stays cheap) */
const WALK_LIMIT = 4096;
/** names kept at most (ids are never reused: removed cgroups' names are dropped by a restart) */
const KEEP_LIMIT = 16384;

export class CgroupNames {
  private readonly byId = new Map<number, string>();
  private readonly unknown = new Set<number>();
  private walkedThisRead = false;

  /** `subtree`: awg's cgroups (`/awg`), walked for names */
  constructor(
    private readonly fs: CgroupFs,
    private readonly subtree: string,
  ) {
    this.learn('/');
    this.walk();
  }

  /** a new read: an unknown id may walk the subtree again */
  tick(): void {
    this.walkedThisRead = false;
  }

  /** the path of cgroup `id`, when known */
  name(id: number): string | undefined {
    const n = this.byId.get(id);
    if (n !== undefined || this.unknown.has(id)) return n;
    if (!this.walkedThisRead) this.walk();
    const m = this.byId.get(id);
    if (m === undefined) this.unknown.add(id);
    return m;
  }

  /** a cgroup path seen elsewhere (a process's): its id is learned */
  learn(path: string): void {
    const id = this.fs.id(path);
    if (id === undefined) return;
    this.byId.set(id, path);
    this.unknown.delete(id);
  }

  private walk(): void {
    this.walkedThisRead = true;
    if (this.byId.size > KEEP_LIMIT) this.byId.clear();
    if (this.unknown.size > KEEP_LIMIT) this.unknown.clear();
    const queue = [this.subtree];
    let read = 0;
    while (queue.length > 0 && read < WALK_LIMIT) {
      const p = queue.shift()!;
      read++;
      const id = this.fs.id(p);
      if (id === undefined) continue;
      this.byId.set(id, p);
      this.unknown.delete(id);
      for (const c of this.fs.children(p)) queue.push(`${p === '/' ? '' : p}/${c}`);
    }
  }
}
