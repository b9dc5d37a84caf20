/**
 * `nettop` CSV output (macOS's per-socket counters, logging mode `-L`): pure parser. Tested on
 * captures (test/fixtures/macos/process/nettop-*.txt) and on the layout they show.
 *
 * Layout: a header line starts each sample (`time,,interface,state,bytes_in,…`; without the
 * `time` column when stdout is a terminal); every row ends with a comma. The second column
 * (unnamed) is the row's subject: a process (`name.pid`, the name cut to 15 characters and
 * possibly holding dots and spaces) or, under the process it belongs to, one of its sockets
 * (`tcp4 192.168.3.37:56241<->17.57.145.55:5223`; IPv6 with `.` before the port,
 * `udp6 *.5353<->*.*`). Columns are found by their header names, so a `-J` selection or a
 * release that adds columns parses alike.
 *
 * What the counts are (xnu, bsd/netinet: read in the public source, not observed): nettop
 * shows NetworkStatistics' per-socket counters, kept in `inp_stat` — TCP `rxbytes` adds every
 * received segment's payload, duplicates included (also counted in `rx_dupe`), `txbytes` every
 * sent segment's payload, retransmissions included (also counted in `re-tx`); UDP counts
 * datagram payloads. So the bytes the application exchanged are `bytes_in − rx_dupe` and
 * `bytes_out − re-tx` (payloadOf).
 */

export interface NettopProcessRow {
  kind: 'process';
  /** nettop's name: the process name cut to 15 characters (it may end in a space) */
  name: string;
  pid: number;
  bytesIn: number;
  bytesOut: number;
}

export interface NettopEnd {
  /** `*` for a wildcard (an unconnected or listening socket); an IPv6 address may carry `%zone` */
  address: string;
  /** 0 for `*` */
  port: number;
}

export interface NettopSocketRow {
  kind: 'socket';
  proto: 'tcp' | 'udp';
  family: 4 | 6;
  local: NettopEnd;
  remote: NettopEnd;
  /** the process row above it (undefined: a socket row before any process row) */
  pid?: number;
  interface?: string;
  /** TCP state (`Established`, `Listen`, …); empty for UDP */
  state?: string;
  bytesIn: number;
  bytesOut: number;
  /** TCP: duplicate payload received (part of bytesIn) */
  rxDupe?: number;
  /** TCP: payload sent again (part of bytesOut) */
  retransmitted?: number;
}

export type NettopRow = NettopProcessRow | NettopSocketRow;

export interface NettopSample {
  /** the sample's first row's time column (`HH:MM:SS.micro`), when the output has one */
  time?: string;
  rows: NettopRow[];
}

/** a header line: its columns by name (index of the subject column, byte columns) */
interface Header {
  subject: number;
  col: Map<string, number>;
  time?: number;
}

function parseHeader(line: string): Header | undefined {
  const cells = line.split(',');
  if (!cells.includes('bytes_in') || !cells.includes('bytes_out')) return undefined;
  const col = new Map<string, number>();
  cells.forEach((c, i) => {
    if (c && !col.has(c)) col.set(c, i);
  });
  const subject = cells.indexOf('');
  if (subject < 0) return undefined;
  const time = col.get('time');
  return { subject, col, ...(time !== undefined ? { time } : {}) };
}

/** `192.168.3.37:56241`, `*:5353`, `*:*` (IPv4); `fe80::1%lo0.5353`, `*.5353`, `*.*` (IPv6) */
function parseEnd(s: string, family: 4 | 6): NettopEnd | undefined {
  const at = s.lastIndexOf(family === 4 ? ':' : '.');
  if (at <= 0) return undefined;
  const address = s.slice(0, at);
  const p = s.slice(at + 1);
  if (p === '*') return { address, port: 0 };
  if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) return undefined;
  return { address, port: Number(p) };
}

const SOCKET_RE = /^(tcp|udp)([46]) (\S+)<->(\S+)$/;
const PROCESS_RE = /^(.*)\.(\d+)$/;

/** a count column: digits, or empty (0); anything else (a humanised `1.2 MiB` without -x) is not a count */
function count(cells: string[], at: number | undefined): number | undefined {
  if (at === undefined) return 0;
  const v = cells[at] ?? '';
  if (v === '') return 0;
  return /^\d+$/.test(v) ? Number(v) : undefined;
}

function parseRow(cells: string[], h: Header): NettopRow | undefined {
  const subject = cells[h.subject] ?? '';
  const bytesIn = count(cells, h.col.get('bytes_in'));
  const bytesOut = count(cells, h.col.get('bytes_out'));
  if (bytesIn === undefined || bytesOut === undefined) return undefined;
  const sock = SOCKET_RE.exec(subject);
  if (sock) {
    const family = sock[2] === '6' ? 6 : 4;
    const local = parseEnd(sock[3]!, family);
    const remote = parseEnd(sock[4]!, family);
    if (!local || !remote) return undefined;
    const iface = h.col.has('interface') ? cells[h.col.get('interface')!] : undefined;
    const state = h.col.has('state') ? cells[h.col.get('state')!] : undefined;
    const rxDupe = h.col.has('rx_dupe') ? count(cells, h.col.get('rx_dupe')) : undefined;
    const retx = h.col.has('re-tx') ? count(cells, h.col.get('re-tx')) : undefined;
    return {
      kind: 'socket',
      proto: sock[1] as 'tcp' | 'udp',
      family,
      local,
      remote,
      ...(iface ? { interface: iface } : {}),
      ...(state ? { state } : {}),
      bytesIn,
      bytesOut,
      ...(rxDupe !== undefined ? { rxDupe } : {}),
      ...(retx !== undefined ? { retransmitted: retx } : {}),
    };
  }
  const proc = PROCESS_RE.exec(subject);
  if (!proc || !proc[1]) return undefined;
  return { kind: 'process', name: proc[1], pid: Number(proc[2]), bytesIn, bytesOut };
}

/**
 * Incremental parse of nettop's CSV stream: `push` text as it arrives, and each sample is
 * handed on when the next header begins (so the last sample of a stream is complete only at
 * `end`). Lines nettop should not print (a row before any header, an unparsable row) are
 * counted in `skipped`, never guessed at.
 */
export class NettopStreamParser {
  private buf = '';
  private header: Header | undefined;
  private cur: NettopSample | undefined;
  private pid: number | undefined;
  skipped = 0;

  constructor(private readonly onSample: (s: NettopSample) => void) {}

  push(text: string): void {
    this.buf += text;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      this.line(line);
    }
  }

  /** the stream ended: what is buffered is the last sample */
  end(): void {
    if (this.buf) this.line(this.buf.replace(/\r$/, ''));
    this.buf = '';
    this.flush();
  }

  private flush(): void {
    if (this.cur) this.onSample(this.cur);
    this.cur = undefined;
    this.pid = undefined;
  }

  private line(line: string): void {
    if (!line.trim()) return;
    const h = parseHeader(line);
    if (h) {
      this.flush();
      this.header = h;
      this.cur = { rows: [] };
      return;
    }
    if (!this.header || !this.cur) {
      this.skipped++;
      return;
    }
    const cells = line.split(',');
    const row = parseRow(cells, this.header);
    if (!row) {
      this.skipped++;
      return;
    }
    if (this.cur.time === undefined && this.header.time !== undefined) {
      const t = cells[this.header.time];
      if (t) this.cur.time = t;
    }
    if (row.kind === 'process') this.pid = row.pid;
    else if (this.pid !== undefined) row.pid = this.pid;
    this.cur.rows.push(row);
  }
}

/** every complete sample of a finished output, in order */
export function parseNettop(text: string): { samples: NettopSample[]; skipped: number } {
  const samples: NettopSample[] = [];
  const p = new NettopStreamParser((s) => samples.push(s));
  p.push(text);
  p.end();
  return { samples, skipped: p.skipped };
}

/**
 * The payload the application exchanged on a socket: TCP's duplicates and retransmissions
 * taken out (see the header); UDP as counted.
 */
export function payloadOf(r: NettopSocketRow): { sent: number; received: number } {
  return {
    sent: Math.max(0, r.bytesOut - (r.retransmitted ?? 0)),
    received: Math.max(0, r.bytesIn - (r.rxDupe ?? 0)),
  };
}

/** `nettop` arguments for a stream of samples: CSV every second, numbers raw, no name lookups */
export const NETTOP_STREAM_ARGS = ['-L', '0', '-s', '1', '-n', '-x'];
