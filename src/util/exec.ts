/**
 * The one place that spawns processes. Mutations are reported as `[#] cmd args` (wg-quick's
 * habit), counted, and skipped under dry-run; reads always run. No shell is involved:
 * arguments are passed as an array. Every command has a timeout (runProcess).
 */
import { spawn } from 'node:child_process';
import { AwgError } from '../errors.js';
import type { Reporter } from './reporter.js';
import { mutationPoint } from './crash-point.js';

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
  /** kill the command after this long (default DEFAULT_EXEC_TIMEOUT_MS or $AWG_EXEC_TIMEOUT_MS) */
  timeoutMs?: number;
}

/**
 * What a recorded mutation touched, for what reads it ends (resources/read-pass.ts): `nft` —
 * nf_tables only (a set's elements over netlink); `files` — files only (no kernel state an
 * observation lists). Absent: anything.
 */
export interface RecordOptions {
  touches?: 'nft' | 'files';
}

export interface Exec {
  /** a command that only reads state; runs under dry-run too */
  read(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** a command that changes the system; logged, counted, skipped under dry-run */
  mutate(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** report a mutation performed without a process (netlink, file write, ioctl) */
  record(display: string, opts?: RecordOptions): boolean;
  readonly mutations: number;
  readonly dryRun: boolean;
}

export function quoteArg(a: string): string {
  return /^[A-Za-z0-9_./:=,@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

/** how long a command may run unless the caller says otherwise ($AWG_EXEC_TIMEOUT_MS overrides every default) */
export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
/** after the timeout: SIGTERM, then SIGKILL this much later */
export const KILL_GRACE_MS = 2_000;

/** service managers wait for a unit to start or stop (systemd's default stop timeout is 90 s) */
export const SERVICE_EXEC_TIMEOUT_MS = 150_000;
const SERVICE_MANAGERS = new Set(['systemctl', 'launchctl']);

function defaultTimeout(cmd: string): number {
  const v = Number(process.env.AWG_EXEC_TIMEOUT_MS);
  if (Number.isSafeInteger(v) && v > 0) return v;
  return SERVICE_MANAGERS.has(cmd.split('/').pop()!)
    ? SERVICE_EXEC_TIMEOUT_MS
    : DEFAULT_EXEC_TIMEOUT_MS;
}

/**
 * The pids of the commands this process ran: while they run and for CHILD_MEMORY_MS after they
 * exit. The daemon's nf_tables watch tells its own `nft` changes from someone else's by them:
 * a notification's nlmsg_pid is the port of the netlink socket that made the change, which
 * `nft` (libmnl's auto-bind) gets as its own pid (checked against Linux 6.18, nftables 1.0.6).
 */
const children = new Map<number, number>();
export const CHILD_MEMORY_MS = 10_000;

function noteChild(pid: number | undefined): void {
  if (!pid) return;
  const now = Date.now();
  for (const [p, exited] of children)
    if (exited && now - exited > CHILD_MEMORY_MS) children.delete(p);
  children.set(pid, 0);
}

function childExited(pid: number | undefined): void {
  if (pid && children.has(pid)) children.set(pid, Date.now());
}

/** true when `pid` is a command this process ran that is running or exited moments ago */
export function spawnedRecently(pid: number): boolean {
  const exited = children.get(pid);
  return exited !== undefined && (exited === 0 || Date.now() - exited <= CHILD_MEMORY_MS);
}

const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);

/**
 * Run one command. Every command has a deadline (`timeoutMs`; default 30 s, 150 s for the
 * service managers, or $AWG_EXEC_TIMEOUT_MS): past it the
 * child's process group gets SIGTERM, then SIGKILL after KILL_GRACE_MS, and the promise
 * rejects with a `driver` error naming the command. The child leads its own process group
 * (`detached`), so a shell wrapper's children die with it and cannot hold its pipes open.
 */
export function runProcess(
  cmd: string,
  args: string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? defaultTimeout(cmd);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      detached: true,
    });
    noteChild(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timers: NodeJS.Timeout[] = [];
    let settled = false;
    let timedOut = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      fn();
    };
    const timeoutError = (note = '') =>
      new AwgError(
        'driver',
        `${cmd} ${args.map(quoteArg).join(' ')} timed out after ${seconds(timeoutMs)} and was killed${note}`,
        {
          hint: `a ${cmd} that hangs is not awg's to wait for; check the host (\`ps\`, the kernel log). AWG_EXEC_TIMEOUT_MS changes the limit`,
        },
      );
    const signal = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        /* the group is gone */
      }
    };
    timers.push(
      setTimeout(() => {
        timedOut = true;
        signal('SIGTERM');
        timers.push(
          setTimeout(() => {
            signal('SIGKILL');
            // a process stuck in the kernel (D state) never exits: do not wait for it
            timers.push(
              setTimeout(
                () => settle(() => reject(timeoutError(' (it has not exited yet)'))),
                KILL_GRACE_MS,
              ),
            );
          }, KILL_GRACE_MS),
        );
      }, timeoutMs),
    );
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      const kind = e.code === 'ENOENT' ? 'unsupported' : 'driver';
      settle(() =>
        reject(
          new AwgError(kind, `cannot run ${cmd}: ${e.message}`, {
            cause: e,
            hint: e.code === 'ENOENT' ? `install the package that provides "${cmd}"` : undefined,
          }),
        ),
      );
    });
    child.on('exit', () => {
      childExited(child.pid);
      if (!timedOut) return;
      // the pipes may still be held by something outside the group: stop reading them
      child.stdout.destroy();
      child.stderr.destroy();
      settle(() => reject(timeoutError()));
    });
    child.on('close', (code, signal) => {
      if (timedOut) return settle(() => reject(timeoutError()));
      settle(() =>
        resolve({
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          code: code ?? (signal ? 128 : 1),
        }),
      );
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

function failure(cmd: string, args: string[], r: ExecResult): AwgError {
  const msg = (r.stderr || r.stdout).trim().split('\n').slice(0, 6).join('\n');
  const perm = /Operation not permitted|Permission denied|EPERM|EACCES/.test(msg);
  return new AwgError(
    perm ? 'permission' : 'driver',
    `${cmd} ${args.map(quoteArg).join(' ')} failed (exit ${r.code}): ${msg}`,
  );
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
    if (!this.dryRun) mutationPoint(display.replace(/^\[(\w+)\]\s*/, '$1-').split(' ')[0]!);
    return !this.dryRun;
  }
}

/**
 * Dry run over any Exec: reads go to `inner`; mutations are ProcessExec's under dry-run
 * (reported and counted, never run). hostEnv wraps an injected Exec in one for `--dry-run`,
 * so a dry run never depends on the Exec it was given honouring the flag (ProcessExec does; a
 * test's host model does not).
 */
export class DryExec extends ProcessExec {
  constructor(
    private readonly inner: Exec,
    reporter: Reporter,
  ) {
    super(reporter, true);
  }
  override read(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.inner.read(cmd, args, opts);
  }
}
