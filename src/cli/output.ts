/**
 * Terminal output: issues, the mutation log (`[#] cmd`), JSON. Colour only on a TTY.
 * Messages carry text from outside (config values, proxy answers, file names): every one
 * passes util/sanitize.ts before it is printed, so no escape sequence or control character
 * of theirs reaches the terminal (JSON output escapes them by itself).
 */
import { AwgError, formatIssue, type Issue } from '../errors.js';
import type { Reporter, ReportEvent } from '../util/reporter.js';
import { safeLine, safeText } from '../util/sanitize.js';

export interface Io {
  out(s: string): void;
  err(s: string): void;
  colour: boolean;
}

export function processIo(): Io {
  const colour =
    Boolean(process.stdout.isTTY) && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
  return { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), colour };
}

/**
 * A message that may span lines (a tool's stderr quoted in an error): safeText, and every
 * line after the first indented, so no text inside it can pass for a line of our own
 * (`awg: error …`, `hint: …`, `[#] …`).
 */
export function messageText(s: string): string {
  return safeText(s).replace(/\n/g, '\n  ');
}

export function printIssues(io: Io, issues: Issue[]): void {
  for (const i of issues) io.err(messageText(formatIssue(i)) + '\n');
}

export function printError(io: Io, e: AwgError): void {
  io.err(`awg: error [${e.kind}]: ${messageText(e.message)}\n`);
  if (e.issues.length) printIssues(io, e.issues);
  if (e.hint) io.err(`hint: ${messageText(e.hint)}\n`);
}

/**
 * A prepare that stopped (pipeline/prepare.ts): the located issues and that nothing was
 * applied. Returns the exit code: 1 for an invalid config, 3 (`unsupported`) when the config
 * is valid but this host cannot run it (an engine it lacks).
 */
export function notPrepared(
  io: Io,
  file: string,
  r: { issues: Issue[]; kind?: 'unsupported' },
): number {
  if (r.kind === 'unsupported') {
    const e = new AwgError(
      'unsupported',
      `${file}: this host cannot run what the configuration asks; nothing was applied`,
      { issues: r.issues },
    );
    printError(io, e);
    return e.exitCode;
  }
  printIssues(io, r.issues);
  io.err(`${file}: invalid configuration; nothing was applied\n`);
  return 1;
}

/** wg-quick style mutation log on stderr; phases only when verbose. */
export class TextReporter implements Reporter {
  constructor(
    private readonly io: Io,
    private readonly verbose = false,
  ) {}
  report(e: ReportEvent): void {
    switch (e.type) {
      case 'mutation':
        this.io.err(`[#] ${safeLine(e.command)}\n`);
        break;
      case 'warning':
        this.io.err(`warning: ${messageText(e.message)}\n`);
        break;
      case 'phase':
        if (this.verbose)
          this.io.err(`-- ${e.phase}${e.detail ? ': ' + safeLine(e.detail) : ''}\n`);
        break;
      case 'info':
        if (this.verbose) this.io.err(`${messageText(e.message)}\n`);
        break;
    }
  }
}

/** Only the warnings, on stderr (read-only commands: e.g. a state record set aside). */
export function warningReporter(io: Io): Reporter {
  return { report: (e) => void (e.type === 'warning' && io.err(`warning: ${e.message}\n`)) };
}

/** JSON lines of events on stderr (stdout carries the result document). */
export class JsonReporter implements Reporter {
  constructor(private readonly io: Io) {}
  report(e: ReportEvent): void {
    this.io.err(JSON.stringify(e) + '\n');
  }
}
