/**
 * Grammars of config values that reach text formats (UAPI lines, nft text, `ip -batch`
 * lines, resolv.conf) or other parsers with a different reading. Used by schema.ts so that
 * `awg validate` refuses a bad value at its file:line:col, before anything renders it.
 * Pure. docs/security.md (Config values) lists what each value may hold and why.
 */
import { isIP } from 'node:net';
import ipaddr from '../util/ipaddr.js';

/** C0 controls and DEL: line breaks, NUL, escapes; no config string holds one */
// eslint-disable-next-line no-control-regex
export const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;
export const hasControl = (s: string): boolean => CONTROL_CHAR.test(s);

/** dotted-quad decimal with no leading zero (`010.0.0.1` is octal to inet_aton: 8.0.0.1) */
const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
export const isCanonicalIPv4 = (s: string): boolean => V4.test(s);

/**
 * An IPv6 literal with no zone (`%eth0`) and no embedded dotted quad (ipaddr.js reads
 * `::1.2.3.4` as `::ffff:1.2.3.4`).
 */
export const isPlainIPv6 = (s: string): boolean =>
  isIP(s) === 6 && !s.includes('%') && !s.includes('.');

/**
 * The canonical text of an IP literal, or undefined when `s` is not one in a form every
 * reader agrees on: IPv4 dotted-quad decimal, IPv6 in RFC 5952 form (lower case, the longest
 * run of zero groups compressed). Hex, octal, short (`10.1`) and integer IPv4 forms are not
 * literals here: ipaddr.js, inet_aton and the kernel read them differently.
 */
export function canonicalIp(s: string): string | undefined {
  if (isCanonicalIPv4(s)) return s;
  if (isPlainIPv6(s)) return ipaddr.IPv6.parse(s).toRFC5952String();
  return undefined;
}

/** Why `s` is not a canonical IP literal (for the error message), or undefined when it is. */
export function ipLiteralProblem(s: string): string | undefined {
  const c = canonicalIp(s);
  if (c === s) return undefined;
  if (c !== undefined) return `write the address canonically: "${c}"`;
  if (s.includes('%')) return 'must be an IP address without a zone (%…)';
  if (ipaddr.isValid(s)) {
    const as = ipaddr.parse(s).toString();
    return s.includes(':')
      ? `must be an IPv6 address in hex groups ("${s}" is read as ${as})`
      : `"${s}" is ambiguous (ipaddr.js and inet_aton read it as ${as}): write dotted-quad decimal without leading zeros, hex, octal or short forms`;
  }
  return 'must be an IPv4 or IPv6 address';
}

const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens (1-63
 * characters), 253 characters at most, one trailing dot allowed. The last label is not all
 * digits, so a name can never be mistaken for an IPv4 address (`010.0.0.1` resolves to
 * 8.0.0.1 through getaddrinfo).
 */
export function isHostName(s: string): boolean {
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  return labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels.at(-1)!);
}

/** a host name or an IP literal (IPv4 canonical; IPv6 plain) */
export const isHostOrIp = (s: string): boolean =>
  isCanonicalIPv4(s) || isPlainIPv6(s) || isHostName(s);

/**
 * The AmneziaWG I1-I5 tag chain (docs/dataplane.md#i-packet-tags; as amneziawg-go `device/obf*.go`
 * parses it): one or
 * more tags, optionally separated by spaces, and nothing else: `<b 0xHEX>` (even, non-empty
 * hex; `0x` optional), `<r N>`, `<rc N>`, `<rd N>`, `<t>`. amneziawg-go ignores text outside
 * tags; awg refuses it, so a value can never carry anything but tags (no line breaks).
 */
export const I_TAG_CHAIN = /^ *(<(b +(0x)?([0-9A-Fa-f]{2})+|r +\d+|rc +\d+|rd +\d+|t) *> *)+$/;

/** bytes of `s` in UTF-8 */
export const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8');

/** variable-width items (`*`, `{…}`) one path segment of a glob may hold: see globProblem */
export const MAX_GLOB_WILDCARDS_PER_SEGMENT = 3;

/**
 * Why a `match.path` glob is refused, or undefined. picomatch compiles a glob to a V8
 * RegExp that backtracks: k stars (or brace groups) in one segment cost O(L^k) on a
 * segment of length L, so a few more wildcards turn a non-matching long path into minutes
 * of matching, and extglobs/groups (`+(a|aa)`) are regular-expression quantifiers. So: at
 * most MAX_GLOB_WILDCARDS_PER_SEGMENT stars and brace groups per segment (a whole `**`
 * segment does not count; the worst accepted shape stays in tens of milliseconds on a
 * maximal path, bench/RESULTS.md "per-app matching on hostile paths"), and no extglob,
 * group or `|` (escape a literal one: `\(`).
 */
export function globProblem(glob: string): string | undefined {
  let depth = 0;
  let segment = '';
  let count = 0;
  const close = (): string | undefined => {
    const n = segment === '**' ? 0 : count;
    segment = '';
    count = 0;
    return n > MAX_GLOB_WILDCARDS_PER_SEGMENT
      ? `at most ${MAX_GLOB_WILDCARDS_PER_SEGMENT} "*" and "{…}" per path segment (more make the matcher backtrack for seconds on long names); use a regex match, which runs in linear time`
      : undefined;
  };
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '\\') {
      segment += glob.slice(i, i + 2);
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === '|')
      return `extglobs and groups are not supported ("${c}"); write a literal one as \\${c}`;
    if (c === '/' && depth === 0) {
      const why = close();
      if (why) return why;
      continue;
    }
    if (c === '{') {
      depth++;
      count++;
    } else if (c === '}' && depth > 0) depth--;
    else if (c === '*') count++;
    segment += c;
  }
  return close();
}
