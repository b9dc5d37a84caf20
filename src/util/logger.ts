/** pino loggers for the daemon, engines and the placer (what they write: util/log.ts). */
import pino from 'pino';
import { journaldLine, levelFrom, type Logger, type LogLevel } from './log.js';

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
      redact: {
        paths: [
          'privateKey',
          'presharedKey',
          'password',
          'headerProtectionKey',
          '*.privateKey',
          '*.presharedKey',
          '*.password',
          '*.headerProtectionKey',
        ],
        censor: '[secret]',
      },
    },
    stream,
  );
}
