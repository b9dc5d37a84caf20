/**
 * Real-time scheduling and parent-death signal: the placer's helper process, and the
 * engine's handshake boost (dataplane/boost.ts).
 * - sched_setscheduler(0, …) changes the *calling thread* only (Linux: pid 0 = this thread):
 *   Node's thread pool and V8 helpers, started earlier, keep SCHED_OTHER. SCHED_RESET_ON_FORK
 *   keeps anything this thread creates later (threads or processes) off real-time.
 * - sched_setattr (setOtherSlice) sets an EEVDF custom slice for the engine's thread.
 * - PR_SET_PDEATHSIG fires when the thread that forked us exits (libuv spawns from the main
 *   thread, so: when the parent process exits). A parent that died before the call is not
 *   covered: callers compare getppid() with the expected parent afterwards.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import koffi from 'koffi';
import { AwgError } from '../errors.js';
import { errnoName } from './libc.js';

export const SCHED_OTHER = 0;
export const SCHED_FIFO = 1;
export const SCHED_RESET_ON_FORK = 0x40000000;
export const PR_SET_PDEATHSIG = 1;

interface Fns {
  sched_setscheduler: (pid: number, policy: number, param: Uint8Array) => number;
  syscall: (...args: unknown[]) => number | bigint;
  getpriority: (which: number, who: number) => number;
  sched_getscheduler: (pid: number) => number;
  prctl: (op: number, a2: number, a3: number, a4: number, a5: number) => number;
}

let fns: Fns | undefined;

function libc(): Fns {
  if (fns) return fns;
  if (process.platform !== 'linux')
    throw new AwgError(
      'unsupported',
      `scheduling bindings need Linux (running on ${process.platform})`,
    );
  const lib = koffi.load('libc.so.6');
  fns = {
    // struct sched_param is one int (sched_priority)
    sched_setscheduler: lib.func('int sched_setscheduler(int pid, int policy, const void *param)'),
    sched_getscheduler: lib.func('int sched_getscheduler(int pid)'),
    // sched_setattr has no glibc wrapper (before 2.41)
    syscall: lib.func('long syscall(long nr, ...)'),
    getpriority: lib.func('int getpriority(int which, int who)'),
    // variadic in the headers; five unsigned longs is the kernel's calling convention
    prctl: lib.func(
      'int prctl(int op, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
    ),
  } as unknown as Fns;
  return fns;
}

const ret = (r: number): number => (r < 0 ? -koffi.errno() : r);

/** SCHED_FIFO at `priority` (1–99) for the calling thread: 0, or -errno (EPERM without CAP_SYS_NICE / RLIMIT_RTPRIO). */
export function setFifo(priority: number): number {
  const p = Buffer.alloc(4);
  p.writeInt32LE(priority, 0);
  return ret(libc().sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, p));
}

/** back to SCHED_OTHER for the calling thread (its nice value is kept): 0, or -errno */
export function setOther(): number {
  return ret(libc().sched_setscheduler(0, SCHED_OTHER, Buffer.alloc(4)));
}

const SCHED_SETATTR = { x64: 314, arm64: 274 } as Record<string, number>;

/**
 * SCHED_OTHER with an EEVDF custom slice of `us` microseconds for thread `tid` (0: the calling one)
 * (sched_setattr's sched_runtime; Linux 6.12+, 100 µs to 100 ms; 0: the default slice). A
 * shorter slice is no larger share of the CPU, only an earlier deadline: a thread that wakes
 * for a little work preempts a CPU-bound one at once instead of at its next tick. Its nice
 * value is kept (sched_setattr would reset it). Kernels before 6.12 accept and ignore it.
 * 0, or -errno.
 */
export function setOtherSlice(us: number, tid = 0): number {
  const nr = SCHED_SETATTR[process.arch];
  if (nr === undefined) return -38; // ENOSYS
  const f = libc();
  const nice = f.getpriority(0, tid); // PRIO_PROCESS of a tid: that thread (-1 is also a valid nice)
  const attr = Buffer.alloc(56); // struct sched_attr, SCHED_ATTR_SIZE_VER1
  attr.writeUInt32LE(56, 0); // size; policy 0 (SCHED_OTHER), flags 0
  attr.writeInt32LE(nice, 16);
  attr.writeBigUInt64LE(BigInt(Math.round(us)) * 1000n, 24); // sched_runtime, ns
  return ret(Number(f.syscall(nr, 'int', tid, 'void *', attr, 'uint', 0)));
}

/** a thread's EEVDF slice in µs (default: the calling one), from /proc's `se.slice`; null where absent */
export function currentSliceUs(schedFile = '/proc/thread-self/sched'): number | null {
  try {
    const m = /^se\.slice\s*:\s*(\d+)/m.exec(readFileSync(schedFile, 'utf8'));
    return m ? Number(m[1]) / 1000 : null;
  } catch {
    return null;
  }
}

/** policy of the calling thread (SCHED_RESET_ON_FORK masked off), or -errno */
export function currentPolicy(): number {
  const r = ret(libc().sched_getscheduler(0));
  return r < 0 ? r : r & ~SCHED_RESET_ON_FORK;
}

/** deliver `signal` to this process when its parent exits: 0, or -errno */
export function setParentDeathSignal(signal: number): number {
  return ret(libc().prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0));
}

/** "EPERM" etc. for a -errno return */
export const errnoText = (r: number): string => errnoName(-r);

export interface Schedstat {
  run: number;
  wait: number;
}

/**
 * A thread's CPU time and run delay (time runnable but waiting for a CPU), both in ns, from
 * /proc's `schedstat` (default: the calling thread); null where absent (other OS, no
 * CONFIG_SCHED_INFO).
 */
export function threadSchedstat(file = '/proc/thread-self/schedstat'): Schedstat | null {
  try {
    const f = readFileSync(file, 'latin1').split(' ');
    const run = Number(f[0]);
    const wait = Number(f[1]);
    return Number.isFinite(run) && Number.isFinite(wait) ? { run, wait } : null;
  } catch {
    return null;
  }
}

/**
 * The session a process belongs to (default: this one), from /proc's `stat`; null where
 * absent. 0 is a real answer: a session whose leader lives outside this pid namespace (a
 * container's processes, CI runners).
 */
export function sessionOf(statFile = '/proc/self/stat'): number | null {
  try {
    const s = readFileSync(statFile, 'latin1');
    // after "pid (comm) ": state ppid pgrp session …; comm may hold spaces and parentheses
    const n = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[3]);
    return Number.isInteger(n) && n >= 0 ? n : null;
  } catch {
    return null;
  }
}

/**
 * The nice value of this process's autogroup (CONFIG_SCHED_AUTOGROUP: every session is one
 * group, and the scheduler shares the CPUs between groups before it shares a group's share
 * between its threads), from `/proc/self/autogroup`; null where there is none.
 */
export function autogroupNice(file = '/proc/self/autogroup'): number | null {
  try {
    const m = /\bnice\s+(-?\d+)/.exec(readFileSync(file, 'latin1'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Sets the nice value of this process's autogroup (the whole session's weight: a session
 * leader's own): 0, or -errno (EPERM: lowering it needs CAP_SYS_NICE; ENOENT: no autogroups).
 */
export function setAutogroupNice(nice: number, file = '/proc/self/autogroup'): number {
  try {
    writeFileSync(file, String(nice));
    return 0;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    return -((constants.errno as Record<string, number>)[code] ?? constants.errno.EIO);
  }
}
