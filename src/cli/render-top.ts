/**
 * `awg top`'s text view of a TopDocument (procs/top/document.ts), pure: the routes (tunnels,
 * direct, total), the rules, then the processes and the unattributed row, sorted and filtered.
 * Every line fits `width` columns: the text columns shrink first (with `…`; paths keep their
 * end), then the least important columns go, and a line is cut as a last resort; `height`
 * bounds the process rows. Names come from processes and the config: they pass safeLine, so
 * no escape sequence of theirs reaches the terminal.
 */
import type { TopDocument, TopProcess } from '../procs/top/document.js';
import { AwgError } from '../errors.js';
import { safeLine } from '../util/sanitize.js';

export const TOP_COLUMNS = [
  'pid',
  'process',
  'rule',
  'route',
  'up',
  'down',
  'sent',
  'recv',
  'conns',
] as const;
export type TopColumn = (typeof TOP_COLUMNS)[number];
/** a column, or `rate` (up + down): the default order */
export type TopSort = TopColumn | 'rate';

const SORT_ALIASES: Record<string, TopSort> = {
  name: 'process',
  upload: 'up',
  download: 'down',
  received: 'recv',
  connections: 'conns',
};

/** `--sort` → the column (case-insensitive; also upload, download, received, connections, name) */
export function parseSort(s: string): TopSort {
  const k = s.toLowerCase();
  if (k === 'rate' || (TOP_COLUMNS as readonly string[]).includes(k)) return k as TopSort;
  const alias = SORT_ALIASES[k];
  if (alias) return alias;
  throw new AwgError(
    'invalid-config',
    `--sort ${safeLine(s)}: not a column (${[...TOP_COLUMNS, 'rate'].join(', ')})`,
  );
}

export interface TopFilter {
  /** only processes (and connections) of this rule */
  rule?: string | undefined;
  /** only processes whose route is this tunnel (or with a connection through it) */
  tunnel?: string | undefined;
}

export interface TopViewOptions extends TopFilter {
  sort?: TopSort | undefined;
  /** the opposite order */
  reverse?: boolean | undefined;
  /** terminal columns; undefined: no limit */
  width?: number | undefined;
  /** terminal rows; undefined: every process */
  height?: number | undefined;
}

function throughTunnel(doc: TopDocument, p: TopProcess, t: string): boolean {
  return p.route === t || doc.connections.some((c) => c.pid === p.pid && c.route === t);
}

/** The document with only the processes and connections the filter names (sections stay whole). */
export function filterDocument(doc: TopDocument, f: TopFilter): TopDocument {
  if (f.rule === undefined && f.tunnel === undefined) return doc;
  const processes = doc.processes.filter(
    (p) =>
      (f.rule === undefined || p.rule === f.rule) &&
      (f.tunnel === undefined || throughTunnel(doc, p, f.tunnel)),
  );
  const pids = new Set(processes.map((p) => p.pid));
  const connections = doc.connections.filter(
    (c) =>
      (f.rule === undefined || c.rule === f.rule) &&
      (f.tunnel === undefined || c.route === f.tunnel) &&
      (c.pid === undefined || pids.has(c.pid)),
  );
  return { ...doc, processes, connections };
}

const NUMERIC: Record<Exclude<TopSort, 'process' | 'rule' | 'route'>, (p: TopProcess) => number> = {
  pid: (p) => p.pid,
  up: (p) => p.upload,
  down: (p) => p.download,
  sent: (p) => p.sent,
  recv: (p) => p.received,
  conns: (p) => p.connections,
  rate: (p) => p.upload + p.download,
};

/** a text column's sort key: the process by its executable's file name (then the whole path) */
function textKey(p: TopProcess, col: 'process' | 'rule' | 'route'): string {
  if (col !== 'process') return (p[col] ?? '').toLowerCase();
  const label = processLabel(p);
  return `${label.slice(label.lastIndexOf('/') + 1)}\0${label}`.toLowerCase();
}

/**
 * Processes in `sort` order: text columns A→Z (a process by its executable's file name), pid ascending, the counters largest first
 * (default `rate`: up + down); `reverse` turns it round. Ties by pid (reversed too).
 */
export function sortProcesses(list: TopProcess[], sort: TopSort = 'rate', reverse = false) {
  const dir = reverse ? -1 : 1;
  const cmp = (a: TopProcess, b: TopProcess): number => {
    if (sort === 'process' || sort === 'rule' || sort === 'route') {
      const x = textKey(a, sort);
      const y = textKey(b, sort);
      return x < y ? -1 : x > y ? 1 : 0;
    }
    const v = NUMERIC[sort];
    return sort === 'pid' ? v(a) - v(b) : v(b) - v(a);
  };
  return [...list].sort((a, b) => dir * (cmp(a, b) || a.pid - b.pid));
}

// ---- units ------------------------------------------------------------------------------

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** decimal units (1 kB = 1000 B): `999 B`, `1.5 kB`, `12.3 MB`, `123 MB` */
export function humanSize(n: number): string {
  let v = n;
  let i = 0;
  while (v >= 999.95 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  return `${v >= 99.95 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[i]}`;
}

/** bytes per second: `0 B/s`, `1.5 kB/s`, `12.3 MB/s` */
export function humanRate(n: number): string {
  return `${humanSize(n)}/s`;
}

/** bit/s as a limit reads: `800 kbit`, `20 Mbit` */
export function humanBits(n: number): string {
  const u = ['bit', 'kbit', 'Mbit', 'Gbit'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < u.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${u[i]}`;
}

// ---- width ------------------------------------------------------------------------------

const WIDE =
  /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;
const ZERO = /[\p{Mn}\p{Me}\u200b-\u200d]/u;

function charWidth(c: string): number {
  if (ZERO.test(c)) return 0;
  return WIDE.test(c) ? 2 : 1;
}

/** columns `s` takes on a terminal (wide East Asian characters 2, combining marks 0) */
export function displayWidth(s: string): number {
  let w = 0;
  for (const c of s) w += charWidth(c);
  return w;
}

/** `s` cut to `max` columns with `…` at the end (`fromStart`: at the start, the end kept) */
export function truncate(s: string, max: number, fromStart = false): string {
  if (displayWidth(s) <= max) return s;
  if (max <= 0) return '';
  if (max === 1) return '…';
  const chars = [...s];
  if (fromStart) chars.reverse();
  let w = 0;
  const kept: string[] = [];
  for (const c of chars) {
    const cw = charWidth(c);
    if (w + cw > max - 1) break;
    kept.push(c);
    w += cw;
  }
  if (fromStart) return '…' + kept.reverse().join('');
  return kept.join('') + '…';
}

function pad(s: string, w: number, right: boolean): string {
  const fill = ' '.repeat(Math.max(0, w - displayWidth(s)));
  return right ? fill + s : s + fill;
}

// ---- tables -----------------------------------------------------------------------------

interface Column {
  header: string;
  /** numbers: right-aligned, never shrunk */
  right?: boolean;
  /** text that may shrink to this many columns (with …) */
  min?: number;
  /** paths (cells that start with `/`): cut at the start, the end kept */
  path?: boolean;
  /** the lower, the sooner it goes when even the minimum widths do not fit (absent: never) */
  drop?: number;
}

const GAP = 2;

/**
 * The lines of a table that fit `width`: natural widths; then the shrinkable columns give up
 * what they must (widest first) down to their minimum; then droppable columns go (lowest
 * `drop` first); a line still too long is cut.
 */
export function fitTable(cols: Column[], rows: string[][], width = Infinity): string[] {
  const cells = rows.map((r) => r.map((c) => safeLine(c)));
  let keep = cols.map((_, i) => i);
  const natural = cols.map((c, i) =>
    Math.max(displayWidth(c.header), ...cells.map((r) => displayWidth(r[i] ?? ''))),
  );
  const widths = [...natural];
  const total = () => keep.reduce((s, i) => s + widths[i]!, 0) + GAP * (keep.length - 1);
  for (;;) {
    // shrink the widest shrinkable column a step at a time (fair to all of them)
    while (total() > width) {
      let best = -1;
      for (const i of keep) {
        const min = cols[i]!.min;
        if (min === undefined || widths[i]! <= min) continue;
        if (best < 0 || widths[i]! > widths[best]!) best = i;
      }
      if (best < 0) break;
      widths[best]!--;
    }
    if (total() <= width) break;
    const droppable = keep.filter((i) => cols[i]!.drop !== undefined);
    if (!droppable.length) break;
    // columns of the same rank go together (SENT with RECV)
    const rank = Math.min(...droppable.map((i) => cols[i]!.drop!));
    keep = keep.filter((i) => cols[i]!.drop !== rank);
    // what a dropped column freed goes back to the shrunk ones
    for (const i of keep) widths[i] = natural[i]!;
  }
  const line = (r: string[]) => {
    const s = keep
      .map((i, k) => {
        const c = cols[i]!;
        const w = widths[i]!;
        const cell = r[i] ?? '';
        const v = truncate(cell, w, c.path === true && cell.startsWith('/'));
        // no trailing blanks on the last column
        return k === keep.length - 1 && !c.right ? v : pad(v, w, c.right === true);
      })
      .join(' '.repeat(GAP))
      .trimEnd();
    return truncate(s, width);
  };
  return [line(cols.map((c) => c.header)), ...cells.map(line)];
}

// ---- the view ---------------------------------------------------------------------------

const counters = (t: {
  upload: number;
  download: number;
  sent: number;
  received: number;
  connections: number;
}) => [
  humanRate(t.upload),
  humanRate(t.download),
  humanSize(t.sent),
  humanSize(t.received),
  String(t.connections),
];

const COUNTER_COLS: Column[] = [
  { header: 'UP', right: true },
  { header: 'DOWN', right: true },
  { header: 'SENT', right: true, drop: 3 },
  { header: 'RECV', right: true, drop: 3 },
  { header: 'CONNS', right: true, drop: 2 },
];

/** the executable when known (a path: its end stays when cut), else the short name */
function processLabel(p: TopProcess): string {
  return p.exe ?? p.name;
}

function limitText(p: TopProcess): string {
  if (!p.limit) return '';
  const parts = [
    ...(p.limit.upload !== undefined ? [`↑${humanBits(p.limit.upload)}`] : []),
    ...(p.limit.download !== undefined ? [`↓${humanBits(p.limit.download)}`] : []),
  ];
  return parts.join(' ');
}

function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toTimeString().slice(0, 8);
}

export function renderTop(input: TopDocument, o: TopViewOptions = {}): string {
  const width = o.width;
  const doc = filterDocument(input, o);
  const out: string[] = [];
  const sort = o.sort ?? 'rate';
  const filters = [
    ...(o.rule !== undefined ? [`rule ${o.rule}`] : []),
    ...(o.tunnel !== undefined ? [`tunnel ${o.tunnel}`] : []),
  ];
  const head = [
    `awg top ${clock(doc.at)}`,
    doc.intervalMs ? `every ${(doc.intervalMs / 1000).toFixed(1)} s` : 'first reading',
    `since ${clock(doc.since)}`,
    `sort ${sort}${o.reverse ? ' (reversed)' : ''}`,
    ...(filters.length ? [`only ${filters.join(', ')}`] : []),
  ].join(' · ');
  out.push(truncate(safeLine(head), width ?? Infinity));

  const routes = [
    ...doc.tunnels.map((t) => [t.name, ...counters(t)]),
    ['direct', ...counters(doc.direct)],
    ['total', ...counters(doc.total)],
  ];
  out.push('', ...fitTable([{ header: 'ROUTE', min: 5 }, ...COUNTER_COLS], routes, width));

  if (doc.rules.length) {
    const rules = doc.rules.map((r) => [r.name, r.route, String(r.processes), ...counters(r)]);
    out.push(
      '',
      ...fitTable(
        [
          { header: 'RULE', min: 4 },
          { header: 'ROUTE', min: 5, drop: 5 },
          { header: 'PROCS', right: true, drop: 1 },
          ...COUNTER_COLS,
        ],
        rules,
        width,
      ),
    );
  }

  const procs = sortProcesses(doc.processes, sort, o.reverse);
  const withLimit = procs.some((p) => p.limit);
  const row = (p: TopProcess) => [
    String(p.pid),
    processLabel(p),
    p.rule ?? '-',
    p.route,
    ...counters(p),
    ...(withLimit ? [limitText(p)] : []),
  ];
  const cols: Column[] = [
    { header: 'PID', right: true },
    { header: 'PROCESS', min: 8, path: true },
    { header: 'RULE', min: 4, drop: 6 },
    { header: 'ROUTE', min: 5, drop: 7 },
    ...COUNTER_COLS,
    ...(withLimit ? [{ header: 'LIMIT', min: 5, drop: 0 }] : []),
  ];
  // besides the lines above: a blank line, the table's header, the unattributed row, the
  // warnings, and the last line's newline (a full screen would scroll by one)
  let shown = procs;
  let more = 0;
  if (o.height !== undefined) {
    const room = Math.max(1, o.height - out.length - 4 - doc.warnings.length);
    if (procs.length > room) {
      shown = procs.slice(0, room - 1);
      more = procs.length - shown.length;
    }
  }
  const un = doc.unattributed;
  const rows = [
    ...shown.map(row),
    ['-', '(unattributed)', '-', '-', ...counters(un), ...(withLimit ? [''] : [])],
  ];
  const table = fitTable(cols, rows, width);
  out.push('', ...table.slice(0, -1));
  if (more) out.push(truncate(`… ${more} more`, width ?? Infinity));
  out.push(table.at(-1)!);
  for (const w of doc.warnings) out.push(truncate(`warning: ${safeLine(w)}`, width ?? Infinity));
  return out.join('\n') + '\n';
}
