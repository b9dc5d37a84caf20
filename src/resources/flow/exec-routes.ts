/**
 * `awg exec` on macOS: the processes the flow router routes by an explicit choice instead of
 * the rules (Linux puts them in a cgroup, procs/exec-target.ts; macOS has none). `awg exec`
 * registers ITS OWN pid through the daemon's API before it spawns the command and keeps the
 * call open while the command runs (daemon/server.ts Exec); the command's ppid is awg, so
 * its first SYN already finds the registration: no window, as on Linux.
 *
 * Per flow the router walks the owner's parent chain (`ancestor`, at most MAX_DEPTH steps,
 * nothing cached beyond the flow) and takes the first registered pid it meets. A descendant
 * that was re-parented to launchd (a daemonising grandchild, or any child once awg has gone)
 * no longer leads to awg and is judged by the rules again.
 *
 * Pid reuse: a registered pid is alive while its registration is (awg holds the call open;
 * its end, or awg's exit closing the socket, ends the registration), so it cannot name
 * another process meanwhile. Ancestors above the owner are not pinned: one that exits between
 * the owner lookup and the walk leaves its children to launchd (they then take the rules).
 *
 * What a choice means is model/match.ts execRoute's, as Linux's exec cgroups give it.
 */
import { AwgError } from '../../errors.js';
import type { ExecChoice } from '../../model/match.js';

export type { ExecChoice };

/** how far up the parent chain a flow's owner is followed */
export const MAX_DEPTH = 64;

export interface ExecRegistration {
  pid: number;
  choice: ExecChoice;
}

interface Entry extends ExecRegistration {
  onEnd(reason: string): void;
}

export function describeChoice(c: ExecChoice): string {
  return 'tunnel' in c ? `--tunnel ${c.tunnel}` : 'rule' in c ? `--rule ${c.rule}` : '--direct';
}

export class ExecRegistry {
  private readonly byPid = new Map<number, Entry>();

  get size(): number {
    return this.byPid.size;
  }

  /**
   * Route `pid` and its descendants by `choice` until the returned function is called (or
   * `endWhere`/`endAll` ends it: then `onEnd` gets the reason). One registration per pid.
   */
  add(pid: number, choice: ExecChoice, onEnd: (reason: string) => void): () => void {
    if (!Number.isInteger(pid) || pid <= 1)
      throw new AwgError('invalid-config', `awg exec: cannot register pid ${pid}`);
    if (this.byPid.has(pid))
      throw new AwgError(
        'conflict',
        `process ${pid} already has an awg exec registration (${describeChoice(this.byPid.get(pid)!.choice)})`,
      );
    const e: Entry = { pid, choice, onEnd };
    this.byPid.set(pid, e);
    return () => {
      if (this.byPid.get(pid) === e) this.byPid.delete(pid);
    };
  }

  /** The registration of `pid` or of its nearest registered ancestor; `parent` gives a ppid (undefined: gone or unknown). */
  ancestor(pid: number, parent: (pid: number) => number | undefined): ExecRegistration | undefined {
    if (this.byPid.size === 0) return undefined;
    let p: number | undefined = pid;
    for (let i = 0; i <= MAX_DEPTH && p !== undefined && p > 1; i++) {
      const e = this.byPid.get(p);
      if (e) return { pid: e.pid, choice: e.choice };
      p = parent(p);
    }
    return undefined;
  }

  /** End the registrations for which `why` gives a reason. */
  endWhere(why: (r: ExecRegistration) => string | undefined): void {
    for (const [pid, e] of [...this.byPid]) {
      const reason = why(e);
      if (reason === undefined) continue;
      this.byPid.delete(pid);
      e.onEnd(reason);
    }
  }

  endAll(reason: string): void {
    this.endWhere(() => reason);
  }

  list(): ExecRegistration[] {
    return [...this.byPid.values()].map((e) => ({ pid: e.pid, choice: e.choice }));
  }
}
