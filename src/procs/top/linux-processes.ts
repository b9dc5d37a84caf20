/**
 * The process table of the Linux readings behind `awg top`: each process named by a flow, as
 * read from /proc now, or as last read when it has exited.
 *
 * A flow can name a process after its exit: a connection's final counts come with the socket
 * close notification (sometimes a reading or two after the socket left the dump), and a UDP
 * flow keeps its owner for its conntrack entry's life. Between those readings another one
 * may name no flow of that process at all. So the last reading of a process is kept for
 * `keepMs` after a reading last named it, not only while every reading does; a process read
 * by none of them stays `?`.
 */
import type { ProcessInfo } from './reading.js';

/** TCP's TIME_WAIT and conntrack's UDP stream timeout: how long an exited owner may be named */
export const PROCESS_KEEP_MS = 120_000;

export class ProcessTable {
  /** pid → the process as last read, and when a reading last named it */
  private readonly seen = new Map<number, { info: ProcessInfo; at: number }>();

  constructor(
    private readonly readProcess: (pid: number) => ProcessInfo | undefined,
    private readonly keepMs = PROCESS_KEEP_MS,
  ) {}

  /**
   * The process as read now, with what an earlier reading of it knew and this one cannot: a
   * process that exited and awaits its parent (a zombie) still has its name but no exe link.
   */
  read(pid: number): ProcessInfo | undefined {
    const now = this.readProcess(pid);
    const before = this.seen.get(pid)?.info;
    return now && before && before.name === now.name ? { ...before, ...now } : now;
  }

  /**
   * The reading's table: `processes` (read during the reading) cut to the pids its flows
   * `named`; a named pid not read now is the process as last read, else `{ name: '?' }`.
   */
  finish(
    processes: Map<number, ProcessInfo>,
    named: ReadonlySet<number>,
    at: number,
  ): Map<number, ProcessInfo> {
    for (const pid of processes.keys()) if (!named.has(pid)) processes.delete(pid);
    for (const pid of named)
      if (!processes.has(pid)) processes.set(pid, this.seen.get(pid)?.info ?? { pid, name: '?' });
    for (const [pid, info] of processes) if (info.name !== '?') this.seen.set(pid, { info, at });
    for (const [pid, s] of this.seen) if (at - s.at > this.keepMs) this.seen.delete(pid);
    return processes;
  }
}
