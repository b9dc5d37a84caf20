/**
 * Destination lists for a rule's `to:` (`domains`, `cidrs`, `lists`). Pure: callers read
 * the files and hand the text in.
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
 * The result is what an nft interval set and the DNS learner need: the domains deduplicated
 * (an entry covered by a wider one is dropped), and per family the addresses as a sorted
 * list of disjoint, non-adjacent inclusive intervals.
 */
import { domainToASCII } from 'node:url';
import type { Issue } from '../errors.js';
import ipaddr from '../util/ipaddr.js';
import { parseV4, v4String } from './cidr.js';
import type { ListPlace, ListSink } from './list-formats/types.js';

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
  /** `example.org`: the name and all names under it; sorted */
  names: string[];
  /** `*.example.net` stored as `example.net`: names under it only; sorted */
  wildcards: string[];
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

type Entry =
  | { kind: 'name'; name: string }
  | { kind: 'wildcard'; name: string }
  | { kind: 'v4'; start: number; end: number }
  | { kind: 'v6'; start: bigint; end: bigint };

const V6_ALL = (1n << 128n) - 1n;

/** hex groups of one side of `::`; an IPv4 tail counts as two groups when allowed */
function v6Groups(s: string, out: number[], v4Tail: boolean): boolean {
  if (s.length === 0) return true;
  const parts = s.split(':');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (v4Tail && i === parts.length - 1 && p.includes('.')) {
      const v = parseV4(p);
      if (v === undefined) return false;
      out.push(v >>> 16, v & 0xffff);
      return true;
    }
    if (p.length === 0 || p.length > 4 || !/^[0-9a-fA-F]+$/.test(p)) return false;
    out.push(parseInt(p, 16));
  }
  return true;
}

/** RFC 4291 text form (no zone index) to its 128-bit value; undefined when invalid */
export function parseV6(s: string): bigint | undefined {
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return undefined;
  const head: number[] = [];
  const tail: number[] = [];
  if (dbl < 0) {
    if (!v6Groups(s, head, true) || head.length !== 8) return undefined;
  } else {
    if (!v6Groups(s.slice(0, dbl), head, false) || !v6Groups(s.slice(dbl + 2), tail, true))
      return undefined;
    if (head.length + tail.length > 7) return undefined;
  }
  const w = head.concat(new Array<number>(8 - head.length - tail.length).fill(0), tail);
  let n = 0n;
  for (let i = 0; i < 8; i += 2) n = (n << 32n) | BigInt(w[i]! * 0x10000 + w[i + 1]!);
  return n;
}

/** an IPv6 address in its canonical text form */
export function v6String(n: bigint): string {
  const parts: number[] = [];
  for (let i = 7; i >= 0; i--) parts.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  return new ipaddr.IPv6(parts).toString();
}

function parseAddress(s: string): Entry | string {
  const slash = s.indexOf('/');
  const a = slash < 0 ? s : s.slice(0, slash);
  const lenStr = slash < 0 ? undefined : s.slice(slash + 1);
  if (lenStr !== undefined && !/^\d{1,3}$/.test(lenStr))
    return `${s}: the prefix length must be a number`;
  if (!a.includes(':')) {
    const v = parseV4(a);
    if (v === undefined) return `${s} is not an IPv4 address or prefix`;
    const len = lenStr === undefined ? 32 : Number(lenStr);
    if (len > 32) return `${s}: an IPv4 prefix length is at most 32`;
    const size = 2 ** (32 - len);
    const start = v - (v % size);
    if (start !== v) return `${s} has host bits set; it means ${v4String(start)}/${len}`;
    return { kind: 'v4', start, end: start + size - 1 };
  }
  if (a.includes('%')) return `${s}: a zone index (%…) has no place in a list`;
  const v = parseV6(a);
  if (v === undefined) return `${s} is not an IPv6 address or prefix`;
  const len = lenStr === undefined ? 128 : Number(lenStr);
  if (len > 128) return `${s}: an IPv6 prefix length is at most 128`;
  const host = len === 128 ? 0n : V6_ALL >> BigInt(len);
  const start = v & ~host & V6_ALL;
  if (start !== v) return `${s} has host bits set; it means ${v6String(start)}/${len}`;
  return { kind: 'v6', start, end: start | host };
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** a domain or wildcard, lowercased, trailing dot dropped; a message when invalid */
function parseDomain(raw: string): Entry | string {
  let s = raw;
  let wildcard = false;
  if (s.startsWith('*.')) {
    wildcard = true;
    s = s.slice(2);
  }
  if (s.endsWith('.')) s = s.slice(0, -1);
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(s)) {
    const ascii = domainToASCII(s);
    return ascii
      ? `${raw} is not ASCII; write it in punycode: ${wildcard ? '*.' : ''}${ascii}`
      : `${raw} is not ASCII and not a valid international name; write it in punycode (xn--…)`;
  }
  s = s.toLowerCase();
  if (s.includes('*'))
    return `${raw}: a wildcard is only allowed as the first label (*.example.net)`;
  if (s.startsWith('.'))
    return `${raw}: write example.org (the name and its subdomains) or *.example.org (subdomains only)`;
  if (s.length === 0) return `${raw}: an empty name`;
  if (s.length > 253) return `${raw}: a name is at most 253 characters`;
  const labels = s.split('.');
  for (const l of labels) {
    if (!LABEL.test(l))
      return l.length > 63
        ? `${raw}: a label is at most 63 characters`
        : `${raw} is not a domain name (label ${JSON.stringify(l)})`;
  }
  if (/^\d+$/.test(labels[labels.length - 1]!))
    return `${raw} is not a domain name (its last label is numeric)`;
  return { kind: wildcard ? 'wildcard' : 'name', name: s };
}

/** one list entry (already trimmed, no comment); a message when invalid */
export function parseEntry(s: string): Entry | string {
  if (/\s/.test(s)) return `${JSON.stringify(s)}: one entry per line`;
  if (s.includes(':') || s.includes('/') || /^[\d.]+$/.test(s)) return parseAddress(s);
  return parseDomain(s);
}

/** Collects entries; `finish` deduplicates domains and merges intervals. */
class Collector {
  readonly names = new Set<string>();
  readonly wildcards = new Set<string>();
  readonly v4: Interval<number>[] = [];
  readonly v6: Interval<bigint>[] = [];
  entries = 0;
  duplicates = 0;
  cidrs4 = 0;
  cidrs6 = 0;

  add(e: Entry): void {
    this.entries++;
    switch (e.kind) {
      case 'name':
        if (this.names.has(e.name)) this.duplicates++;
        else this.names.add(e.name);
        break;
      case 'wildcard':
        if (this.wildcards.has(e.name)) this.duplicates++;
        else this.wildcards.add(e.name);
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
  }

  addSet(d: DestinationSet): void {
    for (const n of d.names) this.add({ kind: 'name', name: n });
    for (const n of d.wildcards) this.add({ kind: 'wildcard', name: n });
    for (const i of d.v4) this.v4.push(i);
    for (const i of d.v6) this.v6.push(i);
    // entries/cidrs count what the sources read, not the merged sets
    this.entries += d.counts.entries - d.names.length - d.wildcards.length;
    this.duplicates += d.counts.redundant;
    this.cidrs4 += d.counts.cidrs4;
    this.cidrs6 += d.counts.cidrs6;
  }

  finish(): DestinationSet {
    const names: string[] = [];
    const wildcards: string[] = [];
    let covered = 0;
    for (const n of this.names) {
      if (coveredBy(n, false, this.names, this.wildcards)) covered++;
      else names.push(n);
    }
    for (const n of this.wildcards) {
      if (coveredBy(n, true, this.names, this.wildcards)) covered++;
      else wildcards.push(n);
    }
    return {
      names: names.sort(),
      wildcards: wildcards.sort(),
      v4: mergeIntervals(this.v4),
      v6: mergeIntervals(this.v6),
      counts: {
        entries: this.entries,
        redundant: this.duplicates + covered,
        cidrs4: this.cidrs4,
        cidrs6: this.cidrs6,
      },
    };
  }
}

/**
 * Does a wider entry cover this one? A name `a.b.c` is covered by a name or wildcard on a
 * proper suffix (`b.c`, `*.c`); a wildcard `*.b.c` also by the name `b.c`.
 */
function coveredBy(
  n: string,
  wildcard: boolean,
  names: ReadonlySet<string>,
  wildcards: ReadonlySet<string>,
): boolean {
  if (wildcard && names.has(n)) return true;
  for (let i = n.indexOf('.'); i >= 0; i = n.indexOf('.', i + 1)) {
    const s = n.slice(i + 1);
    if (names.has(s) || wildcards.has(s)) return true;
  }
  return false;
}

/** Sort and merge overlapping or adjacent inclusive intervals. Does not modify its input. */
export function mergeIntervals<T extends number | bigint>(
  xs: readonly Interval<T>[],
): Interval<T>[] {
  const sorted = [...xs].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Interval<T>[] = [];
  let cur: Interval<T> | undefined;
  for (const x of sorted) {
    // adjacent: x.start === cur.end + 1, written without mixing number and bigint
    if (
      cur &&
      (x.start <= cur.end || x.start - cur.end === (typeof x.start === 'bigint' ? 1n : 1))
    ) {
      if (x.end > cur.end) cur.end = x.end;
    } else {
      cur = { start: x.start, end: x.end };
      out.push(cur);
    }
  }
  return out;
}

function tooMany(file: string, path: string, n: number): Issue {
  return { file, path, message: `… ${n} more error${n === 1 ? '' : 's'}`, severity: 'error' };
}

/** Parse a list file's text. `file` names it in issues (`file:line:col`). */
export function parseDestinationList(
  text: string,
  file: string,
  opts: ParseOptions = {},
): ParsedDestinations {
  const path = opts.path ?? '';
  const max = opts.maxIssues ?? DEFAULT_MAX_ISSUES;
  const c = new Collector();
  const issues: Issue[] = [];
  let errors = 0;
  let lineNo = 0;
  let pos = 0;
  if (text.charCodeAt(0) === 0xfeff) pos = 1; // a byte-order mark
  while (pos <= text.length) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = text.length;
    lineNo++;
    let line = text.slice(pos, nl);
    pos = nl + 1;
    const hash = line.indexOf('#');
    if (hash >= 0) line = line.slice(0, hash);
    const s = line.trim();
    if (s.length === 0) continue;
    const e = parseEntry(s);
    if (typeof e === 'string') {
      if (errors++ < max)
        issues.push({
          file,
          line: lineNo,
          col: line.length - line.trimStart().length + 1,
          path,
          message: e,
          severity: 'error',
        });
    } else c.add(e);
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
          e = value.startsWith('*.')
            ? `${value}: a wildcard is not a domain entry`
            : parseDomain(value);
          break;
        case 'wildcard':
          e = parseDomain(value.startsWith('*.') ? value : `*.${value}`);
          break;
        default:
          e = `${kind} entries are not supported yet (${JSON.stringify(value)})`;
      }
      if (typeof e === 'string') report(e, at, 'error');
      else c.add(e);
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
 * applies; `path` is the value's path (`rules[2].to.cidrs`), `[j]` is appended per value.
 */
export function parseInlineDestinations(
  values: readonly string[],
  kind: 'domains' | 'cidrs',
  file: string,
  path: string,
): ParsedDestinations {
  const c = new Collector();
  const issues: Issue[] = [];
  values.forEach((v, j) => {
    const s = v.trim();
    const e = kind === 'cidrs' ? parseAddress(s) : parseDomain(s);
    if (typeof e === 'string')
      issues.push({ file, path: `${path}[${j}]`, message: e, severity: 'error' });
    else c.add(e);
  });
  return { set: c.finish(), issues };
}

/** One set from several (inline values and list files): union, deduplicated, merged. */
export function mergeDestinations(sets: readonly DestinationSet[]): DestinationSet {
  const c = new Collector();
  for (const s of sets) c.addSet(s);
  return c.finish();
}

export function emptyDestinations(): DestinationSet {
  return mergeDestinations([]);
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

/**
 * Matches DNS names against a set's domains: a Set lookup per suffix of the name, so
 * O(labels) lookups whatever the list size.
 */
export class DomainMatcher {
  private readonly names: ReadonlySet<string>;
  private readonly wildcards: ReadonlySet<string>;
  constructor(d: Pick<DestinationSet, 'names' | 'wildcards'>) {
    this.names = new Set(d.names);
    this.wildcards = new Set(d.wildcards);
  }
  get size(): number {
    return this.names.size + this.wildcards.size;
  }
  /** `name` as it appears in DNS (any case, optional trailing dot) */
  matchDomain(name: string): boolean {
    let n = name.toLowerCase();
    if (n.endsWith('.')) n = n.slice(0, -1);
    if (n.length === 0) return false;
    if (this.names.has(n)) return true;
    for (let i = n.indexOf('.'); i >= 0; i = n.indexOf('.', i + 1)) {
      const s = n.slice(i + 1);
      if (this.names.has(s) || this.wildcards.has(s)) return true;
    }
    return false;
  }
}
