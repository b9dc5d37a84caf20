/**
 * Byte layouts of the macOS structures the koffi bindings pass to the kernel. Pure: every
 * encoder and decoder is tested on bytes (test/unit/darwin/native-layouts.test.ts) without
 * a Mac. Sources are the SDK headers' documented layouts (facts only):
 * - struct ctl_info (sys/kern_control.h): u32 ctl_id; char ctl_name[96] → 100 bytes;
 *   CTLIOCGINFO = _IOWR('N', 3, struct ctl_info) = 0xc0644e03.
 * - struct ifreq (net/if.h): char ifr_name[16]; union (16 bytes; ifru_mtu is an int at 16)
 *   → 32 bytes; SIOCGIFMTU = _IOWR('i', 51, struct ifreq) = 0xc0206933.
 * - struct rt_msghdr (net/route.h): 92 bytes, RTM_VERSION 5 (test/fixtures/macos/binary/
 *   LAYOUTS.md §1); sockaddrs follow, each rounded up to 4 bytes.
 * - struct pfioc_natlook (net/pfvar.h, Apple's): pf_addr saddr, daddr, rsaddr, rdaddr (16
 *   each), union pf_state_xport sxport, dxport, rsxport, rdxport (4 each; the port in the
 *   first two bytes, network order), u8 af, proto, proto_variant, direction → 84 bytes;
 *   DIOCNATLOOK = _IOWR('D', 23, struct pfioc_natlook) = 0xc0544417; PF_IN = 1, PF_OUT = 2.
 * - proc_listallpids fills an array of pid_t (i32, host order: little-endian on x86_64 and
 *   arm64); proc_pidpath writes a NUL-terminated path into a buffer of
 *   PROC_PIDPATHINFO_MAXSIZE (4 × MAXPATHLEN = 4096) bytes.
 * - struct proc_bsdshortinfo (sys/proc_info.h; proc_pidinfo flavor PROC_PIDT_SHORTBSDINFO =
 *   13): u32 pid, ppid, pgid, status; char comm[MAXCOMLEN = 16]; u32 flags; uid_t uid, gid,
 *   ruid, rgid, svuid, svgid (u32 each); u32 rfu → 64 bytes, no padding; host order.
 * - IP_BOUND_IF (IPPROTO_IP, 25) / IPV6_BOUND_IF (IPPROTO_IPV6, 125) take the interface
 *   index as an int (netinet/in.h, netinet6/in6.h).
 * - struct xucred (sys/ucred.h), LOCAL_PEERCRED's answer: u_int cr_version (XUCRED_VERSION
 *   0); uid_t cr_uid; short cr_ngroups; 2 bytes of padding (gid_t is 4-aligned); gid_t
 *   cr_groups[NGROUPS = 16] at 12 → 76 bytes, host order, no pragma pack. cr_groups[0] is
 *   the effective gid (`#define cr_gid cr_groups[0]`); XNU's cru2x copies all 16 slots and
 *   cr_ngroups of them count. LOCAL_PEERPID's answer is a pid_t (i32).
 * - acl_copy_ext's external ACL (sys/kauth.h struct kauth_filesec, big-endian whatever the
 *   host): u32 fsec_magic 0x012cc16d; guid_t fsec_owner, fsec_group (16 each, zeroed by
 *   acl_copy_ext); struct kauth_acl { u32 acl_entrycount (0xffffffff: no ACL); u32 acl_flags;
 *   struct kauth_ace acl_ace[] } at 36 → entries from 44, each { guid_t ace_applicable;
 *   u32 ace_flags (kind in the low 4 bits: 1 permit, 2 deny; KAUTH_ACE_ONLY_INHERIT 1<<8);
 *   u32 ace_rights (the KAUTH_VNODE_* bits, KAUTH_ACE_GENERIC_* at 21–24) } of 24 bytes.
 */
import ipaddr from '../../util/ipaddr.js';

/** _IOWR(group, num, size): IOC_INOUT | (size & IOCPARM_MASK) << 16 | group << 8 | num */
export function iowr(group: string, num: number, size: number): number {
  return (0xc0000000 | ((size & 0x1fff) << 16) | (group.charCodeAt(0) << 8) | num) >>> 0;
}

export const CTL_INFO_SIZE = 100;
export const MAX_KCTL_NAME = 96;
export const CTLIOCGINFO = iowr('N', 3, CTL_INFO_SIZE);

export function encodeCtlInfo(name: string): Uint8Array {
  const b = new Uint8Array(CTL_INFO_SIZE);
  const n = Buffer.from(name, 'utf8');
  if (n.length >= MAX_KCTL_NAME)
    throw new Error(`control name longer than ${MAX_KCTL_NAME - 1} bytes`);
  b.set(n, 4);
  return b;
}

export function decodeCtlInfoId(b: Uint8Array): number {
  if (b.length < CTL_INFO_SIZE) throw new Error('short ctl_info');
  return new DataView(b.buffer, b.byteOffset, b.length).getUint32(0, true);
}

export const IFNAMSIZ = 16;
export const IFREQ_SIZE = 32;
export const SIOCGIFMTU = iowr('i', 51, IFREQ_SIZE);

export function encodeIfreq(name: string): Uint8Array {
  const b = new Uint8Array(IFREQ_SIZE);
  const n = Buffer.from(name, 'utf8');
  if (n.length === 0 || n.length >= IFNAMSIZ)
    throw new Error(`bad interface name ${JSON.stringify(name)}`);
  b.set(n, 0);
  return b;
}

export function decodeIfreqMtu(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.length).getInt32(IFNAMSIZ, true);
}

export const RTM_VERSION = 5;
export const RTM_GET = 0x4;
export const RTA_DST = 0x1;
export const RTA_IFP = 0x10;
export const RT_MSGHDR_SIZE = 92;
const AF_INET = 2;
const AF_INET6 = 30;

/** sockaddr_in (16 bytes) / sockaddr_in6 (28 bytes) with sa_len, as the routing socket wants them */
export function encodeSockaddr(address: string, port = 0): Uint8Array {
  const a = ipaddr.parse(address);
  const v6 = a.kind() === 'ipv6';
  const b = new Uint8Array(v6 ? 28 : 16);
  b[0] = b.length;
  b[1] = v6 ? AF_INET6 : AF_INET;
  new DataView(b.buffer).setUint16(2, port, false);
  b.set(a.toByteArray(), v6 ? 8 : 4);
  return b;
}

/** struct sockaddr_dl is 20 bytes (sdl_data[12]); AF_LINK 18 */
export const SOCKADDR_DL_SIZE = 20;
const AF_LINK = 18;

/**
 * An RTM_GET request for `dst`: the kernel answers with the route it would use. RTA_IFP with
 * an empty sockaddr_dl asks it to name the interface too (as route(8)'s `get` does).
 */
export function encodeRtmGet(dst: string, seq: number, pid = 0): Uint8Array {
  const sa = encodeSockaddr(dst);
  const padded = (sa.length + 3) & ~3;
  const b = new Uint8Array(RT_MSGHDR_SIZE + padded + SOCKADDR_DL_SIZE);
  b[RT_MSGHDR_SIZE + padded] = SOCKADDR_DL_SIZE;
  b[RT_MSGHDR_SIZE + padded + 1] = AF_LINK;
  const dv = new DataView(b.buffer);
  dv.setUint16(0, b.length, true);
  b[2] = RTM_VERSION;
  b[3] = RTM_GET;
  dv.setInt32(12, RTA_DST | RTA_IFP, true);
  dv.setInt32(16, pid, true);
  dv.setInt32(20, seq, true);
  b.set(sa, RT_MSGHDR_SIZE);
  return b;
}

export const PFIOC_NATLOOK_SIZE = 84;
export const DIOCNATLOOK = iowr('D', 23, PFIOC_NATLOOK_SIZE);
export const PF_IN = 1;
export const PF_OUT = 2;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

export interface Endpoint {
  address: string;
  port: number;
}

/**
 * The lookup of a connection `rdr` redirected to us: saddr/sxport = the client (the
 * accepted socket's remote end), daddr/dxport = where it arrived (our listener), direction
 * PF_OUT (the redirected packets left the host on lo0); the kernel fills rdaddr/rdxport.
 */
export function encodeNatlook(
  client: Endpoint,
  arrived: Endpoint,
  proto: 'tcp' | 'udp' = 'tcp',
  direction: typeof PF_IN | typeof PF_OUT = PF_OUT,
): Uint8Array {
  const c = ipaddr.parse(client.address);
  const d = ipaddr.parse(arrived.address);
  if (c.kind() !== d.kind()) throw new Error('natlook: client and listener of different families');
  const b = new Uint8Array(PFIOC_NATLOOK_SIZE);
  const dv = new DataView(b.buffer);
  b.set(c.toByteArray(), 0);
  b.set(d.toByteArray(), 16);
  dv.setUint16(64, client.port, false);
  dv.setUint16(68, arrived.port, false);
  b[80] = c.kind() === 'ipv6' ? AF_INET6 : AF_INET;
  b[81] = proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
  b[83] = direction;
  return b;
}

/**
 * The untranslated source the kernel wrote into rsaddr / rsxport: a PF_IN lookup (xnu
 * pf_ioctl.c DIOCNATLOOK: the state found by ext_gwy = daddr, gwy = saddr; rsaddr = its lan).
 */
export function decodeNatlookSource(b: Uint8Array): Endpoint {
  if (b.length < PFIOC_NATLOOK_SIZE) throw new Error('short pfioc_natlook');
  const v6 = b[80] === AF_INET6;
  const raw = b.subarray(32, v6 ? 48 : 36);
  return {
    address: ipaddr.fromByteArray([...raw]).toString(),
    port: new DataView(b.buffer, b.byteOffset, b.length).getUint16(72, false),
  };
}

/** The original destination the kernel wrote into rdaddr / rdxport. */
export function decodeNatlook(b: Uint8Array): Endpoint {
  if (b.length < PFIOC_NATLOOK_SIZE) throw new Error('short pfioc_natlook');
  const v6 = b[80] === AF_INET6;
  const raw = b.subarray(48, v6 ? 64 : 52);
  return {
    address: ipaddr.fromByteArray([...raw]).toString(),
    port: new DataView(b.buffer, b.byteOffset, b.length).getUint16(76, false),
  };
}

export const PROC_PIDPATHINFO_MAXSIZE = 4096;

/** proc_listallpids' buffer: `count` pid_t; zero entries (never a real pid here) are dropped */
export function decodePids(b: Uint8Array, count: number): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const n = Math.min(count, Math.floor(b.length / 4));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = dv.getInt32(i * 4, true);
    if (p > 0) out.push(p);
  }
  return out;
}

/** proc_pidpath's buffer: `len` bytes of path (the call's return value), or up to the NUL */
export function decodePath(b: Uint8Array, len: number): string | undefined {
  if (len <= 0) return undefined;
  const end = b.subarray(0, Math.min(len, b.length)).indexOf(0);
  return Buffer.from(b.subarray(0, end < 0 ? Math.min(len, b.length) : end)).toString('utf8');
}

export const PROC_PIDT_SHORTBSDINFO = 13;
export const PROC_BSDSHORTINFO_SIZE = 64;

export interface BsdShortInfo {
  pid: number;
  ppid: number;
  /** p_comm: the executable's name, cut at MAXCOMLEN (16) bytes */
  comm: string;
  /** effective uid: whose sockets these are (PF's `user` matches it) */
  uid: number;
}

/** proc_pidinfo(PROC_PIDT_SHORTBSDINFO)'s buffer; undefined unless the call filled all 64 bytes */
export function decodeBsdShortInfo(b: Uint8Array, len: number): BsdShortInfo | undefined {
  if (len !== PROC_BSDSHORTINFO_SIZE || b.length < PROC_BSDSHORTINFO_SIZE) return undefined;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const comm = b.subarray(16, 32);
  const end = comm.indexOf(0);
  return {
    pid: dv.getUint32(0, true),
    ppid: dv.getUint32(4, true),
    comm: Buffer.from(comm.subarray(0, end < 0 ? 16 : end)).toString('utf8'),
    uid: dv.getUint32(36, true),
  };
}

export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
export const IP_BOUND_IF = 25;
export const IPV6_BOUND_IF = 125;

/** the option value: the interface index as a host-order int */
export function encodeBoundIf(index: number): Uint8Array {
  if (!Number.isInteger(index) || index <= 0) throw new Error(`bad interface index ${index}`);
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, index, true);
  return b;
}

/** UTUN_OPT_IFNAME's answer: the NUL-terminated name in a buffer of IFNAMSIZ */
export function decodeIfname(b: Uint8Array, len: number): string {
  const s = b.subarray(0, Math.min(len, b.length));
  const end = s.indexOf(0);
  return Buffer.from(end < 0 ? s : s.subarray(0, end)).toString('utf8');
}

export const XUCRED_VERSION = 0;
export const XUCRED_NGROUPS = 16;
export const XUCRED_SIZE = 76;

export interface Xucred {
  uid: number;
  /** the effective gid (cr_groups[0]) */
  gid: number;
  /** the first cr_ngroups of cr_groups (the effective gid first) */
  groups: number[];
}

/** LOCAL_PEERCRED's buffer (`len`: what getsockopt returned); throws unless it is a whole version-0 xucred */
export function decodeXucred(b: Uint8Array, len: number): Xucred {
  if (len !== XUCRED_SIZE || b.length < XUCRED_SIZE)
    throw new Error(`struct xucred of ${len} bytes (want ${XUCRED_SIZE})`);
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const version = dv.getUint32(0, true);
  if (version !== XUCRED_VERSION)
    throw new Error(`struct xucred version ${version} (want ${XUCRED_VERSION})`);
  const n = dv.getInt16(8, true);
  if (n < 1 || n > XUCRED_NGROUPS) throw new Error(`struct xucred with ${n} groups`);
  const groups: number[] = [];
  for (let i = 0; i < n; i++) groups.push(dv.getUint32(12 + 4 * i, true));
  return { uid: dv.getUint32(4, true), gid: groups[0]!, groups };
}

/** LOCAL_PEERPID's buffer: a pid_t */
export function decodePeerPid(b: Uint8Array, len: number): number {
  if (len !== 4 || b.length < 4) throw new Error(`pid_t of ${len} bytes`);
  return new DataView(b.buffer, b.byteOffset, b.length).getInt32(0, true);
}

export const KAUTH_FILESEC_MAGIC = 0x012cc16d;
export const KAUTH_FILESEC_NOACL = 0xffffffff;
export const KAUTH_FILESEC_HEADER = 44;
export const KAUTH_ACE_SIZE = 24;
export const KAUTH_ACE_PERMIT = 1;
export const KAUTH_ACE_DENY = 2;
export const KAUTH_ACE_ONLY_INHERIT = 1 << 8;

/** KAUTH_VNODE_* rights in an ACE (sys/kauth.h; sys/acl.h's ACL_* perms have the same values) */
export const ACE_RIGHTS = {
  READ_DATA: 1 << 1, // LIST_DIRECTORY
  WRITE_DATA: 1 << 2, // ADD_FILE
  EXECUTE: 1 << 3, // SEARCH
  DELETE: 1 << 4,
  APPEND_DATA: 1 << 5, // ADD_SUBDIRECTORY
  DELETE_CHILD: 1 << 6,
  READ_ATTRIBUTES: 1 << 7,
  WRITE_ATTRIBUTES: 1 << 8,
  READ_EXTATTRIBUTES: 1 << 9,
  WRITE_EXTATTRIBUTES: 1 << 10,
  READ_SECURITY: 1 << 11,
  WRITE_SECURITY: 1 << 12,
  TAKE_OWNERSHIP: 1 << 13,
  GENERIC_ALL: 1 << 21,
  GENERIC_EXECUTE: 1 << 22,
  GENERIC_WRITE: 1 << 23,
  GENERIC_READ: 1 << 24,
} as const;

export interface Ace {
  /** the user or group the entry is for (a GUID: macOS names users and groups by UUID in ACLs) */
  applicable: string;
  /** ace_flags & 0xf: 1 permit, 2 deny (3 audit, 4 alarm: never evaluated) */
  kind: number;
  flags: number;
  rights: number;
}

const guid = (b: Uint8Array) => {
  const h = Buffer.from(b).toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

/** acl_copy_ext's buffer (`len` bytes): its entries; throws unless it is a whole kauth_filesec */
export function decodeAclExt(b: Uint8Array, len: number): Ace[] {
  if (len < KAUTH_FILESEC_HEADER || b.length < len)
    throw new Error(`kauth_filesec of ${len} bytes`);
  const dv = new DataView(b.buffer, b.byteOffset, len);
  const magic = dv.getUint32(0, false);
  if (magic !== KAUTH_FILESEC_MAGIC) throw new Error(`kauth_filesec magic 0x${magic.toString(16)}`);
  const count = dv.getUint32(36, false);
  if (count === KAUTH_FILESEC_NOACL) return [];
  if (len !== KAUTH_FILESEC_HEADER + count * KAUTH_ACE_SIZE)
    throw new Error(`kauth_filesec of ${len} bytes for ${count} entries`);
  const out: Ace[] = [];
  for (let i = 0; i < count; i++) {
    const o = KAUTH_FILESEC_HEADER + i * KAUTH_ACE_SIZE;
    const flags = dv.getUint32(o + 16, false);
    out.push({
      applicable: guid(b.subarray(o, o + 16)),
      kind: flags & 0xf,
      flags,
      rights: dv.getUint32(o + 20, false),
    });
  }
  return out;
}
