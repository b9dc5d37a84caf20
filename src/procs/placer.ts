/**
 * ProcessPlacer: puts processes into their rule's cgroup (`<cgroupRoot>/<ruleName>`) so the
 * firewall's `socket cgroupv2` match routes them (docs/platform-linux.md#cgroup-placement).
 *
 * Contract:
 * - EXEC event of a process whose executable matches an enabled rule → one write of its tgid
 *   to that rule's `cgroup.procs` (fd kept open per cgroup, one pid per write:
 *   docs/platform-linux.md#cgroup-placement). Only the current rules' cgroups keep theirs: each
 *   rescan closes the others (a removed rule's, the root's and the origins' a rescan wrote
 *   to), so no descriptor is held on a cgroup that no rule uses.
 *   Children forked afterwards inherit the cgroup. A socket's cgroup is fixed when it is
 *   created (docs/platform-linux.md#socket-cgroupv2), so what the process opens between exec
 *   and the write keeps the old route:
 *   that window is measured (`onPlaced`, bench/placement.bench.ts); `awg exec` has none.
 * - A matching process is left where it is when it already sits in that cgroup or below it
 *   (a runtime limit's `_limit-<pid>`: procs/cgroups.ts) (no write), or in an `awg exec`
 *   cgroup (explicit placement wins). This costs one read of
 *   /proc/PID/cgroup per matching exec (scan.ts; `checkCurrent: false` skips it).
 * - An exec that matches no rule changes nothing: children of placed processes that exec
 *   other programs stay (inheritance).
 * - Our own process and its descendants (engines, nft, ip…) are never moved: tracked from
 *   the initial scan and FORK events (a FORK whose parent is outside the tree drops the child
 *   pid from it, which handles pid reuse).
 * - `rescan()` (start, rule change, lost events) re-places running processes:
 *   own exe matches rule R → moved to R unless already there (or below it) or in an exec cgroup;
 *   no match, in the cgroup of a rule that no longer exists, or of a rule that its own exe
 *   matched before (placed for itself, not inherited) → back to the cgroup it came from when
 *   the placer moved it during a scan, else to `<cgroupRoot>` (unmarked: default route).
 * - Failures are counted, never thrown: vanished (exited before its exe could be read),
 *   ESRCH (matched, exited before the write), a missing cgroup
 *   (not created yet: retried on the next event), other errnos; the last missing cgroup and
 *   the last failed write are kept (`failures`) for the child's error reports
 *   (placement-errors.ts).
 */
import { join } from 'node:path';
import { sameSet } from '../util/canonical.js';
import { E, O_CLOEXEC, O_WRONLY, close, errnoName, open, write } from '../native/libc.js';
import {
  defaultRoute,
  effectiveRoute,
  ruleName,
  type ExecChoice,
  type RuleMatch,
  type RuleMatcher,
  type Subject,
  type TunnelUp,
} from '../model/match.js';
import type { CgroupMount } from '../resources/cgroup/parse.js';
import type { PlacerFailures } from './placement-errors.js';
import type { ProcConnector, ProcEvent } from './connector.js';
import {
  classifyCgroup,
  relativeCgroup,
  splitLimit,
  withinCgroup,
  type CgroupClass,
} from './cgroups.js';
import { descendants, linuxProcFs, scanProcesses, type ProcEntry, type ProcFs } from './scan.js';

/** Writes pids into `cgroup.procs` files; a fake in unit tests. */
/** A process as `awg processes` shows it (the daemon's ListProcesses, or direct mode). */
export interface ProcessInfo {
  pid: number;
  name: string;
  path: string;
  rule?: string;
  target?: string;
  /** effective route now: a tunnel name, `direct` or `blocked` */
  route: string;
  ppid?: number;
  cgroup?: string;
  /** the rule the executable matches now, when it differs from where the process sits */
  pending?: string;
  /** the runtime limit it is under (`awg limit`: its own or an ancestor's it inherited) */
  limit?: { pid: number; upload?: number; download?: number };
  /** its Flatpak application id (listed where flatpak rules exist) */
  flatpak?: string;
}

export interface CgroupWriter {
  /** open `<mount>/<path>/cgroup.procs` for writing: a handle ≥ 0, or -errno */
  open(path: string): number;
  /** write one pid: 0, or -errno (ESRCH: the process is gone) */
  write(handle: number, pid: number): number;
  close(handle: number): void;
}

export function linuxCgroupWriter(mountPoint: string): CgroupWriter {
  return {
    open: (path) => open(join(mountPoint, path, 'cgroup.procs'), O_WRONLY | O_CLOEXEC),
    write(handle, pid) {
      const r = write(handle, Buffer.from(String(pid)));
      return r < 0 ? r : 0;
    },
    close: (h) => void close(h),
  };
}

export interface PlacerStats {
  /** EXEC events seen (own tree excluded) */
  execs: number;
  /** writes that moved a process */
  placed: number;
  /** EXEC events whose executable matched no rule */
  misses: number;
  /** matching processes left alone: already in place, or in an `awg exec` cgroup */
  kept: number;
  /** events of our own process tree, ignored */
  ownTree: number;
  /** exited before its executable could be read (whether a rule matched is unknown) */
  vanished: number;
  /** matched a rule, then exited before it could be moved */
  esrch: number;
  /** the rule's cgroup does not exist (yet) */
  missingCgroup: number;
  /** other write/open errors */
  errors: number;
  rescans: number;
  /** EXEC events of processes the exec gate had already placed while their exec was held */
  gated: number;
}

export interface Placement {
  pid: number;
  rule: RuleMatch | undefined;
  cgroup: string;
  /** CLOCK_MONOTONIC ns of the EXEC (connector timestamp); undefined for scans */
  execTs?: bigint | undefined;
  /** CLOCK_MONOTONIC ns when the write returned */
  placedTs: bigint;
}

export interface PlacerOptions {
  matcher: RuleMatcher;
  /** awg's subtree below the v2 mount (claims.cgroupRoot) */
  cgroupRoot: string;
  /** the v2 mount (mountPoint for the default writer, root to read /proc/PID/cgroup) */
  mount: Pick<CgroupMount, 'mountPoint' | 'root'>;
  /** cgroup path (relative to the mount) of a rule; default `<cgroupRoot>/<rule name>` */
  ruleCgroup?: (ruleIndex: number, rule: RuleMatch) => string;
  writer?: CgroupWriter;
  procfs?: ProcFs;
  /** root of the process tree never moved (default: this process) */
  selfPid?: number;
  /** read /proc/PID/cgroup before moving a matching process (default true) */
  checkCurrent?: boolean;
  onPlaced?: (p: Placement) => void;
  now?: () => bigint;
  /** tunnels not up now: a `fallback: failover` rule targeting one passes its processes on */
  down?: ReadonlySet<string>;
  /** rules held on their fallback (`sticky`, by name): their tunnel counts as down for them */
  held?: ReadonlySet<string>;
}

export interface ListOptions {
  /** whether a tunnel is up now (for a rule, by name: held rules see it down) */
  tunnelUp: TunnelUp;
  /** config.default: `direct` or a tunnel */
  defaultRoute?: string;
  /** include processes no rule matches and that are not in our subtree (default false) */
  all?: boolean;
  /**
   * macOS: the `awg exec` choice that routes `pid` (its own registration or its nearest
   * registered ancestor's, walked through `parentOf`), if any. Linux reads its exec cgroups instead.
   */
  execOf?(pid: number, parentOf: (pid: number) => number | undefined): ExecChoice | undefined;
}

export interface ListedProcess extends ProcessInfo {
  ppid: number;
  /** cgroup v2 path from /proc/PID/cgroup */
  cgroup: string;
  /** the rule the executable matches now, when it differs from where the process sits */
  pending?: string;
}

export class ProcessPlacer {
  readonly stats: PlacerStats = {
    execs: 0,
    placed: 0,
    misses: 0,
    kept: 0,
    ownTree: 0,
    vanished: 0,
    esrch: 0,
    missingCgroup: 0,
    errors: 0,
    rescans: 0,
    gated: 0,
  };
  /** the last missing cgroup and the last failed write (placement-errors.ts) */
  readonly failures: PlacerFailures = {};
  private matcher: RuleMatcher;
  private readonly fds = new Map<string, number>();
  private readonly tree: Set<number>;
  /** cgroup a scan moved a process out of (to move it back when it stops matching) */
  private readonly origin = new Map<number, string>();
  private readonly writer: CgroupWriter;
  private readonly procfs: ProcFs;
  private readonly now: () => bigint;
  private readonly selfPid: number;
  private closed = false;
  private down: ReadonlySet<string>;
  private held: ReadonlySet<string>;
  /** pids the exec gate placed (or kept) whose EXEC event has not arrived yet */
  private readonly gatedPending = new Set<number>();
  /** the file a gated exec was matched by (a script's own path), for rescans: /proc/PID/exe shows the interpreter */
  private readonly subjects = new Map<number, string>();

  constructor(private readonly opts: PlacerOptions) {
    this.matcher = opts.matcher;
    this.writer = opts.writer ?? linuxCgroupWriter(opts.mount.mountPoint);
    this.procfs = opts.procfs ?? linuxProcFs();
    this.now = opts.now ?? (() => process.hrtime.bigint());
    this.selfPid = opts.selfPid ?? process.pid;
    this.tree = new Set([this.selfPid]);
    this.down = opts.down ?? new Set();
    this.held = opts.held ?? new Set();
  }

  /** a `failover` rule passes its processes on: its tunnel is down, or it is held on its fallback */
  private failsOver(r: RuleMatch): boolean {
    return r.fallback === 'failover' && (this.down.has(r.target) || this.held.has(r.name));
  }

  /**
   * The rule whose cgroup a process with this executable belongs in: its first enabled match,
   * except that a `failover` rule whose tunnel is down passes it on to the next match (none
   * left: it stays with the first, whose cgroup the firewall then drops).
   */
  placeFor(subject: string | Subject): RuleMatch | undefined {
    const first = this.matcher.match(subject);
    // user/unit/cgroup rules are matched by the firewall where the process is: never moved
    // (above all not out of a systemd unit), not even on to a later rule by failover
    if (first?.placedBy === 'nft') return undefined;
    if (!first || !this.failsOver(first)) return first;
    const chain = this.matcher.failoverChain(subject);
    for (const r of chain) {
      if (r.placedBy === 'nft') return undefined;
      if (!this.failsOver(r)) return r;
    }
    return first;
  }

  /**
   * What the rules need to know of a process besides its executable (read only when a rule
   * of that kind exists): uid, cgroup, Flatpak id.
   */
  subjectOf(pid: number, exe: string, cgroup?: string): Subject {
    const needs = this.matcher.needs;
    if (!needs.uid && !needs.cgroup && !needs.flatpak) return { exe };
    const s: Subject = { exe };
    if (needs.uid) s.uid = this.procfs.uid?.(pid);
    if (needs.cgroup) s.cgroup = cgroup ?? this.procfs.cgroup(pid);
    if (needs.flatpak) s.flatpak = this.procfs.flatpak?.(pid);
    return s;
  }

  /** New health view: re-place running processes when it changes who fails over. */
  setDown(down: ReadonlySet<string>, held: ReadonlySet<string> = new Set()): void {
    const same = sameSet(down, this.down) && sameSet(held, this.held);
    this.down = new Set(down);
    this.held = new Set(held);
    if (!same) this.rescan();
  }

  get rules(): RuleMatcher {
    return this.matcher;
  }

  ruleCgroup(m: RuleMatch): string {
    return this.opts.ruleCgroup?.(m.index, m) ?? `${this.opts.cgroupRoot}/${m.name}`;
  }

  /** Subscribe to a connector: events place processes, an overrun triggers a rescan. */
  attach(conn: ProcConnector, onError?: (e: Error) => void): void {
    conn.listen((evs) => this.handleEvents(evs), { onOverrun: () => this.rescan(), onError });
  }

  handleEvents(events: readonly ProcEvent[]): void {
    for (const ev of events) {
      if (ev.type === 'fork') {
        // threads also emit FORK (child pid ≠ tgid, parent = the process's parent): skip
        if (ev.childPid !== ev.childTgid) continue;
        if (this.tree.has(ev.parentTgid)) this.tree.add(ev.childTgid);
        else this.tree.delete(ev.childTgid);
      } else if (ev.type === 'exec') {
        this.onExec(ev.tgid, ev.ts);
      }
    }
  }

  /** Place one freshly exec'd process (the hot path). */
  onExec(pid: number, execTs?: bigint): void {
    if (this.closed) return;
    if (this.tree.has(pid)) {
      this.stats.ownTree++;
      return;
    }
    this.stats.execs++;
    if (this.gatedPending.delete(pid)) {
      this.stats.gated++;
      return;
    }
    this.subjects.delete(pid);
    const exe = this.procfs.exe(pid);
    if (exe === undefined) {
      this.stats.vanished++;
      return;
    }
    const m = this.placeFor(this.subjectOf(pid, exe));
    if (!m) {
      this.stats.misses++;
      return;
    }
    const r = this.placeMatched(pid, m, execTs);
    if (r === 'kept') this.stats.kept++;
  }

  /**
   * The exec gate's decision for a process whose exec is held (procs/gate.ts): `file` is the
   * file the exec opened (the program, a script, or a script's interpreter). A match is
   * placed now, before the program runs; the EXEC event that follows is then only counted.
   * `deny`: the write failed (the rule's cgroup is missing, …) and the rule's fallback is
   * `block` or `drop`: the exec is refused rather than run outside its rule.
   */
  placeGated(
    pid: number,
    file: string,
    named: boolean,
  ): 'placed' | 'kept' | 'miss' | 'own' | 'failed' | 'deny' {
    if (this.closed) return 'miss';
    // a Flatpak sandbox has pivoted before it execs the app: its /.flatpak-info is readable now
    const m = this.placeFor(this.subjectOf(pid, file));
    if (!m) return 'miss';
    // our own tree (the daemon's nft, ip…); a child whose FORK event is still queued is seen by its parent
    const ppid = this.tree.has(pid) ? pid : this.procfs.ppid(pid);
    if (ppid !== undefined && this.tree.has(ppid)) {
      this.tree.add(pid);
      return 'own';
    }
    const r = this.placeMatched(pid, m);
    if (r === 'placed' || r === 'kept') {
      this.gatedPending.add(pid);
      if (named) this.subjects.set(pid, file);
    }
    // a program whose rule blocks when it cannot be routed must not run unplaced (fail closed)
    if (r === 'failed' && (m.fallback === 'block' || m.fallback === 'drop')) return 'deny';
    return r;
  }

  /** write a matching process into its rule's cgroup unless it is there or in an exec cgroup */
  private placeMatched(pid: number, m: RuleMatch, execTs?: bigint): 'placed' | 'kept' | 'failed' {
    const target = this.ruleCgroup(m);
    if (this.opts.checkCurrent !== false) {
      const cur = this.procfs.cgroup(pid);
      if (cur === undefined) {
        this.stats.esrch++;
        return 'failed';
      }
      const rel = relativeCgroup(cur, this.opts.mount.root);
      if (withinCgroup(rel, target) || classifyCgroup(this.opts.cgroupRoot, rel).kind === 'exec')
        return 'kept';
    }
    if (!this.move(pid, target)) return 'failed';
    this.opts.onPlaced?.({ pid, rule: m, cgroup: target, execTs, placedTs: this.now() });
    return 'placed';
  }

  /** Replace the rules and re-place running processes. */
  setRules(matcher: RuleMatcher): void {
    const old = this.matcher;
    this.matcher = matcher;
    this.rescan(old);
  }

  /** Re-place every running process (see the contract at the top). */
  rescan(previous: RuleMatcher = this.matcher): void {
    if (this.closed) return;
    this.stats.rescans++;
    const procs = scanProcesses(this.procfs);
    const own = descendants(procs, this.selfPid);
    this.tree.clear();
    for (const p of own) this.tree.add(p);
    const live = new Set(procs.map((p) => p.pid));
    for (const pid of this.origin.keys()) if (!live.has(pid)) this.origin.delete(pid);
    for (const pid of this.subjects.keys()) if (!live.has(pid)) this.subjects.delete(pid);
    for (const pid of this.gatedPending) if (!live.has(pid)) this.gatedPending.delete(pid);
    for (const p of procs) {
      if (own.has(p.pid)) continue;
      const target = this.desiredOnRescan(p, previous);
      if (target === undefined) continue;
      const cur = relativeCgroup(p.cgroup, this.opts.mount.root);
      const inOurs = classifyCgroup(this.opts.cgroupRoot, cur).kind !== 'outside';
      if (!inOurs && cur !== undefined && !this.origin.has(p.pid)) this.origin.set(p.pid, cur);
      if (this.move(p.pid, target.path) && target.rule)
        this.opts.onPlaced?.({
          pid: p.pid,
          rule: target.rule,
          cgroup: target.path,
          placedTs: this.now(),
        });
      if (!target.rule) this.origin.delete(p.pid);
    }
    this.closeUnused();
  }

  /**
   * Close the cgroup.procs descriptors of cgroups no rule places into now: a removed rule's
   * would stay open for good (one per rule name the config ever had, each keeping its removed
   * cgroup's file), and the root's and the origins' serve rescans alone.
   */
  private closeUnused(): void {
    const keep = new Set<string>();
    this.matcher.rules.forEach((r, i) => {
      const m = this.matcher.byName(ruleName(r, i));
      if (m) keep.add(this.ruleCgroup(m));
    });
    for (const [path, fd] of this.fds) {
      if (keep.has(path)) continue;
      this.writer.close(fd);
      this.fds.delete(path);
    }
  }

  private desiredOnRescan(
    p: ProcEntry,
    previous: RuleMatcher,
  ): { path: string; rule?: RuleMatch } | undefined {
    const rel = relativeCgroup(p.cgroup, this.opts.mount.root);
    const where: CgroupClass = classifyCgroup(this.opts.cgroupRoot, rel);
    if (where.kind === 'exec') return undefined;
    // a script the gate placed by its own path runs as its interpreter
    const subject = this.subjectOf(p.pid, this.subjects.get(p.pid) ?? p.exe, p.cgroup);
    const m = this.placeFor(subject);
    if (m) {
      const path = this.ruleCgroup(m);
      return withinCgroup(rel, path) ? undefined : { path, rule: m };
    }
    if (where.kind !== 'rule') return undefined;
    const stillThere = this.matcher.byName(where.name);
    // placed for itself before: by its own first match, or a failover step of its own chain
    const placedForItself = previous.failoverChain(subject).some((r) => r.name === where.name);
    if (stillThere && !placedForItself) return undefined;
    return { path: this.origin.get(p.pid) ?? this.opts.cgroupRoot };
  }

  /** one write; true when moved */
  private move(pid: number, path: string): boolean {
    for (let attempt = 0; attempt < 2; attempt++) {
      let fd = this.fds.get(path);
      if (fd === undefined) {
        const r = this.writer.open(path);
        if (r < 0) {
          if (-r === E.ENOENT) {
            this.stats.missingCgroup++;
            this.failures.missingCgroup = { cgroup: path };
          } else this.writeFailed(path, -r);
          return false;
        }
        fd = r;
        this.fds.set(path, fd);
      }
      const w = this.writer.write(fd, pid);
      if (w === 0) {
        this.stats.placed++;
        return true;
      }
      if (-w === E.ESRCH) {
        this.stats.esrch++;
        return false;
      }
      // the cgroup was removed (and maybe recreated with a new inode): reopen once
      this.writer.close(fd);
      this.fds.delete(path);
      if (-w !== E.ENODEV && -w !== E.ENOENT) {
        this.writeFailed(path, -w);
        return false;
      }
      if (attempt === 1) this.writeFailed(path, -w);
    }
    return false;
  }

  private writeFailed(cgroup: string, errno: number): void {
    this.stats.errors++;
    this.failures.writeFailed = { cgroup, errno: errnoName(errno) };
  }

  /**
   * Running processes with the rule whose cgroup they sit in (the kernel routes by that),
   * its target and the effective route now (fallback semantics, see model/match.ts).
   */
  listProcesses(o: ListOptions): ListedProcess[] {
    const out: ListedProcess[] = [];
    for (const p of scanProcesses(this.procfs)) {
      const s = this.subjectOf(p.pid, p.exe, p.cgroup);
      out.push(
        ...describeProcess(
          { ...p, ...identityOf(s) },
          this.matcher,
          this.opts.cgroupRoot,
          this.opts.mount.root,
          o,
        ),
      );
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.fds.values()) this.writer.close(fd);
    this.fds.clear();
  }
}

function identityOf(s: Subject): { uid?: number; flatpak?: string } {
  return {
    ...(s.uid !== undefined ? { uid: s.uid } : {}),
    ...(s.flatpak !== undefined ? { flatpak: s.flatpak } : {}),
  };
}

/**
 * One /proc entry → its listing (empty when filtered out). Shared with `awg processes`.
 * `uid`/`flatpak`: read by the caller where rules of those kinds exist.
 */
export function describeProcess(
  p: ProcEntry & { uid?: number; flatpak?: string },
  matcher: RuleMatcher,
  cgroupRoot: string,
  mountRoot: string,
  o: ListOptions,
): ListedProcess[] {
  const rel = relativeCgroup(p.cgroup, mountRoot);
  const where = classifyCgroup(cgroupRoot, rel);
  const subject: Subject = {
    exe: p.exe,
    cgroup: p.cgroup,
    ...(p.uid !== undefined ? { uid: p.uid } : {}),
    ...(p.flatpak !== undefined ? { flatpak: p.flatpak } : {}),
  };
  const first = matcher.match(subject);
  // a rule the firewall matches in place (user/unit/cgroup) routes the process where it is
  const now = first?.placedBy === 'nft' ? undefined : first;
  const base = {
    pid: p.pid,
    ppid: p.ppid,
    name: p.name,
    path: p.exe,
    cgroup: p.cgroup,
    ...(p.flatpak !== undefined ? { flatpak: p.flatpak } : {}),
  };
  const def = defaultRoute(o.defaultRoute ?? 'direct', o.tunnelUp);
  if (first?.placedBy === 'nft' && where.kind !== 'exec') {
    // while its tunnel is down, failover passes it only to later rules matched in place
    const chain = matcher.failoverChain(subject).filter((r) => r.placedBy === 'nft');
    return [
      {
        ...base,
        rule: first.name,
        target: first.target,
        route: effectiveRoute(chain, o.tunnelUp),
        ...(where.kind === 'rule' && where.name !== first.name ? { pending: first.name } : {}),
      },
    ];
  }
  if (where.kind === 'exec') {
    const route =
      where.target === 'direct' ? 'direct' : o.tunnelUp(where.target) ? where.target : 'blocked';
    return [{ ...base, rule: `exec:${where.target}`, target: where.target, route }];
  }
  if (where.kind === 'rule') {
    const r = matcher.byName(where.name);
    if (r) {
      // the chain a failover walks starts at the rule the process sits in
      const chain = matcher.failoverChain(subject);
      const i = chain.findIndex((c) => c.name === r.name);
      const walk = i >= 0 ? chain.slice(i) : [r];
      return [
        {
          ...base,
          rule: r.name,
          target: r.target,
          route: effectiveRoute(walk, o.tunnelUp),
          ...(now && now.name !== r.name ? { pending: now.name } : {}),
        },
      ];
    }
    // a cgroup of a rule that no longer exists is not marked by the firewall any more
    return [{ ...base, rule: where.name, route: def, ...(now ? { pending: now.name } : {}) }];
  }
  // a process limited at run time (`awg limit`) is listed like one a rule matches
  const limited = rel !== undefined && splitLimit(rel).limit !== undefined;
  if (!now && !o.all && !limited) return [];
  return [{ ...base, route: def, ...(now ? { pending: now.name } : {}) }];
}
