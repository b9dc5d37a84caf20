/**
 * Exec implementations for driver tests: `nsProcessExec(ns)` runs every command inside a
 * test namespace (via nsenter --net, keeping host /sys) while logging the command as the
 * driver wrote it; `RecordingExec` is a fake that serves canned read outputs.
 */
import {
  ProcessExec,
  quoteArg,
  type Exec,
  type ExecOptions,
  type ExecResult,
} from '../../src/util/exec.js';
import { MemoryReporter } from '../../src/util/reporter.js';
import { netnsPath } from './netns.js';

export class NsExec implements Exec {
  readonly reporter: MemoryReporter;
  private readonly inner: ProcessExec;
  constructor(
    readonly ns: string,
    dryRun = false,
    reporter = new MemoryReporter(),
  ) {
    this.reporter = reporter;
    this.inner = new ProcessExec(reporter, dryRun);
  }
  private wrap(cmd: string, args: string[]): [string, string[]] {
    return ['nsenter', [`--net=${netnsPath(this.ns)}`, '--', cmd, ...args]];
  }
  get mutations(): number {
    return this.inner.mutations;
  }
  get dryRun(): boolean {
    return this.inner.dryRun;
  }
  read(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    const [c, a] = this.wrap(cmd, args);
    return this.inner.read(c, a, opts);
  }
  mutate(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const [c, a] = this.wrap(cmd, args);
    return this.inner.mutate(c, a, {
      ...opts,
      display: opts.display ?? [cmd, ...args].map(quoteArg).join(' '),
    });
  }
  record(display: string): boolean {
    return this.inner.record(display);
  }
  /** mutation log lines reported so far */
  get log(): string[] {
    return this.reporter.mutations;
  }
}

export function nsProcessExec(ns: string, opts: { dryRun?: boolean } = {}): NsExec {
  return new NsExec(ns, opts.dryRun ?? false);
}

/** Fake Exec: reads answered from `reads` (key `cmd args…`), mutations only recorded. */
export class RecordingExec implements Exec {
  readonly log: string[] = [];
  private count = 0;
  constructor(
    readonly reads: Record<string, string> = {},
    readonly dryRun = false,
  ) {}
  get mutations(): number {
    return this.count;
  }
  async read(cmd: string, args: string[]): Promise<ExecResult> {
    const key = [cmd, ...args].join(' ');
    const out = this.reads[key];
    if (out === undefined) throw new Error(`RecordingExec: no canned output for "${key}"`);
    return { stdout: out, stderr: '', code: 0 };
  }
  async mutate(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.record(opts.display ?? [cmd, ...args].map(quoteArg).join(' '));
    return { stdout: '', stderr: '', code: 0 };
  }
  record(display: string): boolean {
    this.count++;
    this.log.push(display);
    return !this.dryRun;
  }
}
