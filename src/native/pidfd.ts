/**
 * pidfd_open(2) / pidfd_send_signal(2) (Linux ≥ 5.3 / 5.1): a file descriptor that names one
 * process, not a pid number, so a signal sent through it can never reach a process that
 * reused the pid after the one we meant exited. Called through syscall(2): the numbers are
 * the same on every architecture (allocated after the tables were unified), and glibc
 * before 2.36 has no wrappers.
 */
import koffi from 'koffi';
import { AwgError } from '../errors.js';

const SYS_PIDFD_SEND_SIGNAL = 424;
const SYS_PIDFD_OPEN = 434;

type Syscall = (nr: number, ...typed: unknown[]) => number | bigint;
let syscallFn: Syscall | undefined;
let closeFn: ((fd: number) => number) | undefined;

function load(): Syscall {
  if (syscallFn) return syscallFn;
  if (process.platform !== 'linux')
    throw new AwgError('unsupported', `pidfd needs Linux (running on ${process.platform})`);
  const lib = koffi.load('libc.so.6');
  syscallFn = lib.func('long syscall(long number, ...)') as unknown as Syscall;
  closeFn = lib.func('int close(int fd)') as unknown as (fd: number) => number;
  return syscallFn;
}

const ret = (r: number | bigint): number => {
  const n = Number(r);
  return n < 0 ? -koffi.errno() : n;
};

/** A pidfd for `pid` (close it with `closePidfd`), or -errno (ESRCH: no such process; ENOSYS: kernel < 5.3). */
export function pidfdOpen(pid: number): number {
  return ret(load()(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0));
}

/** Sends `signal` (a number) to the process `fd` names: 0, or -errno (ESRCH: it has exited). */
export function pidfdSendSignal(fd: number, signal: number): number {
  return ret(
    load()(SYS_PIDFD_SEND_SIGNAL, 'int', fd, 'int', signal, 'void *', null, 'unsigned int', 0),
  );
}

export function closePidfd(fd: number): void {
  load();
  closeFn!(fd);
}
