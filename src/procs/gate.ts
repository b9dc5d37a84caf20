/**
 * The exec gate: every exec of a file on a marked file system is held by the kernel
 * (fanotify FAN_OPEN_EXEC_PERM, native/fanotify.ts) until we answer; before answering, a
 * process a rule matches is written into its rule's cgroup, so the program's first socket is
 * already routed by its rule. Runs inside `awg placer` (placer-child.ts), next to the proc
 * connector watcher, which still places what the gate does not see.
 *
 * Contract:
 * - Every event read is answered in the same pass, whatever happens while deciding (an
 *   exception, a vanished process, an unreadable file): FAN_ALLOW, except for a program a
 *   `block`/`drop` rule matches that could not be placed (ProcessPlacer.placeGated `deny`):
 *   FAN_DENY, the exec fails with EPERM instead of running outside its rule. The gate never
 *   leaves an exec waiting on us. A decision that starts after `deadlineMs` of a pass is
 *   skipped (counted `late`): the exec goes on unplaced and the watcher places it as before.
 * - If the process holding the group dies, the kernel releases every held exec
 *   (docs/platform-linux.md#fanotify).
 * - One execve gives one event per file it opens: the file named, a script's interpreter
 *   (`#!`), and a dynamic program's ELF interpreter (exec-file.ts). The file named decides;
 *   when no rule matches a script, its interpreter does (what /proc/PID/exe shows, so the
 *   watcher and rescans agree); ELF interpreters never do (a rule `{dir: /usr/lib}` must not
 *   catch every dynamic program by its loader). Follow-ups are recognised by device and inode
 *   (the `#!` and PT_INTERP paths are often symlinks).
 * - Queue overflow (an event without a file) needs no answer: the kernel already let that
 *   exec go on; the watcher places it.
 * - `beforeEvents` runs first in each pass (the child drains the proc connector, so a FORK of
 *   the daemon's own children is known before their exec is decided).
 */
import { fstatSync, readSync, statSync } from 'node:fs';
import { toAwgError } from '../errors.js';
import { FanotifyGroup, type FanotifyEvent } from '../native/fanotify.js';
import { HEAD_BYTES, followUpOf } from './exec-file.js';

/** what the gate needs of a fanotify group (a fake in unit tests) */
export interface GateGroup {
  readonly fd: number;
  readEvents(): FanotifyEvent[];
  allow(ev: FanotifyEvent): void;
  /** refuse the exec (it fails with EPERM) */
  deny(ev: FanotifyEvent): void;
  close(): void;
}

export type GateDecision = 'placed' | 'kept' | 'miss' | 'own' | 'failed' | 'deny';

/** reads of the file behind an event (real files in production; fakes in unit tests) */
export interface GateFiles {
  /** the path of the event's file (readlink /proc/self/fd/N) */
  pathOf(ev: FanotifyEvent): string | undefined;
  /** the first bytes of the file, read through the event's fd (valid until the next call) */
  head(fd: number): Buffer;
  /** device:inode of the event's file */
  idOfFd(fd: number): string | undefined;
  /** device:inode of a path (symlinks followed) */
  idOfPath(path: string): string | undefined;
}

export interface GateStats {
  /** events answered */
  events: number;
  /** execs decided by the file they named (the rest are interpreters) */
  execs: number;
  /** processes written into a rule's cgroup while held */
  placed: number;
  /** decisions skipped past the deadline */
  late: number;
  /** events whose decision failed (answered anyway) */
  errors: number;
  /** execs refused: matched a block/drop rule and could not be placed */
  denied: number;
  /** events lost to queue overflow (already allowed by the kernel) */
  overflows: number;
}

export interface ExecGateOptions {
  group: GateGroup;
  /** the placer's decision (ProcessPlacer.placeGated) */
  decide(pid: number, file: string, named: boolean): GateDecision;
  files?: GateFiles;
  beforeEvents?: () => void;
  deadlineMs?: number;
  now?: () => number;
  onError?: (message: string) => void;
}

interface Pending {
  /** device:inode → what it is to this exec */
  expect: Map<string, 'script' | 'elf'>;
  decided: boolean;
  at: number;
}

/** a pending exec older than this lost its follow-ups (the exec failed after we answered) */
const PENDING_TTL_MS = 5000;

const HEAD = Buffer.allocUnsafe(HEAD_BYTES);

export const realGateFiles: GateFiles = {
  pathOf: (ev) => FanotifyGroup.pathOf(ev),
  head(fd) {
    // one buffer for every event: the caller parses the head before the next one is read
    try {
      return HEAD.subarray(0, readSync(fd, HEAD, 0, HEAD_BYTES, 0));
    } catch {
      return HEAD.subarray(0, 0);
    }
  },
  idOfFd(fd) {
    try {
      const s = fstatSync(fd);
      return `${s.dev}:${s.ino}`;
    } catch {
      return undefined;
    }
  },
  idOfPath(path) {
    try {
      const s = statSync(path);
      return `${s.dev}:${s.ino}`;
    } catch {
      return undefined;
    }
  },
};

export class ExecGate {
  readonly stats: GateStats = {
    events: 0,
    execs: 0,
    placed: 0,
    late: 0,
    errors: 0,
    overflows: 0,
    denied: 0,
  };
  private readonly pending = new Map<number, Pending>();
  private readonly files: GateFiles;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly o: ExecGateOptions) {
    this.files = o.files ?? realGateFiles;
    this.now = o.now ?? (() => performance.now());
  }

  get fd(): number {
    return this.o.group.fd;
  }

  /** read and answer everything queued (the group's fd is readable) */
  pump(): void {
    if (this.closed) return;
    try {
      this.o.beforeEvents?.();
    } catch (e) {
      this.o.onError?.(`exec gate: ${toAwgError(e, 'driver').message}`);
    }
    const start = this.now();
    for (;;) {
      let evs: FanotifyEvent[];
      try {
        evs = this.o.group.readEvents();
      } catch (e) {
        this.o.onError?.(`exec gate: ${toAwgError(e, 'driver').message}`);
        return;
      }
      if (evs.length === 0) break;
      this.answer(evs, start);
    }
    this.prune();
  }

  /** decide and answer a batch (each event is allowed even when deciding throws); `start`: when the pass began */
  answer(evs: readonly FanotifyEvent[], start = this.now()): void {
    const deadline = this.o.deadlineMs ?? 100;
    for (const ev of evs) {
      if (ev.fd < 0) {
        this.stats.overflows++;
        continue;
      }
      let deny = false;
      try {
        if (this.now() - start > deadline) this.stats.late++;
        else deny = this.decideOne(ev);
      } catch {
        this.stats.errors++;
      } finally {
        try {
          if (deny) {
            this.o.group.deny(ev);
            this.stats.denied++;
          } else this.o.group.allow(ev);
          this.stats.events++;
        } catch (e) {
          this.stats.errors++;
          this.o.onError?.(`exec gate: ${toAwgError(e, 'driver').message}`);
        }
      }
    }
  }

  /** true: refuse this exec */
  private decideOne(ev: FanotifyEvent): boolean {
    const now = this.now();
    const st = this.pending.get(ev.pid);
    const id = st ? this.files.idOfFd(ev.fd) : undefined;
    const role =
      st && id !== undefined && now - st.at < PENDING_TTL_MS ? st.expect.get(id) : undefined;
    if (st && role !== undefined) {
      // a file this exec pulls in: the script's interpreter may still decide; a loader never
      st.expect.delete(id!);
      st.at = now;
      let d: GateDecision | undefined;
      if (role === 'script' && !st.decided) {
        const path = this.files.pathOf(ev);
        if (path !== undefined) d = this.record(st, this.o.decide(ev.pid, path, false));
      }
      if (d === 'deny') {
        this.pending.delete(ev.pid);
        return true;
      }
      this.expectFrom(st, ev.fd);
      if (st.expect.size === 0) this.pending.delete(ev.pid);
      return false;
    }
    this.stats.execs++;
    const path = this.files.pathOf(ev);
    const next: Pending = { expect: new Map(), decided: path === undefined, at: now };
    const d = path === undefined ? undefined : this.record(next, this.o.decide(ev.pid, path, true));
    if (d === 'deny') {
      this.pending.delete(ev.pid);
      return true;
    }
    this.expectFrom(next, ev.fd);
    if (next.expect.size > 0) this.pending.set(ev.pid, next);
    else this.pending.delete(ev.pid);
    return false;
  }

  /** count a decision; it is final for this exec unless no rule matched */
  private record(st: Pending, d: GateDecision): GateDecision {
    if (d === 'placed') this.stats.placed++;
    st.decided = d !== 'miss';
    return d;
  }

  private expectFrom(st: Pending, fd: number): void {
    const f = followUpOf(this.files.head(fd));
    if (!f) return;
    const id = this.files.idOfPath(f.interpreter);
    if (id !== undefined) st.expect.set(id, f.kind);
  }

  private prune(): void {
    if (this.pending.size === 0) return;
    const now = this.now();
    for (const [pid, st] of this.pending)
      if (now - st.at >= PENDING_TTL_MS) this.pending.delete(pid);
  }

  /** closing the group releases anything still held (there is nothing: every read event was answered) */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.clear();
    this.o.group.close();
  }
}
