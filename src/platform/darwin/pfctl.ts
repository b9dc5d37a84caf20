/**
 * pfctl output parsers (Apple pfctl). Pure.
 *
 * Apple's pfctl writes its messages to stderr; releases up to at least 15.0 prefix most
 * commands with `No ALTQ support in kernel` / `ALTQ related functions disabled`, and every
 * `-f` prints a three-line warning about flushing the main ruleset. Those lines carry no
 * information and are stripped before parsing. Tokens are u64: kept as decimal strings.
 */

const NOISE = new Set([
  'No ALTQ support in kernel',
  'ALTQ related functions disabled',
  'pfctl: Use of -f option, could result in flushing of rules',
  'present in the main ruleset added by the system at startup.',
  'See /etc/pf.conf for further details.',
]);

/** Lines of pfctl output without the informational noise and blank lines. */
export function pfLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/\r$/, '').trimEnd())
    .filter((l) => l.trim() !== '' && !NOISE.has(l.trim()));
}

export type PfAnchorKind =
  'anchor' | 'scrub-anchor' | 'nat-anchor' | 'rdr-anchor' | 'binat-anchor' | 'dummynet-anchor';

export interface PfAnchorRef {
  kind: PfAnchorKind;
  name: string;
  rule: string;
}

/** `pfctl [-a X] -sr` / `-sn`: one rule per line, in order. */
export function parsePfRules(text: string): { rules: string[]; anchors: PfAnchorRef[] } {
  const rules = pfLines(text)
    .map((l) => l.trim())
    .filter((l) => !l.startsWith('pfctl:'));
  const anchors: PfAnchorRef[] = [];
  for (const rule of rules) {
    const m =
      /^(anchor|scrub-anchor|nat-anchor|rdr-anchor|binat-anchor|dummynet-anchor) "([^"]+)"/.exec(
        rule,
      );
    if (m) anchors.push({ kind: m[1] as PfAnchorKind, name: m[2]!, rule });
  }
  return { rules, anchors };
}

/** `pfctl [-a X] -s Anchors`: one anchor path per line. */
export function parsePfAnchors(text: string): string[] {
  return pfLines(text)
    .map((l) => l.trim())
    .filter((l) => !l.startsWith('pfctl:'));
}

/** `pfctl -s all`: the titled sections (TRANSLATION RULES, FILTER RULES, STATES, INFO, …). */
export function parsePfSections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const l of pfLines(text)) {
    const m = /^([A-Z][A-Z ]+):$/.exec(l);
    if (m) {
      cur = [];
      out.set(m[1]!, cur);
    } else if (cur) cur.push(l);
  }
  return out;
}

export interface PfInfo {
  enabled: boolean;
  /** seconds since enabled/disabled, when printed */
  since?: number;
  debug?: string;
  states?: number;
}

/** `pfctl -s info` (or the INFO section of `-s all`). */
export function parsePfInfo(text: string): PfInfo | undefined {
  const ls = pfLines(text);
  const st = ls
    .map((l) =>
      /^Status: (Enabled|Disabled)(?: for (\d+) days (\d+):(\d+):(\d+))?\s*(?:Debug: (\S+))?/.exec(
        l,
      ),
    )
    .find(Boolean);
  if (!st) return undefined;
  const info: PfInfo = { enabled: st[1] === 'Enabled' };
  if (st[2] !== undefined)
    info.since = Number(st[2]) * 86400 + Number(st[3]) * 3600 + Number(st[4]) * 60 + Number(st[5]);
  if (st[6]) info.debug = st[6];
  const ce = ls.map((l) => /^\s+current entries\s+(\d+)/.exec(l)).find(Boolean);
  if (ce) info.states = Number(ce[1]);
  return info;
}

export interface PfReference {
  pid: number;
  process: string;
  token: string;
  /** age in seconds from `N days HH:MM:SS` */
  age: number;
}

/** `pfctl -s References`: enable references held (`pfctl -E` tokens), newest first. */
export function parsePfReferences(text: string): PfReference[] {
  const out: PfReference[] = [];
  for (const l of pfLines(text)) {
    const m = /^(\d+)\s+(.+?)\s+(\d+)\s+(\d+) days (\d+):(\d+):(\d+)\s*$/.exec(l);
    if (!m) continue;
    out.push({
      pid: Number(m[1]),
      process: m[2]!,
      token: m[3]!,
      age: Number(m[4]) * 86400 + Number(m[5]) * 3600 + Number(m[6]) * 60 + Number(m[7]),
    });
  }
  return out;
}

export type PfEnableResult =
  | { status: 'enabled'; token?: string }
  | { status: 'already-enabled' }
  | { status: 'error'; message: string };

/** `pfctl -E` (prints `Token : N`) and `pfctl -e`. */
export function parsePfEnable(text: string): PfEnableResult {
  const ls = pfLines(text);
  const tok = ls.map((l) => /^Token : (\d+)$/.exec(l.trim())).find(Boolean);
  if (ls.some((l) => l.trim() === 'pfctl: pf already enabled'))
    return { status: 'already-enabled' };
  if (ls.some((l) => l.trim() === 'pf enabled'))
    return tok ? { status: 'enabled', token: tok[1]! } : { status: 'enabled' };
  return { status: 'error', message: ls.join('\n') };
}

export type PfReleaseResult =
  | { status: 'disabled' }
  | { status: 'released'; remaining: number }
  | { status: 'token-invalid' }
  | { status: 'not-enabled' }
  | { status: 'error'; message: string };

/** `pfctl -X <token>`: release one enable reference. */
export function parsePfRelease(text: string): PfReleaseResult {
  const ls = pfLines(text).map((l) => l.trim());
  const more = ls
    .map((l) =>
      /^disable request successful\. (\d+) more pf enable reference\(s\) remaining, pf still enabled\.$/.exec(
        l,
      ),
    )
    .find(Boolean);
  if (more) return { status: 'released', remaining: Number(more[1]) };
  if (ls.includes('pf disabled')) return { status: 'disabled' };
  if (ls.includes('pfctl: pf: token invalid')) return { status: 'token-invalid' };
  if (ls.includes('pfctl: pf not enabled')) return { status: 'not-enabled' };
  return { status: 'error', message: ls.join('\n') };
}

export interface PfLoadError {
  /** `stdin` when loaded with `-f -` */
  file: string;
  line: number;
  message: string;
}

export interface PfLoadResult {
  loaded: boolean;
  errors: PfLoadError[];
  /** other `pfctl:` lines */
  messages: string[];
}

/** `pfctl [-a X] -f file`: parse errors are `<file>:<line>: <msg>`; the rules are not loaded then. */
export function parsePfLoad(text: string): PfLoadResult {
  const errors: PfLoadError[] = [];
  const messages: string[] = [];
  let rejected = false;
  for (const l of pfLines(text)) {
    const m = /^([^\s:]+):(\d+): (.+)$/.exec(l.trim());
    if (m && m[1] !== 'pfctl') errors.push({ file: m[1]!, line: Number(m[2]), message: m[3]! });
    else if (l.startsWith('pfctl:')) {
      messages.push(l);
      // `rules not loaded`, or an ioctl that failed (pfctl err()s: `pfctl: DIOCXCOMMIT: Device busy`)
      if (/rules not loaded/.test(l) || /^pfctl: DIOC[A-Z0-9_]+: /.test(l)) rejected = true;
    }
  }
  return { loaded: !rejected && errors.length === 0, errors, messages };
}

export interface PfFlushResult {
  cleared: string[];
  tablesDeleted?: number;
  statesCleared?: number;
}

/** `pfctl -F …` confirmations (`rules cleared`, `3 states cleared`, …). */
export function parsePfFlush(text: string): PfFlushResult {
  const r: PfFlushResult = { cleared: [] };
  for (const l of pfLines(text).map((x) => x.trim())) {
    let m: RegExpExecArray | null;
    if ((m = /^(\d+) tables deleted\.$/.exec(l))) r.tablesDeleted = Number(m[1]);
    else if ((m = /^(\d+) states cleared$/.exec(l))) r.statesCleared = Number(m[1]);
    else if ((m = /^(?:pf: )?(.+?) (?:cleared|reset)$/.exec(l))) r.cleared.push(m[1]!);
  }
  return r;
}
