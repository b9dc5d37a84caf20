/**
 * The log of the long-running processes (the daemon, a detached `awg engine`, the `awg
 * placer` child): pino, one JSON object per line, synchronous (nothing is lost when the
 * process dies right after). journald-friendly: under systemd (`JOURNAL_STREAM` set) each
 * line starts with its syslog priority (`<3>` … `<7>`), which journald strips and keeps as
 * the entry's PRIORITY, so `journalctl -p warning -u awg` works on the JSON lines.
 *
 * Secrets never reach a log: the code logs fingerprints only, and the paths below are
 * redacted as a second line of defence.
 *
 * Loaded only by those processes (`awg validate`/`diff` never import it).
 */
import pino from 'pino';
import type { Reporter, ReportEvent } from './reporter.js';

export type Logger = pino.Logger;
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

const LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** pino level number → syslog priority (sd-daemon(3) prefixes) */
export function syslogPriority(level: number): number {
  if (level >= 60) return 2;
  if (level >= 50) return 3;
  if (level >= 40) return 4;
  if (level >= 30) return 6;
  return 7;
}

const LEVEL_RE = /^\{"level":(\d+)/;

/** a line as journald wants it: `<priority>` + the JSON line */
export function journaldLine(line: string): string {
  const m = LEVEL_RE.exec(line);
  return `<${syslogPriority(m ? Number(m[1]) : 30)}>${line}`;
}

export interface LoggerOptions {
  /** `component` field of every line (daemon, engine, placer) */
  component: string;
  /** default `info`, or $AWG_LOG_LEVEL */
  level?: LogLevel;
  /** 1 (stdout) or 2 (stderr, the default); or any sink taking whole lines (tests) */
  to?: 1 | 2 | { write(line: string): void };
  /** fields on every line (e.g. the tunnel of an engine) */
  base?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}

export function levelFrom(env: NodeJS.ProcessEnv, fallback: LogLevel = 'info'): LogLevel {
  const v = env.AWG_LOG_LEVEL?.toLowerCase();
  return v && (LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : fallback;
}

export function createLogger(o: LoggerOptions): Logger {
  const env = o.env ?? process.env;
  const to = o.to ?? 2;
  const journald = typeof to === 'number' && Boolean(env.JOURNAL_STREAM);
  const sink = typeof to === 'number' ? pino.destination({ dest: to, sync: true }) : to;
  const stream = { write: (line: string) => void sink.write(journald ? journaldLine(line) : line) };
  return pino(
    {
      level: o.level ?? levelFrom(env),
      base: { component: o.component, pid: process.pid, ...o.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['privateKey', 'presharedKey', 'password', 'headerProtectionKey', '*.privateKey', '*.presharedKey', '*.password', '*.headerProtectionKey'], censor: '[secret]' },
    },
    stream,
  );
}

/** The reconcile machine's reports (mutations `[#] …`, phases, warnings) as log lines. */
export class LogReporter implements Reporter {
  constructor(private readonly log: Logger) {}
  report(e: ReportEvent): void {
    switch (e.type) {
      case 'mutation':
        this.log.info({ mutation: e.command }, `[#] ${e.command}`);
        return;
      case 'warning':
        this.log.warn(e.message);
        return;
      case 'phase':
        this.log.debug({ phase: e.phase }, e.detail ? `${e.phase}: ${e.detail}` : e.phase);
        return;
      case 'info':
        this.log.info(e.message);
        return;
    }
  }
}
