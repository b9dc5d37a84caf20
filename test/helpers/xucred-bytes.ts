/**
 * Synthetic answers of the macOS caller check's system calls (src/native/darwin/peercred.ts),
 * written field by field from the SDK headers (no capture exists): LOCAL_PEERCRED's struct
 * xucred (sys/ucred.h), LOCAL_PEERPID's pid_t, and acl_copy_ext's big-endian struct
 * kauth_filesec (sys/kauth.h). For the byte tests and the model daemon's fake natives.
 */
/** struct xucred as the kernel's cru2x fills it: the fields at 0, 4, 8 and 12, little-endian (x86_64, arm64) */
export function xucred(
  uid: number,
  groups: number[],
  o: { version?: number; ngroups?: number; padding?: number } = {},
): Uint8Array {
  const b = new Uint8Array(76);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, o.version ?? 0, true); // cr_version
  dv.setUint32(4, uid, true); // cr_uid
  dv.setInt16(8, o.ngroups ?? groups.length, true); // cr_ngroups
  dv.setUint16(10, o.padding ?? 0, true); // alignment padding before the gid_t array
  groups.forEach((g, i) => dv.setUint32(12 + 4 * i, g, true)); // cr_groups[16]
  return b;
}

export const pidT = (pid: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, pid, true);
  return b;
};

/** group `everyone` as `ls -le`/acl_to_text print it (gid 12) */
export const EVERYONE = 'ABCDEFAB-CDEF-ABCD-EFAB-CDEF0000000C';
/** some user (what the ACL names does not change the check) */
export const WWW = 'FFFFEEEE-DDDD-CCCC-BBBB-AAAA00000046';

/** acl_copy_ext's output: big-endian kauth_filesec, owner and group GUIDs zeroed */
export function aclExt(
  entries: { who: string; kind: number; flags?: number; rights: number }[],
  o: { count?: number; magic?: number } = {},
): Uint8Array {
  const b = new Uint8Array(44 + 24 * entries.length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, o.magic ?? 0x012cc16d, false); // fsec_magic
  // fsec_owner (4..20) and fsec_group (20..36) stay zero
  dv.setUint32(36, o.count ?? entries.length, false); // acl_entrycount
  dv.setUint32(40, 0, false); // acl_flags
  entries.forEach((e, i) => {
    const at = 44 + 24 * i;
    b.set(Buffer.from(e.who.replace(/-/g, ''), 'hex'), at); // ace_applicable
    dv.setUint32(at + 16, e.kind | (e.flags ?? 0), false); // ace_flags
    dv.setUint32(at + 20, e.rights, false); // ace_rights
  });
  return b;
}
