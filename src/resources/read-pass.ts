/**
 * One read of each observation command per reconcile pass: an Exec that, while a pass is
 * open (`pass`), answers a listed read-only command (reads.ts: `nft -t list ruleset`, and
 * `tc -j qdisc show` and `ip -j -d link|addr show` where those still run as processes) with
 * the result of its first run in the pass, so that the drivers that read the same listing
 * (the shaper and the link driver both list links; the firewall reads the ruleset to observe
 * and again before its load) and the passes of one reconcile (observe, apply, verify) share
 * it. Owned by the reconciler (reconciler/run.ts `reconcile` opens the pass for one run):
 * outside a pass every read runs, so a long-lived environment (the daemon's) never answers
 * from an old listing.
 *
 * A verification retry and a rollback look again (`renew`: reconciler/run.ts), whatever the
 * mutations. A mutation ends what was read: one by `nft` (or a record that says it touched nf_tables
 * only) forgets the `nft` listings; any other mutation or record forgets every listing (an
 * `ip link del` takes the link's qdiscs with it, a `tc` change shows in `ip -d link`). A read
 * with input, an environment or a failure allowed is not shared unless it is listed, and a
 * failed run is never kept.
 */
import type { Exec, ExecOptions, ExecResult, RecordOptions } from '../util/exec.js';
import type { Read } from './reads.js';
import { runsOnHost } from './prefetch.js';

const key = (cmd: string, args: readonly string[]) => [cmd, ...args].join('\0');

export class ReadPassExec implements Exec {
  private readonly listed: Set<string>;
  private readonly cache = new Map<string, { cmd: string; result: Promise<ExecResult> }>();
  private depth = 0;

  constructor(
    private readonly inner: Exec,
    reads: readonly Read[],
  ) {
    this.listed = new Set(reads.map(([cmd, args]) => key(cmd, args)));
  }

  /** run `f` with listed reads shared; passes nest (the outermost one ends the sharing) */
  async pass<T>(f: () => Promise<T>): Promise<T> {
    this.depth++;
    try {
      return await f();
    } finally {
      if (--this.depth === 0) this.cache.clear();
    }
  }

  /** forget every listing (the pass stays open): a look again that no mutation prompted */
  renew(): void {
    this.cache.clear();
  }

  /** whether a pass is open */
  get open(): boolean {
    return this.depth > 0;
  }

  read(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const k = key(cmd, args);
    if (this.depth === 0 || opts.input !== undefined || opts.env || !this.listed.has(k))
      return this.inner.read(cmd, args, opts);
    const had = this.cache.get(k);
    if (had)
      return had.result.then((r) =>
        r.code === 0 || opts.allowFail ? r : this.inner.read(cmd, args, opts),
      );
    // the first run allows failure so that every caller sees the same outcome; one that does
    // not allow it gets the inner Exec's own error from a run of its own
    const result = this.inner.read(cmd, args, { ...opts, allowFail: true });
    const entry = { cmd, result };
    this.cache.set(k, entry);
    result.then(
      (r) => {
        if (r.code !== 0 && this.cache.get(k) === entry) this.cache.delete(k);
      },
      () => {
        if (this.cache.get(k) === entry) this.cache.delete(k);
      },
    );
    return result.then((r) =>
      r.code === 0 || opts.allowFail ? r : this.inner.read(cmd, args, opts),
    );
  }

  private forget(cmd: string | undefined): void {
    if (cmd === undefined) this.cache.clear();
    else for (const [k, e] of this.cache) if (e.cmd === cmd) this.cache.delete(k);
  }

  async mutate(cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult> {
    const only = cmd === 'nft' ? 'nft' : undefined;
    this.forget(only);
    try {
      return await this.inner.mutate(cmd, args, opts);
    } finally {
      // a read started while the mutation ran may hold the state before it
      this.forget(only);
    }
  }

  record(display: string, opts?: RecordOptions): boolean {
    const done = this.inner.record(display, opts);
    if (opts?.touches !== 'files') this.forget(opts?.touches === 'nft' ? 'nft' : undefined);
    return done;
  }

  get mutations(): number {
    return this.inner.mutations;
  }

  get dryRun(): boolean {
    return this.inner.dryRun;
  }

  /** its commands run on this host when the inner Exec's do (prefetch.ts runsOnHost) */
  get onHost(): boolean {
    return runsOnHost(this.inner);
  }
}
