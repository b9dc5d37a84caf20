/**
 * What the daemon's API asks the kernel about its callers (`CallerNatives`, one per
 * platform, chosen by Platform.callerNatives in resources/): who is on the other end of an
 * accepted Unix socket, and what an ACL on a path adds to its mode bits (the trust check of
 * daemon/trusted-path.ts). Linux's is here: SO_PEERCRED (pid, uid, gid at connect() time,
 * translated into our user namespace) and SO_PEERGROUPS (the supplementary groups, Linux ≥
 * 4.13), and whether a path carries a POSIX access ACL. Nothing the client sends can change
 * either. macOS's: native/darwin/peercred.ts.
 */
import type { Socket } from 'node:net';
import { AwgError } from '../errors.js';
import {
  E,
  SO_PEERCRED,
  SO_PEERGROUPS,
  SOL_SOCKET,
  getsockopt,
  lgetxattrSize,
  SyscallError,
} from './libc.js';

export interface PeerCred {
  pid: number;
  uid: number;
  /** the effective gid at connect() */
  gid: number;
  /** supplementary groups */
  groups: number[];
}

/** What an ACL on an object adds to what its mode bits say. */
export interface AclFacts {
  /** how to name it in a refusal ("a POSIX ACL", "an ACL") */
  what: string;
  /** someone the mode bits do not name may change the object (or a directory's entries) */
  grantsWrite: boolean;
  /** the mode bits alone do not tell who may read (or search) it */
  decidesRead: boolean;
}

export interface CallerNatives {
  /** the credentials of the peer of an accepted AF_UNIX stream socket, from the kernel; throws when they cannot be read */
  peer(fd: number): PeerCred;
  /** what an ACL on `path` (a symbolic link itself, never followed) adds to its mode; undefined when it has none; throws on other errors */
  acl(path: string): AclFacts | undefined;
}

/** The fd behind an accepted net.Socket (its libuv pipe handle; Node has no public accessor). */
export function netSocketFd(sock: Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0)
    throw new AwgError('bug', 'cannot find the fd of an accepted socket (Node internals changed?)');
  return fd;
}

/** SO_PEERCRED + SO_PEERGROUPS of a connected AF_UNIX stream socket. Throws SyscallError. */
export function peerCredentials(fd: number): PeerCred {
  const uc = Buffer.alloc(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  const n = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, uc);
  if (n < 0) throw new SyscallError('getsockopt(SO_PEERCRED)', -n);
  if (n < 12) throw new AwgError('bug', `getsockopt(SO_PEERCRED) returned ${n} bytes`);
  let buf = Buffer.alloc(4 * 64);
  let len = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf);
  // too small: the kernel answers ERANGE; NGROUPS_MAX is 65536, so one retry at full size
  if (len === -E.ERANGE) {
    buf = Buffer.alloc(4 * 65536);
    len = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf);
  }
  if (len < 0) throw new SyscallError('getsockopt(SO_PEERGROUPS)', -len);
  const groups: number[] = [];
  for (let i = 0; i + 4 <= len; i += 4) groups.push(buf.readUInt32LE(i));
  return { pid: uc.readInt32LE(0), uid: uc.readUInt32LE(4), gid: uc.readUInt32LE(8), groups };
}

/** Whether `path` (not followed if a symlink) has a POSIX access ACL. Throws on errors other than "none". */
export function hasAccessAcl(path: string): boolean {
  const r = lgetxattrSize(path, 'system.posix_acl_access');
  if (r >= 0) return true;
  if (r === -E.ENODATA || r === -E.EOPNOTSUPP) return false;
  throw new SyscallError('lgetxattr(system.posix_acl_access)', -r, path);
}

/**
 * Linux's. A POSIX ACL never grants write unseen: the group bits of the mode show its mask,
 * which bounds every named user and group entry, so the mode check already refuses what it
 * lets others write. What the mode bits do not tell is who may read.
 */
export const linuxCallerNatives: CallerNatives = {
  peer: peerCredentials,
  acl: (path) =>
    hasAccessAcl(path) ? { what: 'a POSIX ACL', grantsWrite: false, decidesRead: true } : undefined,
};
