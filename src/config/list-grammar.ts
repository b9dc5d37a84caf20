/**
 * The grammar of one destination entry (config/lists.ts describes the list format): addresses
 * and prefixes, domain names and wildcards, and the other readers' kinds — full names,
 * keywords, regexes. Each parser gives the entry or a message saying what is wrong. Pure.
 */
import { domainToASCII } from 'node:url';
import { compileLinearRegex, LinearRegexError, type LinearRegex } from '../util/linear-regex.js';
import { parseV4, v4String } from './cidr.js';

export type Entry =
  | { kind: 'name'; name: string }
  | { kind: 'wildcard'; name: string }
  | { kind: 'full'; name: string }
  | { kind: 'keyword'; value: string }
  | { kind: 'regex'; source: string; re: LinearRegex }
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
  // RFC 5952 as ipaddr.js writes it (its toString, the test's reference), without building an
  // object and running its regular expressions per address (a list's thousands of intervals);
  // the groups come from two 64-bit halves, the text by concatenation (no arrays per address)
  const hi = BigInt.asUintN(64, n >> 64n);
  const lo = BigInt.asUintN(64, n);
  const g = V6_GROUPS;
  const hiH = Number(hi >> 32n);
  const hiL = Number(hi & 0xffffffffn);
  const loH = Number(lo >> 32n);
  const loL = Number(lo & 0xffffffffn);
  g[0] = hiH >>> 16;
  g[1] = hiH & 0xffff;
  g[2] = hiL >>> 16;
  g[3] = hiL & 0xffff;
  g[4] = loH >>> 16;
  g[5] = loH & 0xffff;
  g[6] = loL >>> 16;
  g[7] = loL & 0xffff;
  // the longest run of two or more zero groups, the first of equal ones
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groupsText(g, 0, 8);
  return `${groupsText(g, 0, best)}::${groupsText(g, best + bestLen, 8)}`;
}

/** scratch for v6String (one address at a time; nothing keeps it) */
const V6_GROUPS = new Uint16Array(8);

function groupsText(g: Uint16Array, a: number, b: number): string {
  let out = '';
  for (let i = a; i < b; i++) out += i === a ? g[i]!.toString(16) : `:${g[i]!.toString(16)}`;
  return out;
}

export function parseAddress(s: string): Entry | string {
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
export function parseDomain(raw: string): Entry | string {
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

/** a `domain` entry of a reader (no wildcard) */
export function parseSuffix(raw: string): Entry | string {
  return raw.startsWith('*.') ? `${raw}: a wildcard is not a domain entry` : parseDomain(raw);
}

export function parseFull(raw: string): Entry | string {
  if (raw.startsWith('*.')) return `${raw}: a wildcard is not a full-name entry`;
  const e = parseDomain(raw);
  return typeof e === 'string' || e.kind !== 'name' ? e : { kind: 'full', name: e.name };
}

/** the longest keyword (a name's length) */
export const MAX_KEYWORD_LENGTH = 253;
const KEYWORD = /^[a-z0-9_.-]+$/;

export function parseKeyword(raw: string): Entry | string {
  const s = raw.toLowerCase();
  if (s.length === 0) return 'an empty keyword would fit every name';
  if (s.length > MAX_KEYWORD_LENGTH)
    return `${raw.slice(0, 40)}…: a keyword is at most ${MAX_KEYWORD_LENGTH} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(s))
    return `${raw} is not ASCII; names are matched in their punycode form (xn--…)`;
  if (!KEYWORD.test(s))
    return `${JSON.stringify(raw)}: a keyword is letters, digits, "-", "_" and "." (a part of a name)`;
  return { kind: 'keyword', value: s };
}

export function parseRegex(raw: string): Entry | string {
  if (raw.length === 0) return 'an empty regular expression would fit every name';
  try {
    return { kind: 'regex', source: raw, re: compileLinearRegex(raw) };
  } catch (e) {
    if (!(e instanceof LinearRegexError)) throw e;
    return `regexp ${JSON.stringify(raw)} cannot be used: ${e.message} (at character ${e.index + 1})`;
  }
}

/** an inline `to.domains` value: a name or wildcard, or geosite's `full:`, `keyword:`, `regexp:`, `domain:` */
export function parseDomainValue(s: string): Entry | string {
  const colon = s.indexOf(':');
  if (colon < 0) return parseDomain(s);
  const v = s.slice(colon + 1);
  switch (s.slice(0, colon)) {
    case 'full':
      return parseFull(v);
    case 'keyword':
      return parseKeyword(v);
    case 'regexp':
      return parseRegex(v);
    case 'domain':
      return parseSuffix(v);
    default:
      return `${s}: a domain, *.wildcard, or full:, keyword:, regexp:, domain: followed by its value`;
  }
}
