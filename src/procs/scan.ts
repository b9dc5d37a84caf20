/**
 * /proc reading for placement: pid → executable, name, parent, cgroup v2 path.
 *
 * Reading /proc/PID/cgroup costs several times a readlink of /proc/PID/exe (the kernel
 * formats one line per v1 hierarchy on hybrid hosts), so the exec hot path reads the cgroup
 * only for processes a rule matches.
 * Every read races with the process exiting: a vanished process reads as undefined.
 */
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
} from 'node:fs';
import { exeSubject } from '../model/match.js';

export interface ProcEntry {
  pid: number;
  ppid: number;
  /** /proc/PID/comm */
  name: string;
  /** resolved executable path (kernel threads have none and are not listed) */
  exe: string;
  /** cgroup v2 path as /proc/PID/cgroup shows it (`/awg/work`), '' when unknown */
  cgroup: string;
}

/** The reads placement needs; a fake in unit tests. */
export interface ProcFs {
  pids(): number[];
  /** readlink /proc/PID/exe with ` (deleted)` stripped; undefined when gone or a kernel thread */
  exe(pid: number): string | undefined;
  comm(pid: number): string | undefined;
  ppid(pid: number): number | undefined;
  /** the `0::` line of /proc/PID/cgroup; undefined when gone */
  cgroup(pid: number): string | undefined;
  /** effective uid (/proc/PID/status `Uid:`, the owner of the sockets it creates) */
  uid?(pid: number): number | undefined;
  /** the Flatpak application id of its sandbox (see `flatpakIdOf`), undefined outside one */
  flatpak?(pid: number): string | undefined;
}

/** The effective uid (second field of `Uid:`) of a /proc/PID/status text. */
export function parseStatusUid(text: string): number | undefined {
  const m = /^Uid:\s+\d+\s+(\d+)/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** `[Application] name=` of a `.flatpak-info` keyfile */
export function parseFlatpakInfo(text: string): string | undefined {
  let inApp = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) inApp = line === '[Application]';
    else if (inApp && line.startsWith('name=')) return line.slice(5).trim() || undefined;
  }
  return undefined;
}

/** the id in a Flatpak scope's name: `…/app-flatpak-<id>-<n>.scope` (systemd's transient scope) */
export function flatpakIdOfCgroup(cgroup: string): string | undefined {
  const m = /(?:^|\/)app-flatpak-(.+)-\d+\.scope(?:\/|$)/.exec(cgroup);
  return m?.[1];
}

/**
 * A process's Flatpak application id: the sandbox's `/.flatpak-info` (read through
 * /proc/PID/root, so the sandbox's own root), else the name of the Flatpak scope its cgroup
 * lies in. A process outside any sandbox has neither.
 */
export function flatpakIdOf(
  info: string | undefined,
  cgroup: string | undefined,
): string | undefined {
  return (
    (info !== undefined ? parseFlatpakInfo(info) : undefined) ??
    (cgroup !== undefined ? flatpakIdOfCgroup(cgroup) : undefined)
  );
}

/** The cgroup v2 entry (`0::/path`) of a /proc/PID/cgroup text. */
export function parseCgroupV2(text: string): string | undefined {
  for (const line of text.split('\n')) if (line.startsWith('0::')) return line.slice(3);
  return undefined;
}

/** ppid from /proc/PID/stat; comm (field 2) may contain spaces and parentheses. */
export function parseStatPpid(text: string): number | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text.slice(close + 2).split(' ');
  const n = Number(f[1]);
  return Number.isInteger(n) ? n : undefined;
}

function tryRead(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

const FLATPAK_INFO_MAX = 64 * 1024;

/** at most FLATPAK_INFO_MAX bytes of a regular file (a sandbox owns the file it names) */
function tryReadSmall(path: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(FLATPAK_INFO_MAX);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function linuxProcFs(proc = '/proc'): ProcFs {
  return {
    pids: () =>
      readdirSync(proc)
        .filter((n) => /^\d+$/.test(n))
        .map(Number),
    exe(pid) {
      try {
        return exeSubject(readlinkSync(`${proc}/${pid}/exe`));
      } catch {
        return undefined;
      }
    },
    comm: (pid) => tryRead(`${proc}/${pid}/comm`)?.replace(/\n$/, ''),
    ppid(pid) {
      const t = tryRead(`${proc}/${pid}/stat`);
      return t === undefined ? undefined : parseStatPpid(t);
    },
    cgroup(pid) {
      const t = tryRead(`${proc}/${pid}/cgroup`);
      return t === undefined ? undefined : parseCgroupV2(t);
    },
    uid(pid) {
      const t = tryRead(`${proc}/${pid}/status`);
      return t === undefined ? undefined : parseStatusUid(t);
    },
    flatpak(pid) {
      // a small keyfile; a sandbox cannot make us read more than LIMIT of it
      const info = tryReadSmall(`${proc}/${pid}/root/.flatpak-info`);
      if (info !== undefined) return parseFlatpakInfo(info);
      const c = tryRead(`${proc}/${pid}/cgroup`);
      return c === undefined ? undefined : flatpakIdOfCgroup(parseCgroupV2(c) ?? '');
    },
  };
}

/** Every process with an executable (kernel threads skipped), in pid order. */
export function scanProcesses(fs: ProcFs = linuxProcFs()): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const pid of fs.pids().sort((a, b) => a - b)) {
    const exe = fs.exe(pid);
    if (exe === undefined) continue;
    const ppid = fs.ppid(pid);
    const cgroup = fs.cgroup(pid);
    if (ppid === undefined || cgroup === undefined) continue;
    out.push({ pid, ppid, name: fs.comm(pid) ?? '', exe, cgroup });
  }
  return out;
}

/** `root` and all its descendants among `procs` (by ppid). */
export function descendants(
  procs: readonly { pid: number; ppid: number }[],
  root: number,
): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const l = children.get(p.ppid);
    if (l) l.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const out = new Set<number>([root]);
  const stack = [root];
  while (stack.length) {
    for (const c of children.get(stack.pop()!) ?? []) {
      if (out.has(c)) continue;
      out.add(c);
      stack.push(c);
    }
  }
  return out;
}
