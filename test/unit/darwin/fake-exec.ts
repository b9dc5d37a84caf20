/**
 * Scripted Exec: reads and mutations are answered from a table keyed by the exact command
 * line (`cmd arg arg`), replaying captured macOS outputs; every mutation is recorded with
 * its stdin. An unscripted read throws, so a driver cannot silently depend on a command
 * the test did not expect.
 */
import { AwgError } from '../../../src/errors.js';
import type { Exec, ExecOptions, ExecResult } from '../../../src/util/exec.js';

export type Reply = Partial<ExecResult> | ((input: string | undefined) => Partial<ExecResult>);

export class ScriptedExec implements Exec {
  private readonly replies = new Map<string, Reply[]>();
  readonly calls: { kind: 'read' | 'mutate'; line: string; input?: string }[] = [];
  readonly dryRun: boolean;
  constructor(opts: { dryRun?: boolean } = {}) {
    this.dryRun = opts.dryRun ?? false;
  }
  /** Persistent reply (replaces any earlier one). */
  on(line: string, reply: Reply): this {
    this.replies.set(line, [reply]);
    return this;
  }
  /** Queue of replies consumed in order; the last one stays. */
  seq(line: string, ...replies: Reply[]): this {
    this.replies.set(line, replies);
    return this;
  }
  get mutationLines(): string[] {
    return this.calls.filter((c) => c.kind === 'mutate').map((c) => c.line);
  }
  get mutations(): number {
    return this.mutationLines.length;
  }
  private answer(line: string, input: string | undefined, mutation: boolean): ExecResult {
    const q = this.replies.get(line);
    if (!q) {
      if (mutation) return { stdout: '', stderr: '', code: 0 };
      throw new Error(`unscripted read: ${line}`);
    }
    const r = q.length > 1 ? q.shift()! : q[0]!;
    const v = typeof r === 'function' ? r(input) : r;
    return { stdout: v.stdout ?? '', stderr: v.stderr ?? '', code: v.code ?? 0 };
  }
  private run(
    kind: 'read' | 'mutate',
    cmd: string,
    args: string[],
    opts: ExecOptions = {},
  ): ExecResult {
    const line = [cmd, ...args].join(' ');
    this.calls.push(opts.input === undefined ? { kind, line } : { kind, line, input: opts.input });
    if (kind === 'mutate' && this.dryRun) return { stdout: '', stderr: '', code: 0 };
    const r = this.answer(line, opts.input, kind === 'mutate');
    if (r.code !== 0 && !opts.allowFail)
      throw new AwgError(
        'driver',
        `${line} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`,
      );
    return r;
  }
  async read(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.run('read', cmd, args, opts);
  }
  async mutate(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.run('mutate', cmd, args, opts);
  }
  record(display: string): boolean {
    this.calls.push({ kind: 'mutate', line: display });
    return !this.dryRun;
  }
}
