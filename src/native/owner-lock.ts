/**
 * What the owner lock (resources/owner-lock.ts) asks of the kernel, per platform (chosen by
 * Platform.ownerNatives):
 * - `tryLock(fd)`: flock(2) LOCK_EX|LOCK_NB on an open file. The lock belongs to the open file
 *   description: the kernel drops it when the last descriptor closes, which a process killed
 *   with SIGKILL does too, so a dead owner never holds it. Node opens files with O_CLOEXEC, so
 *   the programs awg starts (engines, nft, ip) never inherit it.
 * - `scope()`: what one owner owns. Links, routes, rules, the nft table and most sysctls
 *   belong to a network namespace, so on Linux it is the namespace's cookie
 *   (SO_NETNS_COOKIE, Linux 5.14; unlike the namespace's inode number it is never reused while
 *   the system runs), or on older kernels the namespace file's device and inode. macOS has one
 *   network stack: `host`.
 */
import { statSync } from 'node:fs';
import { AwgError } from '../errors.js';
import {
  AF_INET,
  E,
  LOCK_EX,
  LOCK_NB,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  SO_NETNS_COOKIE,
  close,
  flock,
  getsockopt,
  socket,
  strerror,
} from './libc.js';
import { D, flock as darwinFlock } from './darwin/libsystem.js';

export interface OwnerNatives {
  /** true: this process holds the lock now; false: another open file holds it */
  tryLock(fd: number): boolean;
  /** the name of what an owner owns here (a file-name-safe string) */
  scope(): string;
}

function lockResult(r: number, wouldBlock: number, errName: (n: number) => string): boolean {
  if (r === 0) return true;
  if (r === -wouldBlock) return false;
  throw new AwgError('driver', `flock failed: ${errName(-r)}`);
}

/** the cookie of the calling thread's network namespace, else its file's device and inode */
export function netnsScope(): string {
  const fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    try {
      const b = Buffer.alloc(8);
      if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, b) === 8)
        return `net-${b.readBigUInt64LE(0).toString()}`;
    } finally {
      close(fd);
    }
  }
  const st = statSync('/proc/thread-self/ns/net');
  return `netino-${st.dev}-${st.ino}`;
}

export const linuxOwnerNatives: OwnerNatives = {
  tryLock: (fd) => lockResult(flock(fd, LOCK_EX | LOCK_NB), E.EAGAIN, strerror),
  scope: netnsScope,
};

/** NEVER RUN ON A MAC (docs/platform-macos.md): flock has the same numbers there */
export const darwinOwnerNatives: OwnerNatives = {
  tryLock: (fd) =>
    lockResult(darwinFlock(fd, LOCK_EX | LOCK_NB), D.EWOULDBLOCK, (n) => `errno ${n}`),
  scope: () => 'host',
};
