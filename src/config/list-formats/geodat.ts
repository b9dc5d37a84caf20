/**
 * What v2ray/Xray `.dat` files share (v2fly `app/router/routercommon/common.proto`, Xray
 * `common/geodata/geodat.proto`): a list message whose field 1 repeats the entries, each entry
 * a message whose field 1 is its code (the category: `GOOGLE`, `CN`) and whose field 2 repeats
 * its items (geosite: Domain; geoip: CIDR).
 *
 *   GeoSiteList { repeated GeoSite entry = 1 }   GeoSite { string code = 1; repeated Domain domain = 2 }
 *   GeoIPList   { repeated GeoIP entry = 1 }     GeoIP   { string code = 1; repeated CIDR cidr = 2;
 *                                                         bool reverse_match = 3 }
 *   Domain { Type type = 1 (0 keyword, 1 regex, 2 domain, 3 full); string value = 2;
 *            repeated Attribute attribute = 3 }   Attribute { string key = 1; … }
 *   CIDR   { bytes ip = 1 (4 or 16 bytes); uint32 prefix = 2 }
 *
 * The files have no magic: `probeDat` reads the first entries' structure (a printable code, a
 * first item that parses as a Domain or as a CIDR and not as the other). A category is found
 * as v2ray finds it: the first entry whose code equals it ignoring case.
 */
import { PbFields } from './protobuf.js';
import { Damaged, Emitter, bytePlace, someOf, utf8 } from './reading.js';

export type DatKind = 'geosite' | 'geoip';

const CODE = /^[\x21-\x7e]{1,128}$/;
/** entries looked at by the probe at most (an empty first category does not decide) */
const PROBE_ENTRIES = 16;

/** the code (field 1) of an entry, read as text; undefined when it has none */
export function entryCode(b: Uint8Array, start: number, end: number): string | undefined {
  const f = new PbFields(b, start, end);
  while (f.next()) {
    if (f.field !== 1) continue;
    if (f.wire !== 2) throw new Damaged('an entry whose code is not a string', f.tagAt);
    if (f.end - f.start > 1024)
      throw new Damaged(`a category name of ${f.end - f.start} bytes`, f.tagAt);
    return utf8(b.subarray(f.start, f.end));
  }
  return undefined;
}

/** what the first item of an entry is, by its fields: a Domain, a CIDR or neither */
function itemKind(b: Uint8Array, start: number, end: number): DatKind | undefined {
  let domain = true;
  let cidr = true;
  let hasValue = false;
  let hasIp = false;
  const f = new PbFields(b, start, end);
  while (f.next()) {
    const k = `${f.field}:${f.wire}`;
    if (k === '1:0') {
      cidr = false;
      domain &&= f.varint <= 3;
    } else if (k === '1:2') {
      domain = false;
      const n = f.end - f.start;
      hasIp = n === 4 || n === 16;
      cidr &&= hasIp;
    } else if (k === '2:2') {
      cidr = false;
      hasValue = true;
    } else if (k === '2:0') {
      domain = false;
      cidr &&= f.varint <= 128;
    } else if (k === '3:2') cidr = false;
    else return undefined;
  }
  if (domain && hasValue) return 'geosite';
  if (cidr && hasIp) return 'geoip';
  return undefined;
}

export type Probe = { kind: DatKind } | { why: string; offset: number };

/** Does this look like a geosite or a geoip `.dat`? Reads a few entries, never the whole file. */
export function probeDat(b: Uint8Array): Probe {
  try {
    const top = new PbFields(b, 0, b.length);
    for (let i = 0; i < PROBE_ENTRIES; i++) {
      if (!top.next())
        return { why: i === 0 ? 'the file is empty' : 'no entry has items', offset: 0 };
      if (top.field !== 1 || top.wire !== 2)
        return { why: `field ${top.field} where an entry (field 1) belongs`, offset: top.tagAt };
      const code = entryCode(b, top.start, top.end);
      if (code === undefined || !CODE.test(code))
        return { why: 'an entry without a printable category name', offset: top.tagAt };
      const items = new PbFields(b, top.start, top.end);
      while (items.next()) {
        if (items.field !== 2) continue;
        if (items.wire !== 2) return { why: 'an item that is not a message', offset: items.tagAt };
        const kind = itemKind(b, items.start, items.end);
        return kind
          ? { kind }
          : { why: 'an item that is neither a domain nor a CIDR', offset: items.tagAt };
      }
    }
    return { why: `no items in the first ${PROBE_ENTRIES} entries`, offset: 0 };
  } catch (e) {
    if (e instanceof Damaged) return { why: e.message, offset: e.offset };
    throw e;
  }
}

export interface Category {
  /** the code as asked for (`google`) and the attribute filters (`ads`) */
  code: string;
  attrs: string[];
}

/** `google@ads@cn` → code and attributes; a message when malformed */
export function parseCategory(s: string): Category | string {
  const [code = '', ...attrs] = s.split('@');
  if (code.length === 0) return `category ${JSON.stringify(s)}: the name before @ is empty`;
  if (attrs.some((a) => a.length === 0))
    return `category ${JSON.stringify(s)}: an empty @attribute`;
  return { code, attrs: attrs.map((a) => a.toLowerCase()) };
}

/** a name close to `want`: one contains the other, or they differ in a letter per four */
function close(want: string, have: string): boolean {
  if (want.length >= 3 && have.length >= 3 && (have.includes(want) || want.includes(have)))
    return true;
  if (want.length > 64) return false; // the distance is quadratic; long names only by substring
  const max = Math.max(1, Math.floor(want.length / 4));
  if (Math.abs(want.length - have.length) > max) return false;
  let prev = Array.from({ length: have.length + 1 }, (_, j) => j);
  for (let i = 1; i <= want.length; i++) {
    const row = [i];
    for (let j = 1; j <= have.length; j++)
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (want[i - 1] === have[j - 1] ? 0 : 1),
      );
    prev = row;
  }
  return prev[have.length]! <= max;
}

const KEEP_NAMES = 100_000;

/**
 * The entry of a category: the first whose code equals `code` ignoring case. Not there (or no
 * category asked for): an error naming a few that are, the close ones first.
 */
export function findEntry(
  b: Uint8Array,
  category: string | undefined,
  kind: DatKind,
  out: Emitter,
): { start: number; end: number; tagAt: number } | undefined {
  const want = category?.toLowerCase();
  const names: string[] = [];
  let total = 0;
  let found: { start: number; end: number; tagAt: number } | undefined;
  let duplicates = 0;
  const top = new PbFields(b, 0, b.length);
  while (top.next()) {
    if (top.field !== 1) continue;
    if (top.wire !== 2) throw new Damaged('an entry that is not a message', top.tagAt);
    const code = (entryCode(b, top.start, top.end) ?? '').toLowerCase();
    total++;
    if (names.length < KEEP_NAMES) names.push(code);
    if (want === undefined || code !== want) continue;
    if (found) duplicates++;
    else found = { start: top.start, end: top.end, tagAt: top.tagAt };
  }
  if (found) {
    if (duplicates > 0)
      out.warn(
        `category ${category}: ${duplicates + 1} entries carry it; the first is read (as v2ray does)`,
        bytePlace(found.tagAt),
      );
    return found;
  }
  const near = want === undefined ? [] : names.filter((n) => close(want, n)).sort();
  const isNear = new Set(near);
  const rest = names.filter((n) => !isNear.has(n)).sort();
  const list = someOf([...near, ...rest], total);
  out.error(
    want === undefined
      ? `a ${kind} file holds categories; name one (FILE.dat:CATEGORY or category:) — ${list || 'it has none'}`
      : `no category ${JSON.stringify(category)} in this ${kind} file; ${total === 0 ? 'it has none' : `it has ${list}`}`,
    bytePlace(0),
  );
  return undefined;
}
