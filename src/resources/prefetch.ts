/**
 * An Exec that starts known read-only commands early and hands each result to the first
 * matching `read`. `awg diff` uses it to run the observation's `ip`/`nft` processes on the
 * other core while it loads its modules and validates the config; the observation is then
 * a snapshot taken a little earlier, which for a read-only diff changes nothing.
 *
 * A prefetched result is used once, only by a `read` with the same argv and no input; a
 * non-zero exit is not reused when the caller does not allow failure (the command runs
 * again so the error is exactly the one the inner Exec reports). Mutations and records go
 * straight to the inner Exec.
 */
import {
  ProcessExec,
  type Exec,
  type ExecOptions,
  type ExecResult,
  type RecordOptions,
} from '../util/exec.js';
import type { Read } from './reads.js';

const key = (cmd: string, args: readonly string[]) => [cmd, ...args].join('\0');

export class PrefetchExec implements Exec {
  private readonly pending = new Map<string, Promise<ExecResult>>();

  constructor(
    private readonly inner: Exec,
    reads: readonly Read[],
  ) {
    for (const [cmd, args] of reads) {
      const k = key(cmd, args);
      if (this.pending.has(k)) continue;
      const p = inner.read(cmd, [...args], { allowFail: true });
      p.catch(() => {}); // a prefetch nobody asks for must not become an unhandled rejection
      this.pending.set(k, p);
    }
  }

  async read(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const k = key(cmd, args);
    const p = opts.input === undefined && !opts.env ? this.pending.get(k) : undefined;
    if (p) {
      this.pending.delete(k);
      const r = await p;
      if (r.code === 0 || opts.allowFail) return r;
    }
    return this.inner.read(cmd, args, opts);
  }

  mutate(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.inner.mutate(cmd, args, opts);
  }

  record(display: string, opts?: RecordOptions): boolean {
    return this.inner.record(display, opts);
  }

  get mutations(): number {
    return this.inner.mutations;
  }

  get dryRun(): boolean {
    return this.inner.dryRun;
  }

  /** its commands run on this host (the inner Exec is a ProcessExec) */
  get onHost(): boolean {
    return this.inner instanceof ProcessExec;
  }
}

/**
 * Whether `exec` runs its commands on this host, so that what they read can be read in this
 * process instead (netlink reaches the same kernel, in the same network namespace).
 */
export function runsOnHost(exec: Pick<Exec, 'read'>): boolean {
  // a wrapper (PrefetchExec, read-pass.ts ReadPassExec) says it of its inner Exec
  return exec instanceof ProcessExec || (exec as { onHost?: unknown }).onHost === true;
}
