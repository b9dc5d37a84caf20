/**
 * Which process a record means: its pid, plus the boot it ran in
 * (/proc/sys/kernel/random/boot_id) and its start time in clock ticks since that boot
 * (/proc/<pid>/stat field 22). A pid is reused after its process exits; the pair
 * (boot id, start time) is not, so a record whose identity no longer matches names a
 * process that is gone, and nothing is signalled.
 *
 * Signals go through a pidfd opened *before* the identity is checked (native/pidfd.ts):
 * the process the pidfd names held the pid from before the check to after it, so it is the
 * one checked, and no later reuse of the number can redirect the signal. Kernels without
 * pidfd_open (< 5.3) fall back to kill(2) right after the check.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';

export interface ProcessIdentity {
  /** /proc/sys/kernel/random/boot_id */
  bootId: string;
  /** /proc/<pid>/stat field 22 (starttime, clock ticks after boot), as a decimal string */
  startTime: string;
}

const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';
let bootIdCache: string | undefined;
const ENOSYS = 38;
const ESRCH = 3;

export function currentBootId(): string | undefined {
  if (bootIdCache) return bootIdCache;
  try {
    const id = readFileSync(BOOT_ID_PATH, 'utf8').trim();
    if (/^[0-9a-f-]{36}$/.test(id)) bootIdCache = id;
  } catch {
    /* no procfs */
  }
  return bootIdCache;
}

/**
 * Field 22 (starttime) of a /proc/<pid>/stat line; undefined for a process that has exited
 * (a zombie) or a line that does not parse. Field 2 (comm) is in parentheses and may
 * itself hold spaces and `)`: the fields after it are counted from the last `)`.
 */
export function parseStatStartTime(stat: string): string | undefined {
  const end = stat.lastIndexOf(')');
  if (end < 0) return undefined;
  // after comm: field 3 (state) is index 0, so field 22 is index 19
  const f = stat
    .slice(end + 1)
    .trim()
    .split(/\s+/);
  // a zombie (Z) or dead (X) process has exited: nothing is left to signal
  if (f[0] === 'Z' || f[0] === 'X') return undefined;
  const v = f[19];
  return v !== undefined && /^\d{1,20}$/.test(v) ? v : undefined;
}

/** The identity of the live process `pid`, or undefined when there is none (or no procfs). */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  const bootId = currentBootId();
  if (!bootId) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const startTime = parseStatStartTime(stat);
  return startTime ? { bootId, startTime } : undefined;
}

/** `rec` names the process that holds its pid now: same boot, same start time. */
export function sameProcess(rec: { pid: number } & Partial<ProcessIdentity>): boolean {
  if (!rec.bootId || !rec.startTime) return false;
  const now = processIdentity(rec.pid);
  return now !== undefined && now.bootId === rec.bootId && now.startTime === rec.startTime;
}

/**
 * Sends `signal` to the process `rec` names, only if it is still that process. True when
 * sent; false when the process is gone or the pid belongs to another one now.
 */
export async function signalIdentified(
  rec: { pid: number } & Partial<ProcessIdentity>,
  signal: NodeJS.Signals,
): Promise<boolean> {
  if (!rec.bootId || !rec.startTime) return false;
  let native: typeof import('../../native/pidfd.js') | undefined;
  let fd = -ENOSYS;
  try {
    native = await import('../../native/pidfd.js');
    fd = native.pidfdOpen(rec.pid);
  } catch {
    /* no koffi/libc here: kill(2) after the check */
  }
  if (fd < 0 && fd !== -ENOSYS) return false; // ESRCH: no such process
  try {
    if (!sameProcess(rec)) return false;
    if (fd >= 0) return native!.pidfdSendSignal(fd, constants.signals[signal]) === 0;
    process.kill(rec.pid, signal);
    return true;
  } catch {
    return false;
  } finally {
    if (fd >= 0) native!.closePidfd(fd);
  }
}

/**
 * Calls `onExit` once when the process `rec` names exits (at once if it already has), and
 * returns what stops watching. A pidfd polls readable when its process exits, child or not
 * (Linux ≥ 5.3), so an engine left by an earlier run is watched like one just started;
 * without pidfd_open the identity is checked every `fallbackMs`.
 */
export async function watchExit(
  rec: { pid: number } & Partial<ProcessIdentity>,
  onExit: () => void,
  fallbackMs = 1000,
): Promise<() => void> {
  let done = false;
  const fire = () => {
    if (done) return;
    done = true;
    onExit();
  };
  let pidfd: typeof import('../../native/pidfd.js') | undefined;
  let poll: typeof import('../../native/poll.js') | undefined;
  let fd = -ENOSYS;
  try {
    [pidfd, poll] = await Promise.all([
      import('../../native/pidfd.js'),
      import('../../native/poll.js'),
    ]);
    fd = pidfd.pidfdOpen(rec.pid);
  } catch {
    /* no koffi/libc here: the timer below */
  }
  if (fd >= 0 && !sameProcess(rec)) {
    pidfd!.closePidfd(fd);
    fd = -ESRCH;
  }
  if (fd < 0 && fd !== -ENOSYS) {
    fire();
    return () => {};
  }
  if (fd < 0) {
    const t = setInterval(() => {
      if (sameProcess(rec)) return;
      clearInterval(t);
      fire();
    }, fallbackMs);
    t.unref();
    return () => clearInterval(t);
  }
  let closed = false;
  const stop = () => {
    if (closed) return;
    closed = true;
    poller.close();
    pidfd!.closePidfd(fd);
  };
  const poller = new poll!.Poller(fd, () => {
    stop();
    fire();
  });
  poller.unref();
  return stop;
}
