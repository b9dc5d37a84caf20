/**
 * What a DNS response (RFC 1035 §4) says about where a name lives, for domain learning: the
 * question name, the CNAME chain that starts at it, and the A and AAAA records reachable
 * through that chain with their effective TTL. Pure. The response is hostile input: names are
 * read by `readName` (dns-wire.ts: bounds-checked, pointers strictly backwards, so no loops),
 * every record is bounds-checked, and anything that does not parse whole — a truncated record,
 * counts larger than the message, a CNAME loop or a chain longer than `MAX_CHAIN_HOPS`, two
 * different CNAMEs for one owner — is refused as a whole (`{kind: 'none'}`: learn nothing).
 * Nothing here throws on any input, and the work is linear in the message's size.
 */
import { TYPE_A, TYPE_AAAA, readName } from './dns-wire.js';
import ipaddr from './ipaddr.js';

const TYPE_CNAME = 5;
const CLASS_IN = 1;
const HEADER = 12;
/** CNAME hops followed from the question name; a longer chain is refused */
export const MAX_CHAIN_HOPS = 16;
/** the TTL clamp's defaults, seconds */
export const DEFAULT_MIN_TTL = 10;
export const DEFAULT_MAX_TTL = 3600;

export interface ChainAddress {
  /** canonical text form (ipaddr.js) */
  addr: string;
  family: 4 | 6;
  /** the owner of the address record (the question name or a CNAME target) */
  owner: string;
  /** min(TTLs of the CNAMEs from the question to `owner`, the record's own TTL), clamped; s */
  ttl: number;
}

export interface AnswerChain {
  /** the question name, lower-cased, without the trailing dot */
  question: string;
  qtype: number;
  /** the question name, then each CNAME target in chain order */
  names: string[];
  /** distinct addresses reachable from the question name, in answer order */
  addresses: ChainAddress[];
}

export type ChainResult =
  | { kind: 'chain'; chain: AnswerChain }
  /** nothing to learn: `reason` says why (for logs and counters; not for users to parse) */
  | { kind: 'none'; reason: string };

export interface ChainOptions {
  /** lower bound of an address's TTL, seconds (default 10) */
  minTtl?: number | undefined;
  /** upper bound of an address's TTL, seconds (default 3600) */
  maxTtl?: number | undefined;
}

const none = (reason: string): ChainResult => ({ kind: 'none', reason });

/** RFC 2181 §8: a TTL with the top bit set is read as 0. */
const ttlOf = (m: Buffer, o: number): number => {
  const v = m.readUInt32BE(o);
  return v > 0x7fffffff ? 0 : v;
};

/**
 * Reads the response `m` (as a resolver sent it: header, one question, answer section; the
 * authority and additional sections are not read and may be anything). Learned only from a
 * NOERROR response with QR=1, OPCODE=QUERY, TC=0 and exactly one question; only class IN
 * records of the answer section count.
 */
export function readAnswerChain(m: Uint8Array, opts: ChainOptions = {}): ChainResult {
  try {
    return read(Buffer.from(m.buffer, m.byteOffset, m.byteLength), opts);
  } catch {
    // every read is bounds-checked; this only keeps the promise "never throws"
    return none('unreadable');
  }
}

function read(b: Buffer, opts: ChainOptions): ChainResult {
  const minTtl = opts.minTtl ?? DEFAULT_MIN_TTL;
  const maxTtl = Math.max(minTtl, opts.maxTtl ?? DEFAULT_MAX_TTL);
  if (b.length < HEADER) return none('shorter than a header');
  const flags = b.readUInt16BE(2);
  if (!(flags & 0x8000)) return none('not a response');
  if (flags & 0x7800) return none('not a standard query');
  if (flags & 0x0200) return none('truncated (TC=1)');
  if ((flags & 0x000f) !== 0) return none(`rcode ${flags & 0x000f}`);
  if (b.readUInt16BE(4) !== 1) return none('not exactly one question');
  const q = readName(b, HEADER);
  if (!q || q.end + 4 > b.length) return none('malformed question');
  const qtype = b.readUInt16BE(q.end);
  if (b.readUInt16BE(q.end + 2) !== CLASS_IN) return none('question class is not IN');
  const ancount = b.readUInt16BE(6);
  // each record takes at least 11 bytes: a count the message cannot hold is refused at once
  if (ancount * 11 > b.length - q.end - 4) return none('answer count larger than the message');

  const cnames = new Map<string, { target: string; ttl: number }>();
  const records: { owner: string; addr: string; family: 4 | 6; ttl: number }[] = [];
  let o = q.end + 4;
  for (let i = 0; i < ancount; i++) {
    const owner = readName(b, o);
    if (!owner || owner.end + 10 > b.length) return none('truncated record');
    const rtype = b.readUInt16BE(owner.end);
    const rclass = b.readUInt16BE(owner.end + 2);
    const ttl = ttlOf(b, owner.end + 4);
    const rdlen = b.readUInt16BE(owner.end + 8);
    const rdata = owner.end + 10;
    if (rdata + rdlen > b.length) return none('truncated record data');
    o = rdata + rdlen;
    if (rclass !== CLASS_IN) continue;
    if (rtype === TYPE_CNAME) {
      const target = readName(b, rdata);
      if (!target || target.end !== o) return none('malformed CNAME');
      const had = cnames.get(owner.name);
      if (had && had.target !== target.name) return none(`two CNAMEs for ${owner.name}`);
      cnames.set(owner.name, { target: target.name, ttl: had ? Math.min(had.ttl, ttl) : ttl });
    } else if (rtype === TYPE_A || rtype === TYPE_AAAA) {
      const family = rtype === TYPE_A ? 4 : 6;
      if (rdlen !== (family === 4 ? 4 : 16)) return none('address record of the wrong length');
      const addr =
        family === 4
          ? `${b[rdata]}.${b[rdata + 1]}.${b[rdata + 2]}.${b[rdata + 3]}`
          : ipaddr.fromByteArray([...b.subarray(rdata, o)]).toString();
      records.push({ owner: owner.name, addr, family, ttl });
    }
  }

  // the chain from the question: name → the least TTL of the CNAMEs that lead to it
  const reach = new Map<string, number>([[q.name, Infinity]]);
  const names = [q.name];
  for (let at = q.name, ttl = Infinity; ;) {
    const next = cnames.get(at);
    if (!next) break;
    if (reach.has(next.target)) return none('CNAME loop');
    if (names.length > MAX_CHAIN_HOPS) return none('CNAME chain too long');
    ttl = Math.min(ttl, next.ttl);
    at = next.target;
    reach.set(at, ttl);
    names.push(at);
  }

  const addresses: ChainAddress[] = [];
  const seen = new Map<string, ChainAddress>();
  for (const r of records) {
    const via = reach.get(r.owner);
    if (via === undefined) continue;
    const ttl = clampTtl(Math.min(via, r.ttl), minTtl, maxTtl);
    const had = seen.get(r.addr);
    if (had) {
      had.ttl = Math.max(had.ttl, ttl); // one address by two paths: the longer-lived one
      continue;
    }
    const a: ChainAddress = { addr: r.addr, family: r.family, owner: r.owner, ttl };
    seen.set(r.addr, a);
    addresses.push(a);
  }
  return { kind: 'chain', chain: { question: q.name, qtype, names, addresses } };
}

/** `ttl` within [min, max]. */
export function clampTtl(ttl: number, min: number, max: number): number {
  return Math.min(Math.max(ttl, min), Math.max(min, max));
}
