/**
 * Keeps the `w_<rule>` sets of unit/cgroup rules equal to the ids of the cgroups that exist
 * now (resources/firewall/cgroup-sets.ts has the why), while the daemon runs:
 * - `setSets` (start, config change) and `afterApply` (every firewall apply: a table replace
 *   empties the sets; the driver also refills after its own load) rewrite them;
 * - a cgroup that appears or disappears (a unit started, stopped or restarted) is seen by
 *   inotify on the directory it lives in (its parent; while that does not exist, the nearest
 *   ancestor that does), and the set is rewritten when the ids changed.
 *
 * Why inotify and not the placer's exec events: a unit's cgroup is made by systemd (mkdir)
 * before its first process is moved in and exec'd, and removed after its last process is gone;
 * neither is an exec, and the placer runs in a child process that cannot write the sets. A
 * mkdir is seen as soon as the event loop runs, usually before the unit's program has
 * started; a connection opened between the mkdir and the write goes by the next rule (the
 * same best-effort window as placement by exec events, without the exec gate).
 *
 * Writes go through one netlink socket (native/nftset.ts); its `portid` is the one the nft
 * monitor must ignore (our own changes). Failures are reported, never thrown.
 */
import { watch as fsWatch, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openSetWriter, type NftSetWriter } from '../native/nftset.js';
import { NFT_CGROUP_BASE } from '../resources/cgroup/parse.js';
import type { FirewallSpec } from '../model/resources.js';
import type { Prepared } from '../pipeline/prepare.js';
import {
  cgroupSetsOfRuleset,
  fillCgroupSets,
  statCgroupIno,
  type CgroupSetSpec,
  type StatIno,
} from '../resources/firewall/cgroup-sets.js';

export interface Watcher {
  close(): void;
}

export interface CgroupSetKeeperOptions {
  table: string;
  writer?: Pick<NftSetWriter, 'replace' | 'close'>;
  stat?: StatIno;
  /** watch one directory (absolute) for entries created and removed; default fs.watch (inotify) */
  watch?: (dir: string, onEvent: () => void) => Watcher | undefined;
  /** whether a directory exists (absolute; default existsSync) */
  exists?: (dir: string) => boolean;
  /** run `fn` soon, once per burst of events (default setImmediate) */
  defer?: (fn: () => void) => void;
  onError?: (e: Error) => void;
}

export interface CgroupSetStats {
  /** set rewrites done */
  writes: number;
  /** rewrites that failed */
  failures: number;
  /** watch events seen */
  events: number;
}

function defaultWatch(dir: string, onEvent: () => void): Watcher | undefined {
  try {
    const w = fsWatch(dir, { persistent: false }, () => onEvent());
    w.on('error', () => onEvent());
    return w;
  } catch {
    return undefined;
  }
}

export class CgroupSetKeeper {
  readonly stats: CgroupSetStats = { writes: 0, failures: 0, events: 0 };
  private sets: CgroupSetSpec[] = [];
  /** ids last written per set (decimal strings joined), to skip rewrites that change nothing */
  private readonly written = new Map<string, string>();
  private readonly watchers = new Map<string, Watcher>();
  private writer: Pick<NftSetWriter, 'replace' | 'close'> | undefined;
  private pending = false;
  private closed = false;
  private readonly stat: StatIno;
  private readonly exists: (dir: string) => boolean;
  private readonly defer: (fn: () => void) => void;

  constructor(private readonly opts: CgroupSetKeeperOptions) {
    this.writer = opts.writer;
    this.stat = opts.stat ?? statCgroupIno;
    this.exists = opts.exists ?? existsSync;
    this.defer = opts.defer ?? ((fn) => void setImmediate(fn));
  }

  /** the sets and their cgroups (nft paths) now; rewrites them all */
  setSets(sets: readonly CgroupSetSpec[]): void {
    this.sets = sets.map((s) => ({ set: s.set, paths: [...s.paths] }));
    this.written.clear();
    this.sync(true);
  }

  /** the table was (maybe) replaced: rewrite every set */
  afterApply(): void {
    this.sync(true);
  }

  /** rewrite the sets whose cgroups changed (or all), then watch where they may change next */
  sync(force = false): void {
    if (this.closed) return;
    for (const s of this.sets) {
      const ids = [
        ...new Set(s.paths.map(this.stat).filter((i): i is bigint => i !== undefined)),
      ].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const key = ids.join(',');
      if (!force && this.written.get(s.set) === key) continue;
      try {
        this.writer ??= openSetWriter({ table: this.opts.table });
        fillCgroupSets(this.writer, [s], this.stat);
        this.written.set(s.set, key);
        this.stats.writes++;
      } catch (e) {
        this.written.delete(s.set);
        this.stats.failures++;
        this.opts.onError?.(e instanceof Error ? e : new Error(String(e)));
      }
    }
    this.rewatch();
  }

  /** the directories to watch: per cgroup its parent, or the nearest ancestor that exists */
  private watchDirs(): Set<string> {
    const dirs = new Set<string>();
    for (const s of this.sets)
      for (const p of s.paths) {
        let dir = dirname(join(NFT_CGROUP_BASE, p));
        while (dir.length > NFT_CGROUP_BASE.length && !this.exists(dir)) dir = dirname(dir);
        dirs.add(dir);
      }
    return dirs;
  }

  private rewatch(): void {
    const want = this.watchDirs();
    for (const [dir, w] of this.watchers)
      if (!want.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    for (const dir of want) {
      if (this.watchers.has(dir)) continue;
      const w = (this.opts.watch ?? defaultWatch)(dir, () => this.onEvent());
      if (w) this.watchers.set(dir, w);
    }
  }

  private onEvent(): void {
    this.stats.events++;
    if (this.pending || this.closed) return;
    this.pending = true;
    this.defer(() => {
      this.pending = false;
      // a removed watched directory ends its watch: drop them all, sync re-arms
      for (const [dir, w] of this.watchers)
        if (!this.exists(dir)) {
          w.close();
          this.watchers.delete(dir);
        }
      this.sync();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    this.writer?.close();
    this.writer = undefined;
  }
}

/**
 * The daemon's keeper for the config it runs: unit/cgroup rules' `w_<rule>` sets follow the
 * cgroups as they come and go (a unit restart makes a new cgroup); the firewall driver filled
 * them at the apply. Made at the first good run of a config that has such rules.
 */
export class CgroupSetsHost {
  private keeper: CgroupSetKeeper | undefined;

  constructor(private readonly onError: (e: Error) => void) {}

  /** after a good run toward `p` */
  follow(p: Pick<Prepared, 'desired' | 'claims'>): void {
    const fw = p.desired.resources.find((r) => r.kind === 'firewall');
    const sets = fw ? cgroupSetsOfRuleset((fw.spec as FirewallSpec).ruleset) : [];
    if (!sets.length && !this.keeper) return;
    this.keeper ??= new CgroupSetKeeper({ table: p.claims.nftTable, onError: this.onError });
    this.keeper.setSets(sets);
  }

  close(): void {
    this.keeper?.close();
    this.keeper = undefined;
  }
}
