/**
 * Destination lists for a rule's `to:` (`domains`, `cidrs`, `lists`). Pure: callers read
 * the files and hand the text (or bytes) in.
 *
 * A list file holds one entry per line; `#` starts a comment (a whole line or the rest of
 * one); blank lines are ignored. An entry is
 * - a domain `example.org`: that name **and every name under it** (`www.example.org`,
 *   `a.b.example.org`) — what users of domain lists expect (sing-box `domain_suffix`);
 * - a wildcard `*.example.net`: the names under `example.net`, **not** `example.net` itself;
 * - an IPv4/IPv6 address (`203.0.113.7`, `2001:db8::1`: one host, /32 or /128) or a prefix
 *   (`203.0.113.0/24`). A prefix with host bits set is refused and names the network it
 *   would mean, so a typo cannot silently widen a rule.
 * Names are ASCII: lowercase is applied, a trailing dot dropped; internationalised names are
 * written in punycode (`xn--…` labels); a non-ASCII name is refused with its punycode form.
 *
 * Other formats' readers (list-formats/) also give `full` names (that name only), `keyword`s
 * (any name containing the text) and `regex`es (util/linear-regex.ts); inline `to.domains`
 * writes them with geosite's prefixes: `full:example.com`, `keyword:google`, `regexp:^ads?\.`
 * (and `domain:example.org`, the same as `example.org`). A rule holds at most MAX_KEYWORDS
 * keywords and MAX_REGEXES regexes.
 *
 * The result is what an nft interval set and the DNS learner need: the domain entries in a
 * compact store (domain-set.ts: deduplicated, an entry covered by a wider one dropped), and per
 * family the addresses as a sorted list of disjoint, non-adjacent inclusive intervals.
 */
import type { Issue } from '../errors.js';
import { v4String } from './cidr.js';
import {
  DomainSet,
  DomainSetBuilder,
  MAX_KEYWORDS,
  MAX_REGEXES,
  mergeDomainSets,
} from './domain-set.js';
import type { ListPlace, ListSink } from './list-formats/types.js';
import {
  parseAddress,
  parseDomain,
  parseDomainValue,
  parseEntry,
  parseFull,
  parseKeyword,
  parseRegex,
  parseSuffix,
  v6String,
  type Entry,
} from './list-grammar.js';

export { DomainSet, MAX_KEYWORDS, MAX_REGEXES } from './domain-set.js';
export { MAX_KEYWORD_LENGTH, parseEntry, parseV6, v6String } from './list-grammar.js';

/** inclusive address interval; IPv4 as a 32-bit number, IPv6 as a 128-bit bigint */
export interface Interval<T extends number | bigint> {
  start: T;
  end: T;
}

export interface DestinationCounts {
  /** entries read (lines with an entry, or inline values) */
  entries: number;
  /** entries dropped as duplicates or covered by a wider domain entry */
  redundant: number;
  /** address entries (hosts and prefixes) per family, before merging */
  cidrs4: number;
  cidrs6: number;
}

export interface DestinationSet {
  /** the domain entries (names, wildcards, full names, keywords, regexes): `domains.size`, `matchDomain`, `entryFor` */
  domains: DomainSet;
  /** merged: sorted, disjoint, non-adjacent */
  v4: Interval<number>[];
  v6: Interval<bigint>[];
  counts: DestinationCounts;
}

export interface ParsedDestinations {
  set: DestinationSet;
  issues: Issue[];
}

export interface ParseOptions {
  /** dotted path of the config value that named the list, e.g. `rules[2].to.lists[0]` */
  path?: string | undefined;
  /** errors kept before one "… N more" issue (default 100) */
  maxIssues?: number | undefined;
}

export const DEFAULT_MAX_ISSUES = 100;

const WHY = (max: number) =>
  `a rule holds at most ${max.toLocaleString('en')} (each is tried on every name its other entries do not fit)`;
const tooManyOf = (what: string, max: number) =>
  `more than ${max.toLocaleString('en')} ${what} entries: ${WHY(max)}`;

/** Collects entries; `finish` deduplicates domains and merges intervals. */
class Collector {
  readonly d: DomainSetBuilder;
  readonly v4: Interval<number>[] = [];
  readonly v6: Interval<bigint>[] = [];
  entries = 0;
  cidrs4 = 0;
  cidrs6 = 0;

  /**
   * `sizeHint`: DomainSetBuilder's; `capped`: refuse keywords and regexes past the caps (a
   * list's); without, the caps are checked on the rule's merged set (destinationLimits)
   */
  constructor(
    sizeHint = 0,
    private readonly capped = true,
  ) {
    this.d = new DomainSetBuilder(sizeHint);
  }

  /** a message when the entry cannot be held (a rule's keyword or regex cap) */
  add(e: Entry): string | undefined {
    switch (e.kind) {
      case 'name':
        this.d.addName('domain', e.name);
        break;
      case 'wildcard':
        this.d.addName('wildcard', e.name);
        break;
      case 'full':
        this.d.addName('full', e.name);
        break;
      case 'keyword':
        if (!this.d.addKeyword(e.value, this.capped ? MAX_KEYWORDS : Infinity))
          return tooManyOf('keyword', MAX_KEYWORDS);
        break;
      case 'regex':
        if (!this.d.addRegex(e.source, e.re, this.capped ? MAX_REGEXES : Infinity))
          return tooManyOf('regexp', MAX_REGEXES);
        break;
      case 'v4':
        this.cidrs4++;
        this.v4.push({ start: e.start, end: e.end });
        break;
      case 'v6':
        this.cidrs6++;
        this.v6.push({ start: e.start, end: e.end });
        break;
    }
    this.entries++;
    return undefined;
  }

  finish(): DestinationSet {
    const { set, redundant } = this.d.finish();
    const seen = { overlap: false };
    const out: DestinationSet = {
      domains: set,
      v4: mergeIntervals(this.v4, seen),
      v6: mergeIntervals(this.v6, seen),
      counts: {
        entries: this.entries,
        redundant,
        cidrs4: this.cidrs4,
        cidrs6: this.cidrs6,
      },
    };
    return markDisjoint(out, !seen.overlap);
  }
}

/**
 * Sets whose address entries share no address (adjacent ones may merge): an entry's interval
 * can be taken out of its merged one again (list-increment.ts). Kept beside the set: only the
 * parsers and the kept parse know it; a set made any other way does not have it.
 */
const DISJOINT = new WeakSet<DestinationSet>();

/** `set`, known (or not) to hold address entries that share no address */
export function markDisjoint(set: DestinationSet, disjoint: boolean): DestinationSet {
  if (disjoint) DISJOINT.add(set);
  else DISJOINT.delete(set);
  return set;
}

/** whether `set` is known to come from address entries that share no address */
export const addressesDisjoint = (set: DestinationSet): boolean => DISJOINT.has(set);

/**
 * Sort and merge overlapping or adjacent inclusive intervals. Does not modify its input. `seen`,
 * when given, has `overlap` set when an address is in two of the inputs.
 */
export function mergeIntervals<T extends number | bigint>(
  xs: readonly Interval<T>[],
  seen?: { overlap: boolean },
): Interval<T>[] {
  // already merged (a rule's one list merged again on every apply): the same intervals, in a
  // new array (nothing changes an interval once made: the objects are shared)
  if (isMerged(xs)) return xs.slice();
  const sorted = sortedByStart(xs);
  const out: Interval<T>[] = [];
  let cur: Interval<T> | undefined;
  for (const x of sorted) {
    // adjacent: x.start === cur.end + 1, written without mixing number and bigint
    if (cur && x.start <= cur.end) {
      // an address in two inputs (the union so far is covered, so x shares one with it)
      if (seen) seen.overlap = true;
      if (x.end > cur.end) cur.end = x.end;
    } else if (cur && x.start - cur.end === (typeof x.start === 'bigint' ? 1n : 1)) {
      if (x.end > cur.end) cur.end = x.end;
    } else {
      cur = { start: x.start, end: x.end };
      out.push(cur);
    }
  }
  return out;
}

/** what the merge below would give back unchanged: in order, no two overlapping or adjacent */
function isMerged<T extends number | bigint>(xs: readonly Interval<T>[]): boolean {
  const one = (xs.length && typeof xs[0]!.start === 'bigint' ? 1n : 1) as T;
  for (let i = 1; i < xs.length; i++) {
    const prev = xs[i - 1]!;
    const x = xs[i]!;
    if (x.start < prev.start || x.start <= prev.end || x.start - prev.end === one) return false;
  }
  return true;
}

/** the largest input sorted through sortKeys: its index takes the low 21 bits of a key */
const KEY_INDEX_BITS = 2 ** 21;

/**
 * `xs` by start. IPv4 (numbers): each start and its index packed into one float64 key (32 + 21
 * bits, exact) and sorted as a Float64Array — a numeric sort without a comparator call per
 * step (a third of a 65,000-interval list's merge). Equal starts keep no particular order;
 * mergeIntervals does not need one. Input already in order is returned as it is.
 */
function sortedByStart<T extends number | bigint>(
  xs: readonly Interval<T>[],
): readonly Interval<T>[] {
  const n = xs.length;
  // already in order (a list's merged intervals merged again with nothing: a rule with one
  // list, every apply; a list written sorted): no sort
  let i = 1;
  while (i < n && xs[i - 1]!.start <= xs[i]!.start) i++;
  if (i >= n) return xs;
  if (n === 0 || typeof xs[0]!.start !== 'number' || n >= KEY_INDEX_BITS)
    return [...xs].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = (xs[i]!.start as number) * KEY_INDEX_BITS + i;
  keys.sort();
  const out = new Array<Interval<T>>(n);
  for (let i = 0; i < n; i++) out[i] = xs[keys[i]! % KEY_INDEX_BITS]!;
  return out;
}

function tooMany(file: string, path: string, n: number): Issue {
  return { file, path, message: `… ${n} more error${n === 1 ? '' : 's'}`, severity: 'error' };
}

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/**
 * A plain name or wildcard of ASCII bytes b[s, e) (trimmed, no comment) straight into the
 * collector, without a string; false when it is not one (then the string path decides and
 * words the message). The checks are parseDomain's, on bytes.
 */
function addNameBytes(c: Collector, b: Uint8Array, s: number, e: number): boolean {
  let kind: 'domain' | 'wildcard' = 'domain';
  if (e - s >= 2 && b[s] === 0x2a && b[s + 1] === 0x2e) {
    kind = 'wildcard';
    s += 2;
  }
  if (e > s && b[e - 1] === 0x2e) e--;
  if (e === s || e - s > 253) return false;
  let label = s;
  let digits = true;
  for (let k = s; k <= e; k++) {
    const ch = k < e ? b[k]! : 0x2e;
    if (ch === 0x2e) {
      const n = k - label;
      if (n === 0 || n > 63 || b[label] === 0x2d || b[k - 1] === 0x2d) return false;
      if (k === e && digits) return false; // a numeric last label
      label = k + 1;
      digits = true;
    } else if (ch >= 0x30 && ch <= 0x39) continue;
    else if ((ch >= 0x61 && ch <= 0x7a) || (ch >= 0x41 && ch <= 0x5a) || ch === 0x5f || ch === 0x2d)
      digits = false;
    else return false;
  }
  c.d.addNameBytes(kind, b, s, e);
  c.entries++;
  return true;
}

/**
 * An IPv4 address or prefix of ASCII bytes b[s, e) (trimmed, no comment) straight into the
 * collector, without a string or an entry object; false when it is not a valid one (then the
 * string path decides and words the message). The checks are parseAddress's and parseV4's:
 * four decimal octets of at most 255 without leading zeros, an optional `/` and 1–3 digits of
 * at most 32, no host bits.
 */
function addV4Bytes(c: Collector, b: Uint8Array, s: number, e: number): boolean {
  let n = 0;
  let parts = 0;
  let cur = -1;
  let k = s;
  for (; k <= e; k++) {
    const ch = k < e ? b[k]! : 0x2f;
    if (ch === 0x2e || ch === 0x2f) {
      if (cur < 0 || parts === 4) return false;
      n = n * 256 + cur;
      parts++;
      cur = -1;
      if (ch === 0x2f) break;
    } else if (ch >= 0x30 && ch <= 0x39) {
      if (cur === 0) return false;
      cur = cur < 0 ? ch - 0x30 : cur * 10 + (ch - 0x30);
      if (cur > 255) return false;
    } else return false;
  }
  if (parts !== 4) return false;
  let len = 32;
  if (k < e) {
    const digits = e - k - 1;
    if (digits < 1 || digits > 3) return false;
    len = 0;
    for (let j = k + 1; j < e; j++) {
      const ch = b[j]!;
      if (ch < 0x30 || ch > 0x39) return false;
      len = len * 10 + (ch - 0x30);
    }
    if (len > 32) return false;
  }
  const size = 2 ** (32 - len);
  if (n % size !== 0) return false;
  c.cidrs4++;
  c.entries++;
  c.v4.push({ start: n, end: n + size - 1 });
  return true;
}

/** Parse a list file's text. `file` names it in issues (`file:line:col`). */
export function parseDestinationList(
  text: string,
  file: string,
  opts: ParseOptions = {},
): ParsedDestinations {
  return parseDestinationBytes(Buffer.from(text, 'utf8'), file, opts);
}

/**
 * Parse a plain list's bytes (UTF-8). The hot path of a registry-size list: an ASCII line
 * that is a name or wildcard goes from the bytes into the collector without a string; other
 * lines (addresses, errors, non-ASCII) are decoded and parsed as text.
 */
export function parseDestinationBytes(
  bytes: Uint8Array,
  file: string,
  opts: ParseOptions = {},
): ParsedDestinations {
  const b = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const path = opts.path ?? '';
  const max = opts.maxIssues ?? DEFAULT_MAX_ISSUES;
  // a name's record is its line's bytes + 1 (its newline is not kept, a length and kind are)
  const c = new Collector(b.length + (b.length >> 4));
  const issues: Issue[] = [];
  let errors = 0;
  const report = (message: string, line: number, col: number) => {
    if (errors++ < max) issues.push({ file, line, col, path, message, severity: 'error' });
  };
  /** one line as text: its entry (no comment, trimmed) at col */
  const entry = (s: string, lineNo: number, col: number) => {
    const e = parseEntry(s);
    const problem = typeof e === 'string' ? e : c.add(e);
    if (problem !== undefined) report(problem, lineNo, col);
  };
  const n = b.length;
  let lineNo = 0;
  // a byte-order mark
  let pos = n >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
  while (pos <= n) {
    let nl = b.indexOf(0x0a, pos);
    if (nl < 0) nl = n;
    lineNo++;
    const start = pos;
    pos = nl + 1;
    let end = start;
    let ascii = true;
    for (; end < nl; end++) {
      const ch = b[end]!;
      if (ch === 0x23) break;
      if (ch >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (!ascii) {
      let line = b.toString('utf8', start, nl);
      const hash = line.indexOf('#');
      if (hash >= 0) line = line.slice(0, hash);
      let s = line.trim();
      let col = line.length - line.trimStart().length + 1;
      // a zone written with a leading dot (itdoginfo's `*-raw.lst`: `.ua`) is the name and all under it
      if (
        s.length > 1 &&
        s[0] === '.' &&
        s[1] !== '.' &&
        !/[\s:/]/.test(s) &&
        !/^[\d.]+$/.test(s)
      ) {
        s = s.slice(1);
        col++;
      }
      if (s.length > 0) entry(s, lineNo, col);
      continue;
    }
    let s = start;
    while (s < end && isSpace(b[s]!)) s++;
    while (end > s && isSpace(b[end - 1]!)) end--;
    if (s === end) continue;
    let addressLike = true;
    let plain = true;
    for (let k = s; k < end; k++) {
      const ch = b[k]!;
      if (ch === 0x3a || ch === 0x2f || isSpace(ch)) plain = false;
      else if (ch !== 0x2e && (ch < 0x30 || ch > 0x39)) addressLike = false;
    }
    // a zone written with a leading dot (itdoginfo's `*-raw.lst`: `.ua`) is the name and all under it
    if (plain && !addressLike && end - s > 1 && b[s] === 0x2e && b[s + 1] !== 0x2e) s++;
    if (plain && !addressLike && addNameBytes(c, b, s, end)) continue;
    if (addressLike && addV4Bytes(c, b, s, end)) continue;
    entry(b.toString('latin1', s, end), lineNo, s - start + 1);
  }
  if (errors > max) issues.push(tooMany(file, path, errors - max));
  return { set: c.finish(), issues };
}

/**
 * A sink for the list readers (list-formats/): each entry is checked against the grammar of
 * its kind and collected; a bad one, and every problem a reader reports, is an issue at
 * `file:line:col`. `finish` gives the set and the issues (errors past `maxIssues` counted in
 * one "… N more").
 */
export function collectList(
  file: string,
  opts: ParseOptions = {},
): { sink: ListSink; finish(): ParsedDestinations } {
  const path = opts.path ?? '';
  const max = opts.maxIssues ?? DEFAULT_MAX_ISSUES;
  const c = new Collector();
  const issues: Issue[] = [];
  let errors = 0;
  const report = (message: string, at: ListPlace, severity: 'error' | 'warning') => {
    if (severity === 'error' && errors++ >= max) return;
    issues.push({ file, line: at.line, col: at.col, path, message, severity });
  };
  const sink: ListSink = {
    entry(kind, value, at) {
      let e: Entry | string;
      switch (kind) {
        case 'address':
          e = parseAddress(value);
          break;
        case 'domain':
          e = parseSuffix(value);
          break;
        case 'wildcard':
          e = parseDomain(value.startsWith('*.') ? value : `*.${value}`);
          break;
        case 'full':
          e = parseFull(value);
          break;
        case 'keyword':
          e = parseKeyword(value);
          break;
        case 'regex':
          e = parseRegex(value);
          break;
        default:
          e = `${String(kind)} entries are not supported (${JSON.stringify(value)})`;
      }
      const problem = typeof e === 'string' ? e : c.add(e);
      if (problem !== undefined) report(problem, at, 'error');
    },
    problem: report,
  };
  return {
    sink,
    finish() {
      if (errors > max) issues.push(tooMany(file, path, errors - max));
      return { set: c.finish(), issues };
    },
  };
}

/**
 * Inline values from the config (`to.domains`, `to.cidrs`): `kind` says which grammar
 * applies (`domains` also takes `full:`, `keyword:`, `regexp:` and `domain:` values); `path` is
 * the value's path (`rules[2].to.cidrs`), `[j]` is appended per value.
 */
export function parseInlineDestinations(
  values: readonly string[],
  kind: 'domains' | 'cidrs',
  file: string,
  path: string,
): ParsedDestinations {
  // the caps are the rule's: load.ts checks them on the merged set (destinationLimits)
  const c = new Collector(0, false);
  const issues: Issue[] = [];
  values.forEach((v, j) => {
    const s = v.trim();
    const e = kind === 'cidrs' ? parseAddress(s) : parseDomainValue(s);
    const problem = typeof e === 'string' ? e : c.add(e);
    if (problem !== undefined)
      issues.push({ file, path: `${path}[${j}]`, message: problem, severity: 'error' });
  });
  return { set: c.finish(), issues };
}

/** One set from several (inline values and list files): union, deduplicated, merged. */
export function mergeDestinations(sets: readonly DestinationSet[]): DestinationSet {
  const { set, redundant } = mergeDomainSets(sets.map((s) => s.domains));
  const sum = (f: (c: DestinationCounts) => number) => sets.reduce((a, s) => a + f(s.counts), 0);
  return {
    domains: set,
    v4: mergeIntervals(sets.flatMap((s) => s.v4)),
    v6: mergeIntervals(sets.flatMap((s) => s.v6)),
    counts: {
      entries: sum((c) => c.entries),
      redundant: sum((c) => c.redundant) + redundant,
      cidrs4: sum((c) => c.cidrs4),
      cidrs6: sum((c) => c.cidrs6),
    },
  };
}

export function emptyDestinations(): DestinationSet {
  return mergeDestinations([]);
}

/**
 * What a rule's merged destinations hold beyond its limits (inline values and several lists
 * can each stay under a cap their union passes), as a message; undefined when within them.
 */
export function destinationLimits(set: DestinationSet): string | undefined {
  const { keywords, regexes } = set.domains.counts;
  const over = (n: number, what: string, max: number) =>
    `the rule's values and lists hold ${n.toLocaleString('en')} ${what} entries: ${WHY(max)}`;
  if (keywords > MAX_KEYWORDS) return over(keywords, 'keyword', MAX_KEYWORDS);
  if (regexes > MAX_REGEXES) return over(regexes, 'regexp', MAX_REGEXES);
  return undefined;
}

/**
 * A set of domain entries from inline `to.domains` values (with the prefixes); throws on a
 * bad one. For tests and tools.
 */
export function domainSetOf(values: readonly string[]): DomainSet {
  const { set, issues } = parseInlineDestinations(values, 'domains', '', 'domains');
  if (issues.length) throw new Error(issues.map((i) => `${i.path}: ${i.message}`).join('; '));
  return set.domains;
}

/**
 * An interval as an nft set element: a bare address for one host, `net/len` when it is
 * exactly a prefix, else `first-last` (how nft prints interval elements back).
 */
export function formatInterval4(i: Interval<number>): string {
  if (i.start === i.end) return v4String(i.start);
  const size = i.end - i.start + 1;
  const len = 32 - Math.log2(size);
  if (Number.isInteger(len) && i.start % size === 0) return `${v4String(i.start)}/${len}`;
  return `${v4String(i.start)}-${v4String(i.end)}`;
}

export function formatInterval6(i: Interval<bigint>): string {
  if (i.start === i.end) return v6String(i.start);
  const size = i.end - i.start + 1n;
  if ((size & (size - 1n)) === 0n && i.start % size === 0n) {
    const len = 128 - (size.toString(2).length - 1);
    return `${v6String(i.start)}/${len}`;
  }
  return `${v6String(i.start)}-${v6String(i.end)}`;
}

/** does the merged set contain this address (binary search)? */
export function intervalsContain<T extends number | bigint>(
  xs: readonly Interval<T>[],
  a: T,
): boolean {
  let lo = 0;
  let hi = xs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const x = xs[mid]!;
    if (a < x.start) hi = mid - 1;
    else if (a > x.end) lo = mid + 1;
    else return true;
  }
  return false;
}
