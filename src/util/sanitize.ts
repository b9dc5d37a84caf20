/**
 * Untrusted text (a proxy's HTTP reason phrase, a SOCKS error, host names from the config or
 * from DNS, process names from /proc, anything in an error message) made safe for a terminal
 * or a log line: terminal escape sequences (CSI `ESC [ … m`, OSC `ESC ] … BEL` such as
 * title/hyperlink setters, DCS/APC strings, two-byte escapes, the 8-bit CSI) are removed, and
 * every other control character is written as an escape (`\x1b`, `\n`, `\u{202e}`): C0, DEL,
 * C1, and the Unicode format characters that reorder or hide text (bidi overrides and
 * isolates, LRM/RLM, line/paragraph separators). Printable text, including non-ASCII, is
 * kept. Pure.
 *
 * `safeLine` is for one line (a status field, an event, a log line): newlines and tabs are
 * escaped too, so a value cannot forge a line of its own. `safeText` keeps `\n` and `\t`
 * (multi-line messages and hints of our own that quote untrusted parts).
 */
/* eslint-disable no-control-regex -- finding control characters is what this module does */

/** ESC-introduced sequences and the 8-bit CSI, matched whole (an unterminated string runs to the end) */
const ESCAPES =
  // CSI: ESC [ (or 0x9b) parameters, intermediates, final byte
  /(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -~]?/g;

/** what is left to escape: C0, DEL, C1, and the invisible reordering/format characters */
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]/g;
const CONTROLS_BUT_NL_TAB =
  /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]/g;

function escape(c: string): string {
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  const n = c.codePointAt(0)!;
  return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u{${n.toString(16)}}`;
}

function clip(s: string, max: number | undefined): string {
  if (max === undefined || s.length <= max) return s;
  return `${s.slice(0, Math.max(0, max - 1))}…`;
}

/** One line of untrusted text for a terminal or a log; `max`: cut (with …) to that many characters. */
export function safeLine(s: string, max?: number): string {
  return clip(String(s).replace(ESCAPES, '').replace(CONTROLS, escape), max);
}

/** Untrusted text that may span lines: as safeLine, but `\n` and `\t` stay (`\r` is escaped). */
export function safeText(s: string, max?: number): string {
  return clip(String(s).replace(ESCAPES, '').replace(CONTROLS_BUT_NL_TAB, escape), max);
}
