/**
 * The daemon API's caller check on macOS (the CallerNatives of native/peercred.ts; Linux's is
 * there). NEVER RUN ON A MAC: the buffers are decoded by layouts.ts and tested on bytes
 * written from the headers; the calls go through libsystem.ts or, in tests, `natives`.
 *
 * Who is calling (sys/un.h, XNU uipc_usrreq.c): getsockopt at level SOL_LOCAL (0)
 * - LOCAL_PEERCRED (1): a struct xucred the kernel filled from the connecting process's
 *   credential at connect() (cru2x: effective uid, up to 16 groups, the first the effective
 *   gid); nothing the client sends changes it. ENOTCONN when the socket has none.
 * - LOCAL_PEERPID (2): the pid that last used the peer's socket (for the log; ENOTCONN once
 *   the peer has gone).
 * Unlike Linux's SO_PEERGROUPS, the groups are the credential's first 16 only: a user in the
 * socket group beyond those is refused (as 'other'), never the reverse.
 *
 * What an ACL adds (sys/acl.h, sys/kauth.h): macOS's extended ACLs are evaluated before the
 * mode bits and do not show in them, so a root-owned 0644 file with `everyone allow write`
 * can be rewritten by anyone. The ACL is read with acl_get_link_np (the object itself, never
 * a link's target) and acl_copy_ext (its entries as bytes, no name look-ups). As the kernel
 * evaluates them (kauth_acl_evaluate): inherit-only entries do not apply to the object,
 * generic rights stand for their specific ones, kinds other than permit and deny are skipped.
 * - a permit entry with any right that changes the object or a directory's entries (write,
 *   append, add file/subdirectory, delete, delete child, write attributes / extended
 *   attributes / security, take ownership, generic write or all) → `grantsWrite`, whoever it
 *   names: the trust check refuses it (an entry for root only is refused too — rare and safe);
 * - any entry (permit or deny) with a read or search right (read data / list, execute /
 *   search, generic read, execute or all) → `decidesRead`: with a reader the check refuses it;
 * - anything else (e.g. Apple's usual `group:everyone deny delete`) → nothing to add.
 */
import { AwgError } from '../../errors.js';
import type { AclFacts, CallerNatives, PeerCred } from '../peercred.js';
import {
  ACE_RIGHTS as R,
  KAUTH_ACE_DENY,
  KAUTH_ACE_ONLY_INHERIT,
  KAUTH_ACE_PERMIT,
  XUCRED_SIZE,
  decodeAclExt,
  decodePeerPid,
  decodeXucred,
  type Ace,
} from './layouts.js';
import { D, aclExternal, getsockopt } from './libsystem.js';

export const SOL_LOCAL = 0;
export const LOCAL_PEERCRED = 0x001;
export const LOCAL_PEERPID = 0x002;

/** The system calls the check makes (libSystem on a Mac; fakes in tests). */
export interface DarwinCallerSyscalls {
  /** fills `val`; returns the option's length or -errno (libsystem.ts getsockopt) */
  getsockopt(fd: number, level: number, name: number, val: Uint8Array): number;
  /** acl_get_link_np + acl_copy_ext: the external ACL, null when there is none, or -errno (libsystem.ts aclExternal) */
  aclExternal(path: string): Uint8Array | null | number;
}

export const libSystemCallerSyscalls: DarwinCallerSyscalls = { getsockopt, aclExternal };

const WRITE_RIGHTS =
  R.WRITE_DATA |
  R.APPEND_DATA |
  R.DELETE |
  R.DELETE_CHILD |
  R.WRITE_ATTRIBUTES |
  R.WRITE_EXTATTRIBUTES |
  R.WRITE_SECURITY |
  R.TAKE_OWNERSHIP |
  R.GENERIC_WRITE |
  R.GENERIC_ALL;
const READ_RIGHTS = R.READ_DATA | R.EXECUTE | R.GENERIC_READ | R.GENERIC_EXECUTE | R.GENERIC_ALL;

/** What the entries of an extended ACL add to the mode bits (see the file comment); undefined: nothing. */
export function aclFacts(entries: readonly Ace[]): AclFacts | undefined {
  let grantsWrite = false;
  let decidesRead = false;
  for (const e of entries) {
    if (e.flags & KAUTH_ACE_ONLY_INHERIT) continue;
    if (e.kind !== KAUTH_ACE_PERMIT && e.kind !== KAUTH_ACE_DENY) continue;
    if (e.kind === KAUTH_ACE_PERMIT && e.rights & WRITE_RIGHTS) grantsWrite = true;
    if (e.rights & READ_RIGHTS) decidesRead = true;
  }
  return grantsWrite || decidesRead
    ? { what: 'an extended ACL (ls -le)', grantsWrite, decidesRead }
    : undefined;
}

function syscallError(what: string, errno: number, path?: string): AwgError {
  return new AwgError(
    errno === D.EPERM || errno === D.EACCES ? 'permission' : 'driver',
    `${what}${path ? ` ${path}` : ''}: errno ${errno}`,
  );
}

/** LOCAL_PEERCRED + LOCAL_PEERPID of an accepted AF_UNIX stream socket. */
export function darwinPeerCredentials(
  fd: number,
  sys: DarwinCallerSyscalls = libSystemCallerSyscalls,
): PeerCred {
  const xu = new Uint8Array(XUCRED_SIZE);
  const n = sys.getsockopt(fd, SOL_LOCAL, LOCAL_PEERCRED, xu);
  if (n < 0) throw syscallError('getsockopt(LOCAL_PEERCRED)', -n);
  const cred = decodeXucred(xu, n);
  const pb = new Uint8Array(4);
  const m = sys.getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, pb);
  if (m < 0) throw syscallError('getsockopt(LOCAL_PEERPID)', -m);
  return { pid: decodePeerPid(pb, m), uid: cred.uid, gid: cred.gid, groups: cred.groups };
}

/** What the extended ACL of `path` (not followed) adds to its mode. */
export function darwinAcl(
  path: string,
  sys: DarwinCallerSyscalls = libSystemCallerSyscalls,
): AclFacts | undefined {
  const ext = sys.aclExternal(path);
  if (ext === null) return undefined;
  if (typeof ext === 'number') throw syscallError('acl_get_link_np', -ext, path);
  return aclFacts(decodeAclExt(ext, ext.length));
}

/** macOS's caller check (Platform.callerNatives); `sys`: the system calls (tests) */
export function darwinCallerNatives(
  sys: DarwinCallerSyscalls = libSystemCallerSyscalls,
): CallerNatives {
  return { peer: (fd) => darwinPeerCredentials(fd, sys), acl: (path) => darwinAcl(path, sys) };
}
