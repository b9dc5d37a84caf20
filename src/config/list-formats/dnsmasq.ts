/**
 * dnsmasq configuration lines as a list (itdoginfo/allow-domains `dnsmasq-ipset`/`-nfset`,
 * dnsmasq-china-list, gfwlist2dnsmasq):
 *
 *   server=/d1/d2/…/ADDR   local=/d/   address=/d/IP   ipset=/d/SET   nftset=/d/4#inet#fw4#SET
 *
 * Each domain is a `domain` entry: dnsmasq matches it and every name under it on whole labels
 * (`/google.com/` is not `supergoogle.com`). `/.d/` is the same as `/d/` (dnsmasq's historical
 * rule), `/*.d/` the names under d only (`wildcard`). What follows the last `/` (server, IP,
 * set) is dnsmasq's business, not a destination: it is not read.
 *
 * Refused, at their line and column: the domain `#` (dnsmasq: every domain), an empty domain
 * `//` (dnsmasq: names without a dot), `*text` without a dot (dnsmasq: any name ending in the
 * text, `*google.com` is also `supergoogle.com`) — a list never widens a rule past what its
 * lines name; includes (`conf-file`, `conf-dir`, `servers-file`, `conf-script`), which would
 * carry entries this reader does not follow; a line that is not `option[=value]`.
 * Other options (`no-resolv`, `cache-size=…`, a `server=` without domains) do not name
 * destinations: one warning per option name, at its first line, and they are ignored.
 * Comments: a line starting with `#`, or `#` after whitespace (dnsmasq's own rule).
 */
import { Emitter } from './reading.js';
import type { ListReader, ListSink, ReadOptions } from './types.js';

/** the options whose value is `/domain/…/target` */
const DOMAIN_OPTIONS = new Set(['server', 'local', 'address', 'ipset', 'nftset']);
/** options that pull in more configuration from elsewhere */
const INCLUDES = new Set(['conf-file', 'conf-dir', 'servers-file', 'conf-script']);
/** option names warned about one by one at most; the rest are counted in one warning */
const MAX_IGNORED = 20;
const OPTION = /^([a-z0-9][a-z0-9-]*)(=|$)/;
/** a domain option as the first significant line tells a dnsmasq file from a plain list */
const DOMAIN_LINE = /^(server|local|address|ipset|nftset)=\//;

function detect(bytes: Uint8Array): boolean {
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.byteLength, 16384))
    .toString('utf8')
    .replace(/^\uFEFF/, '');
  for (const raw of head.split('\n').slice(0, 64)) {
    const s = raw.trim();
    if (s.length === 0 || s.startsWith('#')) continue;
    return DOMAIN_LINE.test(s);
  }
  return false;
}

/** the line without its comment: `#` at the start or after whitespace */
function stripComment(line: string): string {
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

function readDomains(
  value: string,
  valueCol: number,
  line: number,
  out: Emitter,
  opt: string,
): void {
  const at = (col: number) => ({ line, col });
  const last = value.lastIndexOf('/');
  if (last === 0) {
    out.error(`${opt}=${value}: the domain list is not closed with /`, at(valueCol));
    return;
  }
  let col = valueCol + 1;
  for (const raw of value.slice(1, last).split('/')) {
    const here = at(col);
    col += raw.length + 1;
    const d = raw.trim();
    if (d === '#') {
      out.error(
        `${opt}=/#/: '#' is every domain in dnsmasq; a list cannot send every name through a rule`,
        here,
      );
    } else if (d.length === 0) {
      out.error(
        `${opt}: an empty domain (//) is dnsmasq's "names without a dot"; awg cannot route that`,
        here,
      );
    } else if (d.startsWith('*.')) {
      if (!out.entry('wildcard', d.slice(2), here)) return;
    } else if (d.startsWith('*')) {
      out.error(
        `${d}: dnsmasq matches any name ending in ${JSON.stringify(d.slice(1))} (also "x${d.slice(1)}"); write ${d.slice(1)} or *.${d.slice(1)}`,
        here,
      );
    } else if (!out.entry('domain', d.startsWith('.') ? d.slice(1) : d, here)) return;
  }
}

function read(bytes: Uint8Array, sink: ListSink, opts: ReadOptions): void {
  const out = new Emitter(sink, opts.maxEntries);
  let text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const ignored = new Map<string, { line: number; col: number; n: number }>();
  let others = 0;
  let lineNo = 0;
  for (let pos = 0; pos <= text.length && !out.stopped;) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = text.length;
    lineNo++;
    const line = stripComment(text.slice(pos, nl));
    pos = nl + 1;
    const s = line.trim();
    if (s.length === 0) continue;
    const col = line.length - line.trimStart().length + 1;
    const m = OPTION.exec(s);
    if (!m) {
      out.error(
        `${JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s)} is not a dnsmasq option line (option or option=value)`,
        { line: lineNo, col },
      );
      continue;
    }
    const opt = m[1]!;
    const value = s.slice(m[0].length);
    if (INCLUDES.has(opt)) {
      out.error(
        `${opt}= includes configuration from elsewhere; awg does not follow it (name that file as a list of its own)`,
        { line: lineNo, col },
      );
    } else if (DOMAIN_OPTIONS.has(opt) && value.startsWith('/')) {
      readDomains(value, col + m[0].length, lineNo, out, opt);
    } else {
      const seen = ignored.get(opt);
      if (seen) seen.n++;
      else if (ignored.size < MAX_IGNORED) ignored.set(opt, { line: lineNo, col, n: 1 });
      else others++;
    }
  }
  for (const [opt, at] of ignored)
    out.warn(`${opt}${at.n > 1 ? ` (${at.n} lines)` : ''}: names no destination; ignored`, at);
  if (others > 0)
    out.warn(`${others} more lines of other options name no destination; ignored`, {
      line: 1,
      col: 1,
    });
}

export const dnsmasqReader: ListReader = { format: 'dnsmasq', detect, read };
