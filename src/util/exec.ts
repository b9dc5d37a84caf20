/**
 * The one place that spawns processes. Mutations are reported as `[#] cmd args` (wg-quick's
 * habit), counted, and skipped under dry-run; reads always run. No shell is involved:
 * arguments are passed as an array.
 */
import { spawn } from 'node:child_process';
import { AwgError } from '../errors.js';
import type { Reporter } from './reporter.js';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  input?: string;
  /** do not throw on a non-zero exit; return the result */
  allowFail?: boolean;
  /** text shown instead of the argv in the mutation log (e.g. for `nft -f -`) */
  display?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export interface Exec {
  /** a command that only reads state; runs under dry-run too */
  read(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** a command that changes the system; logged, counted, skipped under dry-run */
  mutate(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** report a mutation performed without a process (netlink, file write, ioctl) */
  record(display: string): boolean;
  readonly mutations: number;
  readonly dryRun: boolean;
}

export function quoteArg(a: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

export function runProcess(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      const kind = e.code === 'ENOENT' ? 'unsupported' : 'driver';
      reject(new AwgError(kind, `cannot run ${cmd}: ${e.message}`, { cause: e, hint: e.code === 'ENOENT' ? `install the package that provides "${cmd}"` : undefined }));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code: code ?? (signal ? 128 : 1) });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

function failure(cmd: string, args: string[], r: ExecResult): AwgError {
  const msg = (r.stderr || r.stdout).trim().split('\n').slice(0, 6).join('\n');
  const perm = /Operation not permitted|Permission denied|EPERM|EACCES/.test(msg);
  return new AwgError(perm ? 'permission' : 'driver', `${cmd} ${args.map(quoteArg).join(' ')} failed (exit ${r.code}): ${msg}`);
}

export class ProcessExec implements Exec {
  private count = 0;
  constructor(
    private readonly reporter: Reporter,
    readonly dryRun = false,
  ) {}
  get mutations(): number {
    return this.count;
  }
  async read(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await runProcess(cmd, args, opts);
    if (r.code !== 0 && !opts.allowFail) throw failure(cmd, args, r);
    return r;
  }
  async mutate(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    this.record(opts.display ?? [cmd, ...args].map(quoteArg).join(' '));
    if (this.dryRun) return { stdout: '', stderr: '', code: 0 };
    const r = await runProcess(cmd, args, opts);
    if (r.code !== 0 && !opts.allowFail) throw failure(cmd, args, r);
    return r;
  }
  record(display: string): boolean {
    this.count++;
    this.reporter.report({ type: 'mutation', command: display });
    return !this.dryRun;
  }
}
