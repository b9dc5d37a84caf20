/**
 * What the soak reads of the daemon (soak-support.ts): its events as the first Watch stream
 * gets them, and /proc, cgroup and nft readings.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { DaemonEvent } from '../../src/daemon/core.js';
import { isConverged } from '../../src/daemon/runs.js';

export interface Seen {
  seq: number;
  e: DaemonEvent;
}

export class Observer {
  seq = 0;
  private recent: Seen[] = [];
  private waiters: (() => void)[] = [];
  started = 0;
  finished = 0;
  byOutcome: Record<string, number> = {};
  notConverged: string[] = [];
  errors = { count: 0, first: [] as string[] };
  health = new Map<string, string>();
  /** when the last reconcile-started or -finished came */
  private lastRun = 0;
  /** seq of the last `tunnel` (health transition) event */
  private healthSeq = 0;
  /** seqs of the last two reconcile-finished events, the older first */
  private finishedSeqs: [number, number] = [0, 0];

  onEvent(e: DaemonEvent): void {
    this.seq++;
    this.recent.push({ seq: this.seq, e });
    if (this.recent.length > 4000) this.recent.splice(0, 1000);
    if (e.type === 'reconcile-started' || e.type === 'reconcile-finished')
      this.lastRun = Date.now();
    if (e.type === 'reconcile-started') this.started++;
    if (e.type === 'reconcile-finished') {
      this.finished++;
      this.finishedSeqs = [this.finishedSeqs[1], this.seq];
      this.byOutcome[e.outcome] = (this.byOutcome[e.outcome] ?? 0) + 1;
      if (!isConverged(e.outcome) && this.notConverged.length < 20)
        this.notConverged.push(
          `${e.at} ${e.reason}: ${e.outcome}${e.error ? ` (${e.error.kind}: ${e.error.message.slice(0, 300)})` : ''}`,
        );
    }
    if (e.type === 'error') {
      this.errors.count++;
      if (this.errors.first.length < 20)
        this.errors.first.push(`${e.at} ${e.kind}: ${e.message.slice(0, 300)}`);
    }
    if (e.type === 'tunnel') {
      this.health.set(e.tunnel, e.state);
      this.healthSeq = this.seq;
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** a run is under way (started, not finished) */
  get busy(): boolean {
    return this.started > this.finished;
  }

  /**
   * The tunnels' health before the stream began (it starts at the newest event: a transition
   * before it is never seen), from a status read after it opened; an event already seen wins.
   */
  seedHealth(shown: Iterable<readonly [string, string]>): void {
    for (const [tunnel, state] of shown)
      if (!this.health.has(tunnel)) this.health.set(tunnel, state);
  }

  /**
   * The last finished run built its plan from the tunnel health `shown` (a status's, by tunnel):
   * no health transition came after the run before it finished, and `shown` is the health the
   * events last said. A run reads the health when it prepares its plan (a down tunnel's rules
   * take their fallback in the firewall), which is before its reconcile-started: a transition
   * during the run, or after it while the run it wakes is still debouncing or preparing, leaves
   * a table built for the other health (the next run rebuilds it) under a status that shows
   * the new one.
   */
  plannedWith(shown: ReadonlyMap<string, string>): boolean {
    if (this.healthSeq > this.finishedSeqs[0]) return false;
    for (const [tunnel, state] of shown)
      if (state !== (this.health.get(tunnel) ?? 'connecting')) return false;
    return true;
  }

  /** resolves once no run is under way and none started or ended for `ms`; false at `deadline` */
  async quiet(ms: number, deadline: number): Promise<boolean> {
    while (Date.now() < deadline) {
      if (!this.busy && Date.now() - this.lastRun >= ms) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  /**
   * A config edit written at `wrote` (after event `from`) converged: its `config-changed`, then
   * a converged `reconcile-finished`, both by `deadline`. The finished event, or why not.
   */
  async converged(
    from: number,
    deadline: number,
  ): Promise<
    { changedAt: number; done: Extract<DaemonEvent, { type: 'reconcile-finished' }> } | string
  > {
    const cc = await this.next(from, (e) => e.type === 'config-changed', deadline);
    if (!cc || cc.e.type !== 'config-changed') return 'no config-changed';
    if (!cc.e.valid) return 'config-changed invalid';
    const done = await this.next(
      cc.seq,
      (e) => e.type === 'reconcile-finished' && isConverged(e.outcome),
      deadline,
    );
    if (!done || done.e.type !== 'reconcile-finished') return 'no converged reconcile-finished';
    return { changedAt: Date.parse(cc.e.at), done: done.e };
  }

  /** the first event after `from` that `pred` accepts, or undefined at `deadline` */
  async next(
    from: number,
    pred: (e: DaemonEvent) => boolean,
    deadline: number,
  ): Promise<Seen | undefined> {
    for (;;) {
      const hit = this.recent.find((s) => s.seq > from && pred(s.e));
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

// ---------------------------------------------------------------------------------------
// readings

/**
 * /proc/PID: RSS (kB), anonymous memory (kB: RssAnon + VmSwap, the heap and malloc's, resident
 * or swapped), open fds, utime + stime; undefined when the process is gone.
 * RSS also counts the clean pages of mapped files (the node executable's code), which a
 * settling process gives back (src/native/settle.ts) and which fault back in as it runs: it
 * moves by ~20 MB with the moment of the sample. A leak grows the anonymous part.
 */
export function procReading(
  pid: number,
): { rssKb: number; anonKb: number; fds: number; cpuTicks: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    const rssKb = kb('VmRSS');
    const anonKb = kb('RssAnon') + kb('VmSwap');
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { rssKb, anonKb, fds, cpuTicks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

export interface FdReading {
  count: number;
  /** descriptors by what they are: `socket`, `pipe`, `anon_inode:[eventfd]`, a path… */
  kinds: Record<string, number>;
}

/** the open descriptors of `pid` by kind; undefined when the process is gone */
export function fdReading(pid: number): FdReading | undefined {
  const kinds: Record<string, number> = {};
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  for (const n of names) {
    let k: string;
    try {
      k = readlinkSync(`/proc/${pid}/fd/${n}`).replace(/^(socket|pipe):\[\d+\]$/, '$1');
    } catch {
      continue;
    }
    kinds[k] = (kinds[k] ?? 0) + 1;
  }
  return { count: Object.values(kinds).reduce((a, b) => a + b, 0), kinds };
}

/** what `b` has more of than `a`, e.g. `socket +2` */
export function fdGrowth(a: FdReading, b: FdReading): string[] {
  return Object.entries(b.kinds).flatMap(([k, n]) =>
    n > (a.kinds[k] ?? 0) ? [`${k} +${n - (a.kinds[k] ?? 0)}`] : [],
  );
}

/** the children of `pid`: pid and command line */
export function childrenOf(pid: number): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      out.push({
        pid: Number(d),
        cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' '),
      });
    } catch {
      /* gone */
    }
  }
  return out;
}

export function countCgroups(dir: string): number {
  let n = 0;
  try {
    for (const d of readdirSync(dir, { withFileTypes: true }))
      if (d.isDirectory()) n += 1 + countCgroups(join(dir, d.name));
  } catch {
    return 0;
  }
  return n;
}

/** rules, sets (and maps) and their elements in table inet awg */
export function nftCounts(json: string): { rules: number; sets: number; elements: number } {
  const doc = JSON.parse(json) as {
    nftables: { rule?: unknown; set?: { elem?: unknown[] }; map?: { elem?: unknown[] } }[];
  };
  let rules = 0;
  let sets = 0;
  let elements = 0;
  for (const o of doc.nftables) {
    if (o.rule) rules++;
    const s = o.set ?? o.map;
    if (s) {
      sets++;
      elements += s.elem?.length ?? 0;
    }
  }
  return { rules, sets, elements };
}
