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
 * This module has no runtime dependency on pino (the drivers import its helpers); the
 * logger itself is made by logger.ts, loaded only by those processes.
 */
import type pino from 'pino';
import type { Reporter, ReportEvent } from './reporter.js';
import { safeLine } from './sanitize.js';

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

export function levelFrom(env: NodeJS.ProcessEnv, fallback: LogLevel = 'info'): LogLevel {
  const v = env.AWG_LOG_LEVEL?.toLowerCase();
  return v && (LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : fallback;
}

const LEVEL_RE = /^\{"level":(\d+)/;

/** a line as journald wants it: `<priority>` + the JSON line */
export function journaldLine(line: string): string {
  const m = LEVEL_RE.exec(line);
  return `<${syslogPriority(m ? Number(m[1]) : 30)}>${line}`;
}

/** The `(level, message)` callback the data plane and the proxy runtime log through. */
export function levelLog(log: Logger): (level: 'debug' | 'info' | 'warn', message: string) => void {
  return (level, message) => log[level](message);
}

/**
 * A log line as a person reads it (`warn proxy … down`); other text as it is. The message
 * may quote outside text (a proxy's answer): it is shown through safeLine (the JSON line
 * itself escapes control characters).
 */
export function readableLine(line: string): string {
  try {
    const j = JSON.parse(line) as { level?: number; msg?: unknown };
    if (typeof j.msg !== 'string') return safeLine(line);
    const name =
      j.level === undefined
        ? 'info'
        : j.level >= 50
          ? 'error'
          : j.level >= 40
            ? 'warn'
            : j.level >= 30
              ? 'info'
              : 'debug';
    return `${name} ${safeLine(j.msg)}`;
  } catch {
    return safeLine(line);
  }
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
