/**
 * Generic netlink (NETLINK_GENERIC) message layouts: the 4-byte genlmsghdr after nlmsghdr,
 * attributes that nest (NLA_F_NESTED), and the control family's CTRL_CMD_GETFAMILY, which
 * maps a family's name to the message type its requests carry. Pure: no I/O. Host order
 * (LE) like rtnl.ts, whose nlmsghdr parsing this reuses.
 *
 * Facts (linux/genetlink.h, linux/netlink.h): GENL_ID_CTRL is 0x10; CTRL_CMD_NEWFAMILY 1 is
 * the reply to CTRL_CMD_GETFAMILY 3; CTRL_ATTR_FAMILY_ID 1 (u16), CTRL_ATTR_FAMILY_NAME 2
 * (NUL-terminated). An attribute's type carries two flag bits, NLA_F_NESTED (1 << 15) and
 * NLA_F_NET_BYTEORDER (1 << 14); readers mask them off. Asking the control family for an
 * unknown name makes the kernel try `request_module("net-pf-16-proto-16-family-<name>")`
 * first, so a module that is installed but not loaded is loaded by the question.
 */
import { align4, buildMessage, NLM_F_ACK, NLM_F_REQUEST, type NlMessage } from './rtnl.js';

export const NETLINK_GENERIC = 16;
export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = 0x3fff;
export const NLA_HDRLEN = 4;

/** An attribute to encode: a value, or a list of attributes nested in it (NLA_F_NESTED set). */
export type Nla = { type: number; value: Buffer } | { type: number; nested: Nla[] };

export const nlaU8 = (type: number, v: number): Nla => ({ type, value: Buffer.from([v & 0xff]) });
export function nlaU16(type: number, v: number): Nla {
  const value = Buffer.alloc(2);
  value.writeUInt16LE(v, 0);
  return { type, value };
}
export function nlaU32(type: number, v: number): Nla {
  const value = Buffer.alloc(4);
  value.writeUInt32LE(v >>> 0, 0);
  return { type, value };
}
export const nlaStr = (type: number, s: string): Nla => ({
  type,
  value: Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]),
});
export const nlaNest = (type: number, nested: Nla[]): Nla => ({ type, nested });

/** Bytes `a` takes in a message, its padding to 4 included. */
export function nlaSize(a: Nla): number {
  return align4(NLA_HDRLEN + ('nested' in a ? nlaListSize(a.nested) : a.value.length));
}

export function nlaListSize(list: readonly Nla[]): number {
  let n = 0;
  for (const a of list) n += nlaSize(a);
  return n;
}

function writeNla(b: Buffer, off: number, a: Nla): number {
  if ('nested' in a) {
    const start = off;
    off += NLA_HDRLEN;
    for (const c of a.nested) off = writeNla(b, off, c);
    // a nest's length covers its children with their padding
    b.writeUInt16LE(off - start, start);
    b.writeUInt16LE((a.type & NLA_TYPE_MASK) | NLA_F_NESTED, start + 2);
    return off;
  }
  b.writeUInt16LE(NLA_HDRLEN + a.value.length, off);
  b.writeUInt16LE(a.type, off + 2);
  a.value.copy(b, off + NLA_HDRLEN);
  return off + align4(NLA_HDRLEN + a.value.length);
}

/** The attributes as they stand in a message, each padded to 4. */
export function encodeNlas(attrs: readonly Nla[]): Buffer {
  const b = Buffer.alloc(nlaListSize(attrs));
  let off = 0;
  for (const a of attrs) off = writeNla(b, off, a);
  return b;
}

/** nlmsghdr + genlmsghdr {cmd, version, 0} + attributes; throws past nla_len's 16 bits. */
export function genlMessage(
  family: number,
  cmd: number,
  version: number,
  flags: number,
  seq: number,
  portid: number,
  attrs: readonly Nla[] = [],
): Buffer {
  for (const a of attrs)
    if (nlaSize(a) > 0xffff)
      throw new RangeError(`netlink attribute ${a.type} of ${nlaSize(a)} bytes exceeds 65535`);
  // the genlmsghdr and the attributes after it, as one fixed header of rtnl.ts's message
  const body = Buffer.concat([Buffer.from([cmd, version, 0, 0]), encodeNlas(attrs)]);
  return buildMessage(family, flags, seq, portid, body);
}

export interface RawAttr {
  /** flags masked off */
  type: number;
  nested: boolean;
  value: Buffer;
}

/**
 * Every attribute of `buf` from `start`, in order, repeats kept (nested arrays repeat type 0).
 * Stops at a truncated tail.
 */
export function attrList(buf: Buffer, start = 0): RawAttr[] {
  const out: RawAttr[] = [];
  let off = start;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < NLA_HDRLEN || off + len > buf.length) break;
    const t = buf.readUInt16LE(off + 2);
    out.push({
      type: t & NLA_TYPE_MASK,
      nested: (t & NLA_F_NESTED) !== 0,
      value: buf.subarray(off + NLA_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** The genlmsghdr of a received generic netlink message and its attributes. */
export function parseGenl(m: NlMessage): { cmd: number; version: number; attrs: RawAttr[] } {
  if (m.payload.length < GENL_HDRLEN)
    throw new RangeError(`generic netlink message of ${m.payload.length} bytes`);
  return {
    cmd: m.payload.readUInt8(0),
    version: m.payload.readUInt8(1),
    attrs: attrList(m.payload, GENL_HDRLEN),
  };
}

/** CTRL_CMD_GETFAMILY for `name` (a request with an ACK: the reply comes before it). */
export function buildGetFamily(name: string, seq: number, portid = 0): Buffer {
  return genlMessage(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, NLM_F_REQUEST | NLM_F_ACK, seq, portid, [
    nlaStr(CTRL_ATTR_FAMILY_NAME, name),
  ]);
}

/** The family id in a CTRL_CMD_NEWFAMILY reply, or undefined when it carries none. */
export function parseFamilyId(m: NlMessage): number | undefined {
  if (m.type !== GENL_ID_CTRL) return undefined;
  const { cmd, attrs } = parseGenl(m);
  if (cmd !== CTRL_CMD_NEWFAMILY) return undefined;
  const id = attrs.find((a) => a.type === CTRL_ATTR_FAMILY_ID);
  return id && id.value.length >= 2 ? id.value.readUInt16LE(0) : undefined;
}
