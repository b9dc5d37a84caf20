/**
 * libproc (macOS): every pid, and a pid's executable, for the flow router's per-app
 * matching. NEVER RUN ON A MAC; the buffers' decoding is tested on bytes. Facts (libproc.h,
 * sys/proc_info.h): `int proc_listallpids(void *buf, int bufsize)` returns the number of
 * pids (with a NULL buffer: how many there are now) and fills an array of pid_t (i32, host
 * order: little-endian on x86_64 and arm64); `int proc_pidpath(int pid, void *buf, uint32_t
 * size)` writes a NUL-terminated path into a buffer of PROC_PIDPATHINFO_MAXSIZE
 * (4 × MAXPATHLEN = 4096) and returns its length, 0 with errno set on failure; `int
 * proc_pidinfo(int pid, int flavor, uint64_t arg, void *buf, int size)` with
 * PROC_PIDT_SHORTBSDINFO fills a struct proc_bsdshortinfo (64 bytes: ppid, comm, uid) and
 * returns the bytes written, 0 or less with errno set on failure.
 *
 * `libprocTable()` is these calls in the shape of procs/darwin.ts's ProcTable (what
 * ListProcesses reads on macOS); tests feed that interface from captures instead.
 */
import { AwgError } from '../../errors.js';
import {
  PROC_BSDSHORTINFO_SIZE,
  PROC_PIDPATHINFO_MAXSIZE,
  PROC_PIDT_SHORTBSDINFO,
  decodeBsdShortInfo,
  decodePath,
  decodePids,
  type BsdShortInfo,
} from './layouts.js';
import { D, check, procListAllPids, procPidInfo, procPidPath } from './libsystem.js';

export {
  PROC_BSDSHORTINFO_SIZE,
  PROC_PIDPATHINFO_MAXSIZE,
  PROC_PIDT_SHORTBSDINFO,
  decodeBsdShortInfo,
  decodePath,
  decodePids,
};

/** room for processes started between the two calls */
const HEADROOM = 64;

/** Every process id: proc_listallpids asked for the count, then filled (with headroom). */
export function listPids(): number[] {
  const n = check('proc_listallpids(NULL)', procListAllPids(null));
  const buf = new Uint8Array((n + HEADROOM) * 4);
  const got = check('proc_listallpids', procListAllPids(buf));
  return decodePids(buf, got);
}

/** A process's executable; undefined when it is gone (ESRCH) or not ours to see (EPERM). */
export function pidPath(pid: number): string | undefined {
  const buf = new Uint8Array(PROC_PIDPATHINFO_MAXSIZE);
  const r = procPidPath(pid, buf);
  if (r > 0) return decodePath(buf, r);
  const e = -r;
  if (e === D.ESRCH || e === D.EPERM) return undefined;
  throw new AwgError('driver', `proc_pidpath(${pid}): errno ${e}`);
}

/** A process's parent, name and uid; undefined when it is gone (ESRCH) or not ours to see (EPERM). */
export function pidShortInfo(pid: number): BsdShortInfo | undefined {
  const buf = new Uint8Array(PROC_BSDSHORTINFO_SIZE);
  const r = procPidInfo(pid, PROC_PIDT_SHORTBSDINFO, buf);
  if (r > 0) return decodeBsdShortInfo(buf, r);
  const e = -r;
  if (e === D.ESRCH || e === D.EPERM) return undefined;
  throw new AwgError('driver', `proc_pidinfo(${pid}, PROC_PIDT_SHORTBSDINFO): errno ${e}`);
}

/** the process table ListProcesses reads on macOS (procs/darwin.ts ProcTable) */
export function libprocTable(): {
  pids(): number[];
  path(pid: number): string | undefined;
  info(pid: number): BsdShortInfo | undefined;
} {
  return { pids: listPids, path: pidPath, info: pidShortInfo };
}
