/**
 * A list's parse, kept as bytes (parsed-lists.ts keeps them in the state directory): the
 * next process that reads the same list content takes the parse from them instead of parsing
 * and merging 100,000 lines again (≈ 0.2 s of every `awg apply` with such a list; bench/
 * RESULTS.md "Step 24 — lists, second round"). Pure.
 *
 * What a snapshot is trusted for, and how little: it is used only for the exact bytes it names
 * (their SHA-256), read with the same options (format, category) by the same parser (`version`:
 * the layout's and the program's). Its payload carries its own SHA-256 (a torn or damaged file
 * is refused), and decoding checks everything the loader relies on: the counts against the
 * payload's lengths, the intervals sorted, disjoint, non-adjacent and in range, every domain
 * record a name the grammar admits (DomainSet.fromRecords), every keyword and regex as their
 * parsers give them. Anything else — and any snapshot of a parse with issues, which is never
 * written — means the list is parsed as if there were none.
 *
 * Layout (little-endian): `awgplst1`, the list's SHA-256, the payload's SHA-256, then the
 * payload: the key (u16 length, UTF-8: version, format and category), the format read
 * (u8 length, ASCII), the counts (entries, redundant, cidrs4, cidrs6: u32 each), whether the
 * address entries share no address (u8: 1 or 0; lists.ts `addressesDisjoint`), the IPv4
 * intervals (u32 count, then start and end u32 each), the IPv6 intervals (u32 count, then start
 * and end as 16 bytes big-endian each), the domain records (u32 length, the bytes), the keywords
 * (u32 count, each u16 length and ASCII), the regexes (u32 count, each u32 length and UTF-8).
 */
import { createHash } from 'node:crypto';
import { DomainSet } from './domain-set.js';
import type { ParsedList } from './list-formats/index.js';
import { LIST_FORMATS, type ListFormat } from './list-formats/types.js';
import { parseKeyword, parseRegex } from './list-grammar.js';
import type { LinearRegex } from '../util/linear-regex.js';
import { addressesDisjoint, markDisjoint, type Interval } from './lists.js';

const MAGIC = Buffer.from('awgplst1', 'latin1');
/** the layout's version: part of every key (a change of the layout or of the parse bumps it) */
export const LIST_SNAPSHOT_LAYOUT = 2;
const HEAD = MAGIC.length + 64;
const U32_MAX = 0xffffffff;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** what, besides the list's bytes, a parse depends on */
export interface SnapshotKey {
  /** the program's version (a new parser parses again) */
  program: string;
  format?: string | undefined;
  category?: string | undefined;
}

const keyText = (k: SnapshotKey): string =>
  `${LIST_SNAPSHOT_LAYOUT}\0${k.program}\0${k.format ?? ''}\0${k.category ?? ''}`;

export const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

const viewOf = (b: Buffer): DataView => new DataView(b.buffer, b.byteOffset, b.length);

class Writer {
  private buf = Buffer.allocUnsafe(1 << 16);
  private view = viewOf(this.buf);
  used = 0;
  private room(n: number): void {
    if (this.used + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.used + n, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.used);
    this.buf = grown;
    this.view = viewOf(grown);
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.used++] = v;
  }
  u16(v: number): void {
    this.room(2);
    this.used = this.buf.writeUInt16LE(v, this.used);
  }
  u32(v: number): void {
    this.room(4);
    this.used = this.buf.writeUInt32LE(v >>> 0, this.used);
  }
  u128(v: bigint): void {
    this.room(16);
    // DataView's setter takes the value modulo 2^64 (the low half as it is), natively;
    // Buffer#writeBigUInt64BE splits it with BigInt arithmetic in JavaScript
    this.view.setBigUint64(this.used, v >> 64n);
    this.view.setBigUint64(this.used + 8, v);
    this.used += 16;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.used);
    this.used += b.length;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.used);
  }
}

/** The snapshot of `parsed`, the parse of `listBytes` under `key`; undefined for a parse with issues (never kept). */
export function encodeParsedList(
  parsed: ParsedList,
  listBytes: Uint8Array,
  key: SnapshotKey,
): Buffer | undefined {
  if (parsed.issues.length) return undefined;
  const { set } = parsed;
  const w = new Writer();
  const k = Buffer.from(keyText(key), 'utf8');
  if (k.length > 0xffff) return undefined;
  w.u16(k.length);
  w.bytes(k);
  w.u8(parsed.format.length);
  w.bytes(Buffer.from(parsed.format, 'latin1'));
  const c = set.counts;
  for (const n of [c.entries, c.redundant, c.cidrs4, c.cidrs6]) {
    if (!Number.isSafeInteger(n) || n < 0 || n > U32_MAX) return undefined;
    w.u32(n);
  }
  w.u8(addressesDisjoint(set) ? 1 : 0);
  w.u32(set.v4.length);
  if (LITTLE_ENDIAN) {
    // the pairs as one Uint32Array: a write call per number is most of the encode, cold
    const a = new Uint32Array(2 * set.v4.length);
    for (let i = 0; i < set.v4.length; i++) {
      a[2 * i] = set.v4[i]!.start;
      a[2 * i + 1] = set.v4[i]!.end;
    }
    w.bytes(new Uint8Array(a.buffer));
  } else
    for (const i of set.v4) {
      w.u32(i.start);
      w.u32(i.end);
    }
  w.u32(set.v6.length);
  for (const i of set.v6) {
    w.u128(i.start);
    w.u128(i.end);
  }
  const { buf, kw, rx } = set.domains.records;
  w.u32(buf.length);
  w.bytes(buf);
  w.u32(kw.length);
  for (const s of kw) {
    w.u16(s.length);
    w.bytes(Buffer.from(s, 'latin1'));
  }
  w.u32(rx.length);
  for (const r of rx) {
    const b = Buffer.from(r.source, 'utf8');
    w.u32(b.length);
    w.bytes(b);
  }
  const payload = w.done();
  return Buffer.concat([MAGIC, sha256(listBytes), sha256(payload), payload]);
}

/** a bounds-checked reader: every read past the end throws (the snapshot is refused) */
class Reader {
  off = 0;
  private readonly view: DataView;
  constructor(private readonly b: Buffer) {
    this.view = viewOf(b);
  }
  private need(n: number): void {
    if (this.off + n > this.b.length) throw new RangeError('short');
  }
  u8(): number {
    this.need(1);
    return this.b[this.off++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.b.readUInt16LE(this.off);
    this.off += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }
  u128(): bigint {
    this.need(16);
    const o = this.off;
    this.off += 16;
    return (this.view.getBigUint64(o) << 64n) | this.view.getBigUint64(o + 8);
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  get left(): number {
    return this.b.length - this.off;
  }
}

/**
 * `n` IPv4 intervals of `b` (start and end, u32 little-endian each), or undefined unless they
 * are sorted, disjoint and non-adjacent (what mergeIntervals gives). Read through a Uint32Array
 * copy where the host is little-endian: this runs once per process, before V8 optimises it.
 */
function intervals4(b: Buffer, n: number): Interval<number>[] | undefined {
  const w = LITTLE_ENDIAN ? new Uint32Array(new Uint8Array(b).buffer) : undefined;
  const out = new Array<Interval<number>>(n);
  let prev = -1;
  for (let i = 0; i < n; i++) {
    const start = w ? w[2 * i]! : b.readUInt32LE(8 * i);
    const end = w ? w[2 * i + 1]! : b.readUInt32LE(8 * i + 4);
    if (start > end || (i > 0 && prev + 1 >= start)) return undefined;
    out[i] = { start, end };
    prev = end;
  }
  return out;
}

/** sorted, disjoint and non-adjacent (what mergeIntervals gives) */
function merged6(xs: readonly Interval<bigint>[]): boolean {
  for (let i = 0; i < xs.length; i++)
    if (xs[i]!.start > xs[i]!.end || (i > 0 && xs[i - 1]!.end + 1n >= xs[i]!.start)) return false;
  return true;
}

/**
 * The parse a snapshot holds, when it is one of `listBytes` under `key` and passes every check
 * (the file's comment); undefined otherwise (parse the list).
 */
export function decodeParsedList(
  data: Buffer,
  listBytes: Uint8Array,
  key: SnapshotKey,
): ParsedList | undefined {
  if (data.length < HEAD || !data.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  if (!data.subarray(MAGIC.length, MAGIC.length + 32).equals(sha256(listBytes))) return undefined;
  const payload = data.subarray(HEAD);
  if (!data.subarray(MAGIC.length + 32, HEAD).equals(sha256(payload))) return undefined;
  try {
    return decodePayload(new Reader(payload), key);
  } catch (e) {
    if (e instanceof RangeError) return undefined;
    throw e;
  }
}

function decodePayload(r: Reader, key: SnapshotKey): ParsedList | undefined {
  if (r.bytes(r.u16()).toString('utf8') !== keyText(key)) return undefined;
  const format = r.bytes(r.u8()).toString('latin1') as ListFormat;
  if (!LIST_FORMATS.includes(format)) return undefined;
  const [entries, redundant, cidrs4, cidrs6] = [r.u32(), r.u32(), r.u32(), r.u32()];
  const disjoint = r.u8();
  if (disjoint > 1) return undefined;
  // each interval holds at least one entry: more intervals than entries is not a parse
  const n4 = r.u32();
  if (n4 > cidrs4 || n4 * 8 > r.left) return undefined;
  const v4 = intervals4(r.bytes(n4 * 8), n4);
  const n6 = r.u32();
  if (n6 > cidrs6 || n6 * 32 > r.left) return undefined;
  const v6: Interval<bigint>[] = new Array<Interval<bigint>>(n6);
  for (let i = 0; i < n6; i++) v6[i] = { start: r.u128(), end: r.u128() };
  if (!v4 || !merged6(v6)) return undefined;
  // a copy: the set outlives the file's buffer
  const names = Buffer.from(r.bytes(r.u32()));
  const nk = r.u32();
  if (nk > r.left) return undefined;
  const kw: string[] = [];
  for (let i = 0; i < nk; i++) {
    const s = r.bytes(r.u16()).toString('latin1');
    const e = parseKeyword(s);
    if (typeof e === 'string' || e.kind !== 'keyword' || e.value !== s) return undefined;
    kw.push(s);
  }
  const nr = r.u32();
  if (nr > r.left) return undefined;
  const rx: { source: string; re: LinearRegex }[] = [];
  for (let i = 0; i < nr; i++) {
    const e = parseRegex(r.bytes(r.u32()).toString('utf8'));
    if (typeof e === 'string' || e.kind !== 'regex') return undefined;
    rx.push({ source: e.source, re: e.re });
  }
  if (r.left !== 0) return undefined;
  const domains =
    names.length || kw.length || rx.length ? DomainSet.fromRecords(names, kw, rx) : DomainSet.EMPTY;
  if (!domains) return undefined;
  // every entry read is an address, a domain entry kept, or one dropped (Collector's counts)
  if (cidrs4 + cidrs6 + domains.size + redundant !== entries) return undefined;
  const set = { domains, v4, v6, counts: { entries, redundant, cidrs4, cidrs6 } };
  return { format, set: markDisjoint(set, disjoint === 1), issues: [] };
}
