/**
 * Who is on the other end of an accepted Unix socket, from the kernel: SO_PEERCRED (pid,
 * uid, gid at connect() time, translated into our user namespace) and SO_PEERGROUPS (the
 * supplementary groups, Linux ≥ 4.13). Nothing the client sends can change either. Also:
 * whether a path carries a POSIX access ACL, i.e. whether its mode bits tell the whole story
 * of who may read it.
 */
import type { Socket } from 'node:net';
import { AwgError } from '../errors.js';
import { E, SO_PEERCRED, SO_PEERGROUPS, SOL_SOCKET, getsockopt, lgetxattrSize, SyscallError } from './libc.js';

export interface PeerCred {
  pid: number;
  uid: number;
  /** the effective gid at connect() */
  gid: number;
  /** supplementary groups */
  groups: number[];
}

/** The fd behind an accepted net.Socket (its libuv pipe handle; Node has no public accessor). */
export function netSocketFd(sock: Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new AwgError('bug', 'cannot find the fd of an accepted socket (Node internals changed?)');
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
