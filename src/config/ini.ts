/**
 * Located tokenizer for wg-quick / awg-quick INI files (docs/import.md#how-the-file-is-read).
 * Pure: no I/O.
 *
 * Whitespace follows wg(8): everything after the first `#` is a comment and all whitespace
 * is removed from key and value, except for I1–I5 (AmneziaWG tag strings) and the
 * wg-quick hook keys, whose values keep interior whitespace and are only trimmed.
 * Section names and keys are case-insensitive (`lower` is the canonical form).
 * Every key and value carries 1-based line/col positions into the original text.
 */
import type { Issue } from '../errors.js';
import { safeKeyName } from './import/scrub.js';

export type SectionKind = 'interface' | 'peer';

export interface IniEntry {
  /** key as written, whitespace removed */
  key: string;
  /** lower-case key for matching */
  lower: string;
  /** value after the whitespace rules */
  value: string;
  /** value as written between `=` and the comment, trimmed */
  raw: string;
  line: number;
  col: number;
  /** position of the first character of `raw` (col just past `=` when raw is empty) */
  valueCol: number;
  /** full-line comments directly above this entry (text after `#`, one per line) */
  comments: string[];
  /** comment at the end of the entry's own line */
  trailing?: string;
}

export interface IniSection {
  kind: SectionKind;
  /** header as written, e.g. `[interface]` */
  header: string;
  line: number;
  col: number;
  comments: string[];
  trailing?: string;
  entries: IniEntry[];
}

export interface IniDocument {
  sections: IniSection[];
  /** comments after the last entry of the file */
  tailComments: string[];
}

export interface IniListItem {
  value: string;
  col: number;
}

/** Keys whose values keep interior whitespace. */
const KEEP_SPACE = new Set([
  'i1',
  'i2',
  'i3',
  'i4',
  'i5',
  'preup',
  'postup',
  'predown',
  'postdown',
]);

const WS = /\s/;

function firstNonSpace(s: string, from: number): number {
  let i = from;
  while (i < s.length && WS.test(s[i]!)) i++;
  return i;
}

/** Split a text into lines without their terminators (LF, CRLF or CR). */
function lines(text: string): string[] {
  return text.split(/\r\n|\n|\r/);
}

/**
 * Tokenize. Syntax problems (a line without `=`, an unknown section, a key outside any
 * section) are returned as located error issues; the rest of the file is still read.
 */
export function parseIni(text: string, file: string): { doc: IniDocument; issues: Issue[] } {
  const issues: Issue[] = [];
  const sections: IniSection[] = [];
  let current: IniSection | undefined;
  let pending: string[] = [];
  /** inside an unknown section: its keys were already covered by that error */
  let skipping = false;
  const src = text.startsWith('\uFEFF') ? text.slice(1) : text;

  lines(src).forEach((full, idx) => {
    const line = idx + 1;
    const hash = full.indexOf('#');
    const body = hash < 0 ? full : full.slice(0, hash);
    const comment = hash < 0 ? undefined : full.slice(hash + 1);
    const start = firstNonSpace(body, 0);
    if (start >= body.length) {
      if (comment !== undefined) pending.push(comment);
      return;
    }
    const col = start + 1;
    if (body[start] === '[') {
      const header = body.replace(/\s+/g, '');
      const name = header.toLowerCase();
      const kind: SectionKind | undefined =
        name === '[interface]' ? 'interface' : name === '[peer]' ? 'peer' : undefined;
      if (kind === undefined) {
        issues.push({
          file,
          line,
          col,
          path: '',
          message: `unknown section ${safeKeyName(header)}: expected [Interface] or [Peer]`,
          severity: 'error',
        });
        current = undefined;
        skipping = true;
        pending = [];
        return;
      }
      skipping = false;
      current = { kind, header, line, col, comments: trimBlankEdges(pending), entries: [] };
      if (comment !== undefined) current.trailing = comment;
      sections.push(current);
      pending = [];
      return;
    }
    const eq = body.indexOf('=');
    if (eq < 0) {
      issues.push({
        file,
        line,
        col,
        path: '',
        message: `line not understood: "${safeKeyName(body.trim())}" is neither a [section] nor a key = value`,
        severity: 'error',
      });
      pending = [];
      return;
    }
    const key = body.slice(0, eq).replace(/\s+/g, '');
    const lower = key.toLowerCase();
    const vStart = firstNonSpace(body, eq + 1);
    const raw = body.slice(vStart).trimEnd();
    const value = KEEP_SPACE.has(lower) ? raw : raw.replace(/\s+/g, '');
    const entry: IniEntry = {
      key,
      lower,
      value,
      raw,
      line,
      col,
      valueCol: vStart + 1,
      comments: trimBlankEdges(pending),
    };
    if (comment !== undefined) entry.trailing = comment;
    pending = [];
    if (key === '') {
      issues.push({
        file,
        line,
        col,
        path: '',
        message: 'missing key name before "="',
        severity: 'error',
      });
      return;
    }
    if (current === undefined) {
      if (skipping) return;
      issues.push({
        file,
        line,
        col,
        path: '',
        message: `key ${safeKeyName(key)} outside a section: put it under [Interface] or [Peer]`,
        severity: 'error',
      });
      return;
    }
    current.entries.push(entry);
  });
  return { doc: { sections, tailComments: trimBlankEdges(pending) }, issues };
}

function trimBlankEdges(c: string[]): string[] {
  let a = 0;
  let b = c.length;
  while (a < b && c[a]!.trim() === '') a++;
  while (b > a && c[b - 1]!.trim() === '') b--;
  return c.slice(a, b);
}

/**
 * Split a comma-separated value into located items, whitespace removed from each item
 * (as wg does). Empty items are dropped.
 */
export function splitList(e: IniEntry): IniListItem[] {
  const out: IniListItem[] = [];
  let offset = 0;
  for (const part of e.raw.split(',')) {
    const lead = firstNonSpace(part, 0);
    const value = part.replace(/\s+/g, '');
    if (value !== '') out.push({ value, col: e.valueCol + offset + lead });
    offset += part.length + 1;
  }
  return out;
}
