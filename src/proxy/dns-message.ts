/**
 * The few facts about DNS messages (RFC 1035 §4.1, RFC 6891 EDNS) that the DNS forwarder of a
 * proxy tunnel needs (dns-forward.ts): read a stub resolver's query, check that an answer
 * belongs to it, fit an answer into the client's UDP size (cut at a record boundary, TC=1),
 * and build SERVFAIL. Pure; every function takes hostile bytes and returns undefined for
 * what it cannot read, never throws.
 */

export const HEADER = 12;
/** RFC 1035 §2.3.4: the UDP payload a client without EDNS accepts */
export const PLAIN_UDP_LIMIT = 512;

const QR = 0x8000;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;
const OPCODE = 0x7800;
export const RCODE_SERVFAIL = 2;
const TYPE_OPT = 41;

/**
 * Offset after the (possibly compressed) name at `o`, or -1 if it runs past the end, has a
 * label longer than 63 or a reserved label type, or is longer than 255 bytes. A pointer ends
 * the name; where it points is not followed (a cut never moves bytes, so pointers that were
 * valid stay valid).
 */
export function skipName(m: Buffer, o: number): number {
  let total = 0;
  for (;;) {
    if (o >= m.length) return -1;
    const len = m[o]!;
    if (len === 0) return o + 1;
    const kind = len & 0xc0;
    if (kind === 0xc0) return o + 2 <= m.length ? o + 2 : -1;
    if (kind !== 0) return -1;
    total += len + 1;
    if (total > 255) return -1;
    o += 1 + len;
  }
}

/** Offset after the question at `o` (an uncompressed name, type, class), or -1. */
function skipQuestion(m: Buffer, o: number): number {
  // a question name is never compressed (there is nothing before it to point at)
  for (let total = 0; ;) {
    if (o >= m.length) return -1;
    const len = m[o]!;
    if (len === 0) return o + 5 <= m.length ? o + 5 : -1;
    if (len & 0xc0) return -1;
    total += len + 1;
    if (total > 255) return -1;
    o += 1 + len;
  }
}

/** Offset after the resource record at `o`, or -1. */
function skipRecord(m: Buffer, o: number): number {
  const n = skipName(m, o);
  if (n < 0 || n + 10 > m.length) return -1;
  const end = n + 10 + m.readUInt16BE(n + 8);
  return end <= m.length ? end : -1;
}

export interface DnsQuery {
  id: number;
  /** the question section's bytes (name, type, class) */
  question: Buffer;
  /** the largest UDP answer the client takes: its EDNS payload size (at least 512), else 512 */
  udpLimit: number;
}

/**
 * A standard query (QR=0, OPCODE=QUERY, exactly one question, no answer or authority
 * records) as a stub resolver sends it, or undefined. The additional section may carry an
 * EDNS OPT record, whose class is the client's UDP payload size.
 */
export function parseQuery(m: Buffer): DnsQuery | undefined {
  if (m.length < HEADER || m.length > 65535) return undefined;
  const flags = m.readUInt16BE(2);
  if (flags & QR || flags & OPCODE) return undefined;
  if (m.readUInt16BE(4) !== 1 || m.readUInt16BE(6) !== 0 || m.readUInt16BE(8) !== 0)
    return undefined;
  const qend = skipQuestion(m, HEADER);
  if (qend < 0) return undefined;
  let udpLimit = PLAIN_UDP_LIMIT;
  let o = qend;
  for (let ar = m.readUInt16BE(10); ar > 0; ar--) {
    const n = skipName(m, o);
    const end = skipRecord(m, o);
    if (end < 0) return undefined;
    if (m[o] === 0 && m.readUInt16BE(n) === TYPE_OPT)
      udpLimit = Math.max(PLAIN_UDP_LIMIT, m.readUInt16BE(n + 2));
    o = end;
  }
  if (o !== m.length) return undefined;
  return { id: m.readUInt16BE(0), question: Buffer.from(m.subarray(HEADER, qend)), udpLimit };
}

/** ASCII case-insensitive equality of two question sections (resolvers may echo 0x20 case). */
function sameQuestion(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]!;
    let y = b[i]!;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

/**
 * Whether `r` is a well-formed response (header and records parse, nothing trails) to the
 * query `q` with id `id`: QR=1, the same OPCODE (QUERY) and exactly the question asked.
 */
export function isAnswerTo(r: Buffer, q: DnsQuery, id = q.id): boolean {
  if (r.length < HEADER || r.readUInt16BE(0) !== id) return false;
  const flags = r.readUInt16BE(2);
  if (!(flags & QR) || flags & OPCODE || r.readUInt16BE(4) !== 1) return false;
  const qend = skipQuestion(r, HEADER);
  if (qend < 0 || !sameQuestion(r.subarray(HEADER, qend), q.question)) return false;
  let o = qend;
  const records = r.readUInt16BE(6) + r.readUInt16BE(8) + r.readUInt16BE(10);
  for (let i = 0; i < records; i++) {
    o = skipRecord(r, o);
    if (o < 0) return false;
  }
  return o === r.length;
}

/**
 * `r` (a response that passed `isAnswerTo`) as it may go back over UDP to a client that takes
 * at most `limit` bytes: unchanged when it fits; otherwise the header, the question and the
 * records that fit whole, in order (the section counts adjusted), with TC=1 so a resolver
 * that can repeats the query over TCP (glibc does; musl before 1.2.4 keeps what it got).
 */
export function fitUdp(r: Buffer, limit: number): Buffer {
  if (r.length <= limit) return r;
  const qend = skipQuestion(r, HEADER);
  if (qend < 0 || qend > limit) {
    // not a response this module produced a check for: the header alone, TC=1, no question
    const h = Buffer.alloc(HEADER);
    r.copy(h, 0, 0, 4);
    h.writeUInt16BE(r.readUInt16BE(2) | TC, 2);
    return h;
  }
  const counts = [r.readUInt16BE(6), r.readUInt16BE(8), r.readUInt16BE(10)];
  const kept = [0, 0, 0];
  let o = qend;
  outer: for (let s = 0; s < 3; s++)
    for (let i = 0; i < counts[s]!; i++) {
      const end = skipRecord(r, o);
      if (end < 0 || end > limit) break outer;
      kept[s]!++;
      o = end;
    }
  const out = Buffer.from(r.subarray(0, Math.max(o, HEADER)));
  out.writeUInt16BE(r.readUInt16BE(2) | TC, 2);
  out.writeUInt16BE(kept[0]!, 6);
  out.writeUInt16BE(kept[1]!, 8);
  out.writeUInt16BE(kept[2]!, 10);
  return out;
}

/** SERVFAIL to `q`: the question echoed, RD as asked, RA=1 (we are the client's recursive service). */
export function servfail(q: DnsQuery, rd: boolean): Buffer {
  const out = Buffer.alloc(HEADER + q.question.length);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(QR | (rd ? RD : 0) | RA | RCODE_SERVFAIL, 2);
  out.writeUInt16BE(1, 4);
  q.question.copy(out, HEADER);
  return out;
}
