/**
 * What the runtime limits (limit-book.ts) read and change of the system: processes through
 * /proc, and the cgroup v2 file system below its mount. One implementation for Linux; the
 * unit tests give the book a table instead. Every read races with processes exiting: a
 * vanished process reads as undefined, a move of one returns false.
 */
import {
  readFileSync,
  readlinkSync,
  watch as fsWatch,
  mkdirSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { AwgError } from '../errors.js';
import { processIdentity, type ProcessIdentity } from '../resources/engine/process-identity.js';
import { parseCgroup2Mount, type CgroupMount } from '../resources/cgroup/parse.js';
import { relativeCgroup } from '../procs/cgroups.js';
import { linuxProcFs, type ProcFs } from '../procs/scan.js';

export interface LimitSystem {
  /** the live process's identity (boot id, start time); undefined when gone or a zombie */
  identity(pid: number): ProcessIdentity | undefined;
  /** /proc/PID/exe; undefined for a kernel thread (or a process that is gone) */
  exe(pid: number): string | undefined;
  comm(pid: number): string | undefined;
  /** real and effective uid */
  uids(pid: number): { real: number; effective: number } | undefined;
  /** the process's network namespace (`net:[inode]`); `self`: the daemon's */
  netns(pid: number | 'self'): string | undefined;
  /** its cgroup v2 path below the mount; undefined when gone or outside what the mount shows */
  cgroup(pid: number): string | undefined;
  /** a /proc/PID/cgroup path (`/awg/web`) below the mount (`awg/web`) */
  relative(procPath: string): string | undefined;
  /** every process, with its parent */
  processes(): { pid: number; ppid: number }[];
  /** clock ticks since boot now (the unit of a process's start time) */
  ticks(): number | undefined;
  // ---- the cgroup v2 file system, paths below its mount
  exists(group: string): boolean;
  mkdir(group: string): void;
  /** write `pid` to the cgroup's cgroup.procs; false when the process is gone (ESRCH) */
  move(group: string, pid: number): boolean;
  /** the pids in the cgroup itself (not its children); [] when it is gone */
  members(group: string): number[];
  /** cgroup.events `populated` (processes in it or below); undefined when it is gone */
  populated(group: string): boolean | undefined;
  /** rmdir; false while processes are still inside (EBUSY); true when removed or already gone */
  rmdir(group: string): boolean;
  /** `onChange` whenever the cgroup's cgroup.events changes (inotify); returns what stops it */
  watch(group: string, onChange: () => void): () => void;
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

function fsError(e: unknown, what: string): AwgError {
  const c = code(e);
  return new AwgError(
    c === 'EACCES' || c === 'EPERM' ? 'permission' : 'driver',
    `${what}: ${(e as Error).message}`,
    {
      cause: e,
    },
  );
}

/** Field `Uid:` of /proc/PID/status: real, effective. */
export function parseStatusUids(text: string): { real: number; effective: number } | undefined {
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(text);
  return m ? { real: Number(m[1]), effective: Number(m[2]) } : undefined;
}

/**
 * The Linux system: /proc (`procfs` for the reads placement shares) and the cgroup v2 mount
 * (from /proc/self/mountinfo, read once). Throws `unsupported` on first use without cgroup v2.
 */
export function linuxLimitSystem(
  o: { proc?: string; mountinfo?: () => string; procfs?: ProcFs } = {},
): LimitSystem {
  const proc = o.proc ?? '/proc';
  const procfs = o.procfs ?? linuxProcFs(proc);
  let mounted: CgroupMount | undefined;
  const mount = (): CgroupMount => {
    if (mounted) return mounted;
    const m = parseCgroup2Mount(
      (o.mountinfo ?? (() => readFileSync(`${proc}/self/mountinfo`, 'utf8')))(),
    );
    if (!m)
      throw new AwgError(
        'unsupported',
        'no cgroup v2 hierarchy is mounted; runtime limits put the process in a cgroup of its own',
      );
    return (mounted = m);
  };
  const dir = (group: string) => join(mount().mountPoint, group);
  const read = (p: string): string | undefined => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  };
  const system: LimitSystem = {
    identity: (pid) => processIdentity(pid),
    exe: (pid) => procfs.exe(pid),
    comm: (pid) => procfs.comm(pid),
    uids(pid) {
      const t = read(`${proc}/${pid}/status`);
      return t === undefined ? undefined : parseStatusUids(t);
    },
    netns(pid) {
      try {
        return readlinkSync(`${proc}/${pid}/ns/net`);
      } catch {
        return undefined;
      }
    },
    cgroup(pid) {
      const p = procfs.cgroup(pid);
      return p === undefined ? undefined : system.relative(p);
    },
    relative: (p) => relativeCgroup(p, mount().root),
    processes() {
      const out: { pid: number; ppid: number }[] = [];
      for (const pid of procfs.pids()) {
        const ppid = procfs.ppid(pid);
        if (ppid !== undefined) out.push({ pid, ppid });
      }
      return out;
    },
    ticks() {
      // /proc/uptime is in seconds; /proc/PID/stat's start time in USER_HZ, 100 on Linux
      const up = Number(read(`${proc}/uptime`)?.split(' ')[0]);
      return Number.isFinite(up) ? Math.floor(up * 100) : undefined;
    },
    exists: (group) => read(join(dir(group), 'cgroup.events')) !== undefined,
    mkdir(group) {
      try {
        mkdirSync(dir(group));
      } catch (e) {
        if (code(e) !== 'EEXIST') throw fsError(e, `cannot create cgroup ${dir(group)}`);
      }
    },
    move(group, pid) {
      try {
        writeFileSync(join(dir(group), 'cgroup.procs'), String(pid));
        return true;
      } catch (e) {
        if (code(e) === 'ESRCH') return false;
        throw fsError(e, `cannot move pid ${pid} into cgroup ${dir(group)}`);
      }
    },
    members(group) {
      const t = read(join(dir(group), 'cgroup.procs')) ?? '';
      return t
        .split('\n')
        .filter((l) => /^\d+$/.test(l))
        .map(Number);
    },
    populated(group) {
      const t = read(join(dir(group), 'cgroup.events'));
      if (t === undefined) return undefined;
      return /^populated 1$/m.test(t);
    },
    rmdir(group) {
      try {
        rmdirSync(dir(group));
        return true;
      } catch (e) {
        if (code(e) === 'ENOENT') return true;
        if (code(e) === 'EBUSY') return false;
        throw fsError(e, `cannot remove cgroup ${dir(group)}`);
      }
    },
    watch(group, onChange) {
      try {
        const w = fsWatch(join(dir(group), 'cgroup.events'), { persistent: false }, () =>
          onChange(),
        );
        // the cgroup removed under the watch: the next run notices (expire)
        w.on('error', () => w.close());
        return () => w.close();
      } catch {
        // gone already: the next run notices
        return () => {};
      }
    },
  };
  return system;
}
