/**
 * The domain entries of a rule's destinations, held compactly (Step 21: registry-size lists).
 *
 * Entry kinds (list-formats/types.ts ListEntryKind) and what they fit:
 * - `domain` `example.org`: the name and every name under it;
 * - `wildcard` `*.example.net`: the names under it only;
 * - `full` `full:example.com`: that exact name only;
 * - `keyword` `keyword:google`: any name containing the text;
 * - `regex` `regexp:^ads?\.`: any name the pattern matches (util/linear-regex.ts, linear time),
 *   tested on the name in lowercase without its trailing dot.
 *
 * Names (the first three kinds) live in one Buffer of records `[length][kind bits][bytes]` —
 * lowercase ASCII, in the order first read — found through an open-addressing table of record
 * offsets. The hash is FNV-1a over a name's bytes from the last to the first, so one backward
 * pass over a queried name gives the hash of every suffix: a lookup costs one probe sequence per
 * label and allocates nothing. No JavaScript string per name is kept (≈ 27 bytes a name, table
 * included, instead of strings in arrays and Sets: 2.6 against 9.5 MiB per 100,000 names;
 * bench/RESULTS.md, Step 21).
 *
 * Redundancy (`finish`): a name entry under a `domain` or `wildcard` entry (a proper suffix) is
 * covered, and so are a `wildcard` or `full` entry of the same name as a `domain` entry; after
 * it at most one name entry fits any name, so which one matched is well defined. Keywords and
 * regexes are deduplicated, never covered (nor do they cover names).
 *
 * Matching order: the names (O(labels)), then the keywords (a linear scan), then the regexes
 * (each only when the name contains the literal the pattern requires: requiredLiteral).
 */
import { requiredLiteral, type LinearRegex } from '../util/linear-regex.js';

/** keyword and regex entries one rule may hold (more is an error where they are read) */
export const MAX_KEYWORDS = 10_000;
export const MAX_REGEXES = 10_000;

export type NameKind = 'domain' | 'wildcard' | 'full';

const DOMAIN = 1;
const WILDCARD = 2;
const FULL = 4;
const BIT: Readonly<Record<NameKind, number>> = { domain: DOMAIN, wildcard: WILDCARD, full: FULL };
/** the bits that fit the name itself, and the names under it */
const EXACT = DOMAIN | FULL;
const BELOW = DOMAIN | WILDCARD;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const DOT = 0x2e;

const step = (h: number, c: number): number => Math.imul(h ^ c, FNV_PRIME);
/** murmur3's finaliser: the table is indexed by the low bits */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
const popcount = (b: number): number => (b & 1) + ((b >> 1) & 1) + ((b >> 2) & 1);
const BITS = [DOMAIN, WILDCARD, FULL] as const;

/** the record at `off` in `buf` holds the lowercase bytes src[a, a + len) */
function sameBytes(buf: Uint8Array, off: number, src: Uint8Array, a: number, len: number): boolean {
  if (buf[off] !== len) return false;
  for (let k = 0; k < len; k++) if (buf[off + 2 + k] !== src[a + k]) return false;
  return true;
}

/** the record offset of the lowercase bytes src[a, a + len) hashed `h`, or -1 */
function probeBytes(
  table: Uint32Array,
  buf: Uint8Array,
  src: Uint8Array,
  a: number,
  len: number,
  h: number,
): number {
  const mask = table.length - 1;
  for (let slot = mix(h) & mask; ; slot = (slot + 1) & mask) {
    const o = table[slot]!;
    if (o === 0) return -1;
    if (sameBytes(buf, o - 1, src, a, len)) return o - 1;
  }
}

function hashBytes(src: Uint8Array, a: number, len: number): number {
  let h = FNV_OFFSET;
  for (let k = len - 1; k >= 0; k--) h = step(h, src[a + k]!);
  return h;
}

/**
 * A table for the `count` records of buf[0, used) at most `load` full; `hashes[r]` is record
 * r's hash (in buffer order), `keep[r]` (when given) whether it goes in.
 */
function tableFor(
  buf: Uint8Array,
  used: number,
  count: number,
  load: number,
  hashes: Uint32Array,
  keep?: Uint8Array,
): Uint32Array {
  let size = 2;
  while (size * load < count) size *= 2;
  const table = new Uint32Array(size);
  const mask = size - 1;
  for (let off = 0, r = 0, w = 0; off < used; off += 2 + buf[off]!, r++) {
    if (keep && !keep[r]) continue;
    let slot = mix(hashes[r]!) & mask;
    while (table[slot] !== 0) slot = (slot + 1) & mask;
    table[slot] = w + 1;
    w += 2 + buf[off]!;
  }
  return table;
}

interface Regex {
  source: string;
  /** a substring every match contains ('' when none: always tested) */
  literal: string;
  re: LinearRegex;
}

export interface DomainCounts {
  domains: number;
  wildcards: number;
  full: number;
  keywords: number;
  regexes: number;
}

const EMPTY_BUF = Buffer.alloc(0);

/** An immutable set of domain entries (build one with DomainSetBuilder). */
export class DomainSet {
  static readonly EMPTY: DomainSet = new DomainSet(EMPTY_BUF, new Uint32Array(2), [], []);

  readonly counts: Readonly<DomainCounts>;
  /** entries of every kind */
  readonly size: number;

  /** @internal DomainSetBuilder.finish makes them */
  constructor(
    private readonly buf: Buffer,
    private readonly table: Uint32Array,
    private readonly kw: readonly string[],
    private readonly rx: readonly Regex[],
  ) {
    const c: DomainCounts = { domains: 0, wildcards: 0, full: 0, keywords: kw.length, regexes: 0 };
    c.regexes = rx.length;
    for (let off = 0; off < buf.length; off += 2 + buf[off]!) {
      const b = buf[off + 1]!;
      if (b & DOMAIN) c.domains++;
      if (b & WILDCARD) c.wildcards++;
      if (b & FULL) c.full++;
    }
    this.counts = c;
    this.size = c.domains + c.wildcards + c.full + c.keywords + c.regexes;
  }

  /** bytes held by the name records and their table (the keywords and regexes not counted) */
  get bytes(): number {
    return this.buf.length + this.table.byteLength;
  }

  /** `name` as it appears in DNS (any case, an optional trailing dot) */
  matchDomain(name: string): boolean {
    return this.hit(name) !== -1;
  }

  /**
   * The entry that fits `name`, in its text form: `example.org`, `*.example.net`,
   * `full:example.com`, `keyword:google`, `regexp:…`; undefined when none does.
   */
  entryFor(name: string): string | undefined {
    const h = this.hit(name);
    if (h === -1) return undefined;
    if (h >= 0) {
      const off = Math.floor(h / 8);
      return entryText(this.buf, off, h % 8);
    }
    const k = -2 - h;
    return k < this.kw.length
      ? `keyword:${this.kw[k]}`
      : `regexp:${this.rx[k - this.kw.length]!.source}`;
  }

  /** the names of one kind, in the order first read (`*.` and `full:` left off) */
  *names(kind: NameKind): IterableIterator<string> {
    const bit = BIT[kind];
    const buf = this.buf;
    for (let off = 0; off < buf.length; off += 2 + buf[off]!)
      if (buf[off + 1]! & bit) yield buf.toString('latin1', off + 2, off + 2 + buf[off]!);
  }

  keywords(): readonly string[] {
    return this.kw;
  }

  regexes(): readonly string[] {
    return this.rx.map((r) => r.source);
  }

  /** every entry in its text form (entryFor's): names in the order read, keywords, regexes */
  *entries(): IterableIterator<string> {
    const buf = this.buf;
    for (let off = 0; off < buf.length; off += 2 + buf[off]!)
      for (const bit of BITS) if (buf[off + 1]! & bit) yield entryText(buf, off, bit);
    for (const k of this.kw) yield `keyword:${k}`;
    for (const r of this.rx) yield `regexp:${r.source}`;
  }

  /**
   * Which entry fits: a name record as offset × 8 + the bit that fit, a keyword k as -2 - k, a
   * regex r as -2 - keywords - r; -1 when none.
   */
  private hit(name: string): number {
    let end = name.length;
    if (end > 0 && name.charCodeAt(end - 1) === DOT) end--;
    if (end === 0) return -1;
    if (this.buf.length > 0) {
      let h = FNV_OFFSET;
      for (let i = end - 1; i >= 0; i--) {
        h = step(h, lower(name.charCodeAt(i)));
        if (i > 0 && name.charCodeAt(i - 1) !== DOT) continue;
        const off = this.find(name, i, end, h);
        if (off < 0) continue;
        const bits = this.buf[off + 1]! & (i === 0 ? EXACT : BELOW);
        if (bits) return off * 8 + (bits & DOMAIN ? DOMAIN : bits);
      }
    }
    if (this.kw.length === 0 && this.rx.length === 0) return -1;
    const n = (end === name.length ? name : name.slice(0, end)).toLowerCase();
    for (let k = 0; k < this.kw.length; k++) if (n.includes(this.kw[k]!)) return -2 - k;
    for (let r = 0; r < this.rx.length; r++) {
      const x = this.rx[r]!;
      if (n.includes(x.literal) && x.re.test(n)) return -2 - this.kw.length - r;
    }
    return -1;
  }

  /** the record of q[i, end) (any case) hashed `h`, or -1 */
  private find(q: string, i: number, end: number, h: number): number {
    const { buf, table } = this;
    const len = end - i;
    const mask = table.length - 1;
    for (let slot = mix(h) & mask; ; slot = (slot + 1) & mask) {
      const o = table[slot]!;
      if (o === 0) return -1;
      if (buf[o - 1] !== len) continue;
      let k = 0;
      while (k < len && buf[o + 1 + k] === lower(q.charCodeAt(i + k))) k++;
      if (k === len) return o - 1;
    }
  }

  /**
   * @internal A set from the records of another's (`records`), kept outside this process
   * (config/list-snapshot.ts): each record is checked as a name the grammar admits (lowercase,
   * labels of letters, digits, `-` and `_`, no numeric last label), with one of the kind bits a
   * finished set holds, and none twice; the table is built again. Undefined when any is not.
   */
  static fromRecords(
    buf: Buffer,
    kw: readonly string[],
    rx: readonly { source: string; re: LinearRegex }[],
  ): DomainSet | undefined {
    let count = 0;
    for (let off = 0; off < buf.length; off += 2 + buf[off]!, count++) {
      const len = buf[off]!;
      if (off + 2 + len > buf.length || !validName(buf, off + 2, off + 2 + len)) return undefined;
      // a finished set: a domain entry alone (it covers the other kinds), or wildcard and/or full
      const b = buf[off + 1]!;
      if (b !== DOMAIN && (b === 0 || (b & ~(WILDCARD | FULL)) !== 0)) return undefined;
    }
    let size = 2;
    while (size * 0.75 < count) size *= 2;
    const table = new Uint32Array(size);
    const mask = size - 1;
    for (let off = 0; off < buf.length; off += 2 + buf[off]!) {
      const len = buf[off]!;
      const h = hashBytes(buf, off + 2, len);
      if (probeBytes(table, buf, buf, off + 2, len, h) >= 0) return undefined;
      let slot = mix(h) & mask;
      while (table[slot] !== 0) slot = (slot + 1) & mask;
      table[slot] = off + 1;
    }
    const regexes = rx.map((r) => ({
      source: r.source,
      literal: requiredLiteral(r.source),
      re: r.re,
    }));
    return new DomainSet(buf, table, kw, regexes);
  }

  /** @internal the records, for DomainSetBuilder.addSet */
  get records(): { buf: Buffer; kw: readonly string[]; rx: readonly Regex[] } {
    return { buf: this.buf, kw: this.kw, rx: this.rx };
  }
}

/** bytes [a, b) of `buf`: a lowercase name of at most 253 characters the grammar admits (list-grammar.ts LABEL) */
function validName(buf: Uint8Array, a: number, b: number): boolean {
  if (b <= a || b - a > 253) return false;
  let label = a;
  let digits = true;
  for (let k = a; k <= b; k++) {
    const ch = k < b ? buf[k]! : DOT;
    if (ch === DOT) {
      const n = k - label;
      if (n === 0 || n > 63 || buf[label] === 0x2d || buf[k - 1] === 0x2d) return false;
      if (k === b && digits) return false;
      label = k + 1;
      digits = true;
    } else if (ch >= 0x30 && ch <= 0x39) continue;
    else if ((ch >= 0x61 && ch <= 0x7a) || ch === 0x5f || ch === 0x2d) digits = false;
    else return false;
  }
  return true;
}

function entryText(buf: Buffer, off: number, bit: number): string {
  const name = buf.toString('latin1', off + 2, off + 2 + buf[off]!);
  return bit === DOMAIN ? name : bit === WILDCARD ? `*.${name}` : `full:${name}`;
}

/**
 * Collects entries (already validated: names lowercase ASCII of at most 253 characters) and
 * makes the DomainSet. `duplicates` counts entries read twice; `finish` adds those covered.
 */
export class DomainSetBuilder {
  private buf: Buffer;
  private used = 0;
  private count = 0;
  private table: Uint32Array = new Uint32Array(64);
  /** each record's hash, by record number: the table grows without reading the names again */
  private hashes = new Uint32Array(32);
  private readonly kw: string[] = [];
  private readonly kwSeen = new Set<string>();
  private readonly rx: Regex[] = [];
  private readonly rxSeen = new Set<string>();
  duplicates = 0;

  /**
   * `sizeHint`: the bytes the names will take, when known (a list's size): the buffer is made
   * that large at once instead of doubling its way there, copying and dropping each step
   */
  constructor(sizeHint = 0) {
    this.buf = Buffer.allocUnsafe(Math.max(1024, sizeHint));
  }

  /** a name (lowercase ASCII) */
  addName(kind: NameKind, name: string): void {
    const at = this.tail(name.length);
    for (let k = 0; k < name.length; k++) this.buf[at + k] = name.charCodeAt(k);
    this.commit(name.length, BIT[kind]);
  }

  /** a name's bytes src[a, b) (ASCII, any case: lowercased here) */
  addNameBytes(kind: NameKind, src: Uint8Array, a: number, b: number): void {
    const at = this.tail(b - a);
    for (let k = a; k < b; k++) this.buf[at + k - a] = lower(src[k]!);
    this.commit(b - a, BIT[kind]);
  }

  /** a keyword (lowercase); false when it is new and `max` are held already (not added) */
  addKeyword(k: string, max = Infinity): boolean {
    if (this.kwSeen.has(k)) this.duplicates++;
    else if (this.kw.length >= max) return false;
    else {
      this.kwSeen.add(k);
      this.kw.push(k);
    }
    return true;
  }

  /**
   * a compiled regex (case-sensitive: it is tested on lowercase names); false when it is new
   * and `max` are held already (not added)
   */
  addRegex(source: string, re: LinearRegex, max = Infinity): boolean {
    if (this.rxSeen.has(source)) this.duplicates++;
    else if (this.rx.length >= max) return false;
    else {
      this.rxSeen.add(source);
      this.rx.push({ source, literal: requiredLiteral(source), re });
    }
    return true;
  }

  /** every entry of another set (duplicates counted) */
  addSet(d: DomainSet): void {
    const { buf, kw, rx } = d.records;
    for (let off = 0; off < buf.length; off += 2 + buf[off]!) {
      const len = buf[off]!;
      for (const bit of BITS) {
        if (!(buf[off + 1]! & bit)) continue;
        const at = this.tail(len); // first: it may grow this.buf
        buf.copy(this.buf, at, off + 2, off + 2 + len);
        this.commit(len, bit);
      }
    }
    for (const k of kw) this.addKeyword(k);
    for (const r of rx) {
      if (this.rxSeen.has(r.source)) this.duplicates++;
      else {
        this.rxSeen.add(r.source);
        this.rx.push(r);
      }
    }
  }

  /** the set, and how many entries were dropped (duplicates and covered) */
  finish(): { set: DomainSet; redundant: number } {
    const { buf, used, table } = this;
    if (this.count === 0 && this.kw.length === 0 && this.rx.length === 0)
      return { set: DomainSet.EMPTY, redundant: this.duplicates };
    let covered = 0;
    let size = 0;
    let kept = 0;
    const bits = new Uint8Array(this.count);
    for (let off = 0, r = 0; off < used; off += 2 + buf[off]!, r++) {
      let b = buf[off + 1]!;
      if (b & DOMAIN && b & (WILDCARD | FULL)) {
        covered += popcount(b & (WILDCARD | FULL));
        b = DOMAIN;
      }
      // proper suffixes, shortest first: one under a domain or wildcard entry is covered
      const len = buf[off]!;
      const at = off + 2;
      let h = FNV_OFFSET;
      for (let i = len - 1; i > 0; i--) {
        h = step(h, buf[at + i]!);
        if (buf[at + i - 1] !== DOT) continue;
        const o = probeBytes(table, buf, buf, at + i, len - i, h);
        if (o >= 0 && buf[o + 1]! & BELOW) {
          covered += popcount(b);
          b = 0;
          break;
        }
      }
      bits[r] = b;
      if (b) {
        size += 2 + len;
        kept++;
      }
    }
    const out = Buffer.allocUnsafeSlow(size);
    let w = 0;
    for (let off = 0, r = 0; off < used; off += 2 + buf[off]!, r++) {
      if (!bits[r]) continue;
      const len = buf[off]!;
      out[w] = len;
      out[w + 1] = bits[r]!;
      // a loop: Buffer.copy's call costs more than a name's few bytes
      for (let k = 2; k < len + 2; k++) out[w + k] = buf[off + k]!;
      w += 2 + len;
    }
    const set = new DomainSet(
      out,
      tableFor(buf, used, kept, 0.75, this.hashes, bits),
      this.kw,
      this.rx,
    );
    return { set, redundant: this.duplicates + covered };
  }

  /** room for a record of `len` name bytes at the end; where its bytes go */
  private tail(len: number): number {
    const need = this.used + 2 + len;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(need, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
    }
    return this.used + 2;
  }

  /** the bytes written by tail(len): a new record, or one more kind of a known one */
  private commit(len: number, bit: number): void {
    const { buf, table } = this;
    const at = this.used + 2;
    const h = hashBytes(buf, at, len);
    const off = probeBytes(table, buf, buf, at, len, h);
    if (off >= 0) {
      if (buf[off + 1]! & bit) this.duplicates++;
      else buf[off + 1] = buf[off + 1]! | bit;
      return;
    }
    buf[this.used] = len;
    buf[this.used + 1] = bit;
    const mask = table.length - 1;
    let slot = mix(h) & mask;
    while (table[slot] !== 0) slot = (slot + 1) & mask;
    table[slot] = this.used + 1;
    this.used += 2 + len;
    if (this.count === this.hashes.length) {
      const grown = new Uint32Array(this.count * 2);
      grown.set(this.hashes);
      this.hashes = grown;
    }
    this.hashes[this.count] = h;
    if (++this.count * 2 > table.length)
      this.table = tableFor(buf, this.used, this.count, 0.5, this.hashes);
  }
}

/** One set from several: the set itself when only one has entries (no copy). */
export function mergeDomainSets(sets: readonly DomainSet[]): { set: DomainSet; redundant: number } {
  const some = sets.filter((s) => s.size > 0);
  if (some.length <= 1) return { set: some[0] ?? DomainSet.EMPTY, redundant: 0 };
  const b = new DomainSetBuilder();
  for (const s of some) b.addSet(s);
  return b.finish();
}
