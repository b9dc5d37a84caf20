/**
 * The DNS messages (RFC 1035 §4) of a stub resolver that asks for a host name's A or AAAA
 * records: build the query, read the answer. Pure. The answer is hostile input: every read is
 * bounds-checked, compression pointers must point backwards (no loops), and an answer that is
 * not for our question (ID, name, type, class) is refused as `mismatch`, never believed.
 */
import ipaddr from './ipaddr.js';

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
const TYPE_CNAME = 5;
const CLASS_IN = 1;
const HEADER = 12;
const MAX_NAME = 255;
/** CNAME hops followed inside one answer */
const MAX_CHAIN = 8;

export type QueryType = typeof TYPE_A | typeof TYPE_AAAA;

/** A host name a query can carry: labels of 1–63 letters, digits, `-`, `_`; 253 characters at most. */
export function isQueryName(name: string): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253) return false;
  return n.split('.').every((l) => l.length >= 1 && l.length <= 63 && /^[A-Za-z0-9_-]+$/.test(l));
}

function encodeName(name: string): Buffer {
  if (!isQueryName(name)) throw new Error(`not a host name: ${JSON.stringify(name)}`);
  const labels = (name.endsWith('.') ? name.slice(0, -1) : name).split('.');
  return Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.of(l.length), Buffer.from(l, 'ascii')])),
    Buffer.of(0),
  ]);
}

/** A recursive (RD) query for `name`'s records of `type`, with message id `id`. */
export function buildQuery(id: number, name: string, type: QueryType): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt16BE(id & 0xffff, 0);
  h.writeUInt16BE(0x0100, 2); // RD
  h.writeUInt16BE(1, 4); // QDCOUNT
  const q = Buffer.alloc(4);
  q.writeUInt16BE(type, 0);
  q.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([h, encodeName(name), q]);
}

/**
 * The name at `o` (lower-cased, no trailing dot) and the offset after it, or undefined when
 * it runs past the end, is longer than 255 bytes, uses a reserved label type, or has a
 * pointer that does not point strictly backwards.
 */
export function readName(m: Uint8Array, o: number): { name: string; end: number } | undefined {
  const labels: string[] = [];
  let total = 0;
  let end = -1;
  let at = o;
  for (let hops = 0; hops < 128; hops++) {
    if (at >= m.length) return undefined;
    const len = m[at]!;
    if (len === 0) {
      if (end < 0) end = at + 1;
      return { name: labels.join('.').toLowerCase(), end };
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (at + 1 >= m.length) return undefined;
      const ptr = ((len & 0x3f) << 8) | m[at + 1]!;
      if (ptr >= at) return undefined;
      if (end < 0) end = at + 2;
      at = ptr;
      continue;
    }
    if (kind !== 0) return undefined;
    total += len + 1;
    if (total > MAX_NAME || at + 1 + len > m.length) return undefined;
    labels.push(latin1(m, at + 1, at + 1 + len));
    at += 1 + len;
  }
  return undefined;
}

/** bytes `from`…`to` of `m` as Latin-1 text, without copying them */
function latin1(m: Uint8Array, from: number, to: number): string {
  const b = Buffer.isBuffer(m) ? m : Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  return b.toString('latin1', from, to);
}

export type AnswerResult =
  /** NOERROR: the addresses of `name` (possibly none: the name has no records of this type) */
  | { kind: 'answer'; addresses: string[] }
  /** NXDOMAIN: the name does not exist */
  | { kind: 'nxdomain' }
  /** TC=1: ask again over TCP */
  | { kind: 'truncated' }
  /** SERVFAIL, REFUSED, …: ask another server */
  | { kind: 'error'; rcode: number }
  /** not an answer to this query (other id, question, or not a response): ignore it */
  | { kind: 'mismatch' }
  /** an answer to this query that does not parse */
  | { kind: 'malformed' };

/**
 * Reads the answer to the query (`id`, `name`, `type`). Addresses are those of records of
 * `type` owned by `name` or by a name it is a CNAME of (within this answer, 8 hops at most),
 * in the order given, without duplicates.
 */
export function parseAnswer(
  m: Uint8Array,
  id: number,
  name: string,
  type: QueryType,
): AnswerResult {
  if (m.length < HEADER) return { kind: 'mismatch' };
  const b = Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  const flags = b.readUInt16BE(2);
  if (b.readUInt16BE(0) !== (id & 0xffff) || !(flags & 0x8000) || (flags & 0x7800) !== 0)
    return { kind: 'mismatch' };
  if (b.readUInt16BE(4) !== 1) return { kind: 'mismatch' };
  const q = readName(b, HEADER);
  const want = (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
  if (
    !q ||
    q.end + 4 > b.length ||
    q.name !== want ||
    b.readUInt16BE(q.end) !== type ||
    b.readUInt16BE(q.end + 2) !== CLASS_IN
  )
    return { kind: 'mismatch' };
  if (flags & 0x0200) return { kind: 'truncated' };
  const rcode = flags & 0x000f;
  if (rcode === 3) return { kind: 'nxdomain' };
  if (rcode !== 0) return { kind: 'error', rcode };
  const ancount = b.readUInt16BE(6);
  let o = q.end + 4;
  const cnames = new Map<string, string>();
  const records: { owner: string; address: string }[] = [];
  for (let i = 0; i < ancount; i++) {
    const owner = readName(b, o);
    if (!owner || owner.end + 10 > b.length) return { kind: 'malformed' };
    const rtype = b.readUInt16BE(owner.end);
    const rclass = b.readUInt16BE(owner.end + 2);
    const rdlen = b.readUInt16BE(owner.end + 8);
    const rdata = owner.end + 10;
    if (rdata + rdlen > b.length) return { kind: 'malformed' };
    o = rdata + rdlen;
    if (rclass !== CLASS_IN) continue;
    if (rtype === TYPE_CNAME) {
      const target = readName(b, rdata);
      if (!target || target.end > o) return { kind: 'malformed' };
      if (!cnames.has(owner.name)) cnames.set(owner.name, target.name);
    } else if (rtype === type && rdlen === (type === TYPE_A ? 4 : 16)) {
      records.push({
        owner: owner.name,
        address: ipaddr.fromByteArray([...b.subarray(rdata, rdata + rdlen)]).toString(),
      });
    }
  }
  const names = new Set([want]);
  for (let at = want, hops = 0; cnames.has(at) && hops < MAX_CHAIN; hops++) {
    at = cnames.get(at)!;
    names.add(at);
  }
  const addresses: string[] = [];
  for (const r of records)
    if (names.has(r.owner) && !addresses.includes(r.address)) addresses.push(r.address);
  return { kind: 'answer', addresses };
}
