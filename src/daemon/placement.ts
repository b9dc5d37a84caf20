/**
 * The daemon's process placement: starts the `awg placer` child (procs/placer-process.ts)
 * on the first converged run with rules, keeps its rules and the set of down tunnels in step
 * with the config and tunnel health, reports its state, and lists the processes awg routes.
 *
 * Per platform (Platform.perApp): only 'cgroup' (Linux) places processes. On macOS
 * ('flow-router') there are no cgroups: the flow router decides per TCP connection, so there
 * is nothing to place; placement stays `off` with that reason, never an error.
 */
import { crashPoint } from '../util/crash-point.js';
import { readFileSync } from 'node:fs';
import { AwgError, toAwgError } from '../errors.js';
import type { Config } from '../config/schema.js';
import { ruleName, tunnelUpOf } from '../model/match.js';
import { parseCgroup2Mount } from '../resources/cgroup/parse.js';
import {
  spawnPlacerProcess,
  type PlacerHandle,
  type PlacerProcessOptions,
} from '../procs/placer-process.js';
import type { PerApp, ProcessLister } from '../procs/list.js';
import type { PlacementStatus, ProcessInfo } from './core.js';
import type { ListOptions } from '../procs/placer.js';
import {
  placementErrorCounts,
  sumErrors,
  type PlacementErrorCounts,
} from '../procs/placement-errors.js';

/** placement's state where the platform places nothing (PlacementStatus.reason) */
export const NOTHING_TO_PLACE: Record<Exclude<PerApp, 'cgroup'>, string> = {
  'flow-router':
    'macOS has no cgroups: the flow router applies path rules per connection, no process is placed',
  none: 'this OS has no process placement',
};

export interface PlacementOptions {
  /** false: no placement; else how to reach the proc connector (see DaemonOptions.placement) */
  placement?:
    | false
    | Pick<PlacerProcessOptions, 'connectorFd' | 'command' | 'priority' | 'spawn'>
    | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  /** the child's stray output (stderr) */
  onLog?: (line: string) => void;
  /** an `error` event for the daemon's subscribers */
  onError(kind: string, message: string): void;
  /** how the platform meets path rules (default 'cgroup'); asked at each sync */
  perApp?: () => PerApp;
  /** /proc/self/mountinfo's text (tests) */
  mountinfo?: () => string;
}

export class PlacementSupervisor {
  private placer: PlacerHandle | undefined;
  private key = '';
  /** what the placer was last given */
  private current: { rules: Config['rules']; cgroupRoot: string } | undefined;
  /** `unsupported` (wrong namespace, no proc events) is final; other failures retry next run */
  private final = false;
  private state_: PlacementStatus = { state: 'off', execs: 0, placed: 0, errors: 0 };

  constructor(private readonly o: PlacementOptions) {}

  /** After a converged run: start the watcher when there are rules; follow rule and health changes. */
  sync(
    rules: Config['rules'],
    cgroupRoot: string,
    down: ReadonlySet<string>,
    held: ReadonlySet<string> = new Set(),
  ): void {
    if (this.o.placement === false) return;
    const perApp = this.o.perApp?.() ?? 'cgroup';
    if (perApp !== 'cgroup') {
      this.state_ = {
        state: 'off',
        reason: NOTHING_TO_PLACE[perApp],
        execs: 0,
        placed: 0,
        errors: 0,
      };
      return;
    }
    const key = JSON.stringify([cgroupRoot, rules]);
    if (!this.placer) {
      if (!rules.some((r) => r.enabled) || (this.state_.state === 'unavailable' && this.final))
        return;
      try {
        const mount = parseCgroup2Mount(
          (this.o.mountinfo ?? (() => readFileSync('/proc/self/mountinfo', 'utf8')))(),
        );
        if (!mount) throw new AwgError('unsupported', 'no cgroup v2 hierarchy is mounted');
        crashPoint('placer:start');
        this.placer = spawnPlacerProcess({
          rules,
          cgroupRoot,
          mount,
          down,
          held,
          env: this.o.env ?? process.env,
          ...(this.o.placement ?? {}),
          ...(this.o.onLog ? { onLog: this.o.onLog } : {}),
          onReady: (r) => {
            crashPoint('placer:ready');
            if (!r.fifo)
              this.o.onError('permission', `process watcher: ${r.reason ?? 'not real-time'}`);
          },
          onGate: (g) => {
            if (g.state === 'best-effort')
              this.o.onError(
                'unsupported',
                `placement is best-effort (a matched program may send its first packets before it is placed): ${g.reason ?? 'no exec gate'}`,
              );
          },
          onError: (e, fatal) => {
            if (!fatal) return this.o.onError(e.kind, `process watcher: ${e.message}`);
            this.unavailable(e);
            const h = this.placer;
            this.placer = undefined;
            this.key = '';
            void h?.close();
          },
        });
      } catch (e) {
        this.unavailable(toAwgError(e, 'unsupported'));
        return;
      }
      this.key = key;
      this.current = { rules, cgroupRoot };
      this.state_ = { state: 'active', execs: 0, placed: 0, errors: 0 };
      return;
    }
    if (key !== this.key) {
      // another cgroupRoot: the child first sends placed processes back from the old one
      this.placer.setRules(rules, cgroupRoot);
      this.key = key;
      this.current = { rules, cgroupRoot };
    }
    this.placer.setDown(down, held);
  }

  /**
   * Before a converge that removes rules (or disables them): the placer forgets them first, so
   * it never places a process into a cgroup the converge is about to remove (with the exec
   * gate, a `block` rule whose cgroup is gone refuses the exec). Rules that stay keep their
   * cgroups; new ones wait for sync() after the converge created their cgroups.
   */
  narrow(rules: Config['rules']): void {
    if (!this.placer || !this.current) return;
    const next = new Map(rules.map((r, i) => [ruleName(r, i), r]));
    // named explicitly: an unnamed rule's cgroup name comes from its index, which filtering changes
    const kept = this.current.rules
      .map((r, i) => ({ ...r, name: ruleName(r, i) }))
      .filter((r) => r.enabled && next.get(r.name)?.enabled === true);
    if (kept.length === this.current.rules.filter((r) => r.enabled).length) return;
    this.placer.setRules(kept, this.current.cgroupRoot);
    this.key = JSON.stringify([this.current.cgroupRoot, kept]);
  }

  /**
   * Resolves once the placer child has applied everything sent before (its rescans included),
   * or after `timeoutMs`, or at once when there is none; never rejects.
   */
  async flush(timeoutMs: number): Promise<void> {
    const h = this.placer;
    if (!h) return;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      h.flush().catch(() => undefined),
      new Promise<void>((resolve) => {
        t = setTimeout(resolve, timeoutMs);
        t.unref();
      }),
    ]);
    clearTimeout(t);
  }

  status(): PlacementStatus {
    const h = this.placer;
    const st = h?.stats;
    const g = h?.gate;
    const gs = h?.gateStats;
    return {
      ...this.state_,
      ...(st
        ? {
            execs: st.execs,
            placed: st.placed,
            ...errorsOf(placementErrorCounts(st, gs)),
          }
        : {}),
      ...(g
        ? {
            mode: g.state,
            ...(g.reason ? { modeReason: g.reason } : {}),
            ...(g.marks.length ? { gateMarks: [...g.marks] } : {}),
          }
        : {}),
    };
  }

  /** `down`: processes leave the rule cgroups (the cgroups are removed next); the watcher stops */
  async stop(): Promise<void> {
    const h = this.placer;
    if (!h) return;
    this.placer = undefined;
    this.key = '';
    this.state_ = { state: 'off', execs: 0, placed: 0, errors: 0 };
    h.setRules([]);
    // close() returns once the child has applied everything sent (stdin EOF) and exited
    await h.close();
  }

  /** daemon stop: the watcher ends; processes stay where they are */
  async close(): Promise<void> {
    const h = this.placer;
    this.placer = undefined;
    await h?.close();
  }

  private unavailable(err: AwgError): void {
    const again = this.state_.state === 'unavailable' && this.state_.reason === err.message;
    this.final = err.kind === 'unsupported';
    this.state_ = { state: 'unavailable', reason: err.message, execs: 0, placed: 0, errors: 0 };
    if (again) return;
    this.o.onError(
      err.kind,
      `process placement by rules is unavailable: ${err.message}; \`awg exec\` still works`,
    );
  }
}

/** status's `errors` (their sum, kept for older clients) and `errorsByKind` */
const errorsOf = (c: PlacementErrorCounts): Pick<PlacementStatus, 'errors' | 'errorsByKind'> => ({
  errors: sumErrors(c),
  errorsByKind: c,
});

/**
 * Placement as `awg status` shows it on macOS: the flow router (resources/engine/
 * flow-router-host.ts) is what applies path rules there, so its state is placement's.
 */
export function flowPlacement(
  router: {
    state: 'off' | 'active';
    port?: number;
    decisions?: Record<string, number>;
    execs?: number;
  },
  off: PlacementStatus,
): PlacementStatus {
  if (router.state === 'off') return off;
  const d = Object.entries(router.decisions ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${v}`);
  const x = router.execs ? `; awg exec registrations: ${router.execs}` : '';
  return {
    state: 'active',
    reason: `the flow router applies path rules per TCP connection on 127.0.0.1/::1 port ${router.port}${d.length ? `; connections so far: ${d.join(', ')}` : ''}${x}`,
    execs: 0,
    placed: 0,
    errors: 0,
  };
}

/**
 * Processes awg routes: those in our cgroups (Linux), under an `awg exec` registration (macOS:
 * `execOf`) and those a rule matches (pid, exe, the rule that routes them, its target, the
 * route now; procs/list.ts). Works without the watcher too.
 */
export function listRoutedProcesses(
  lister: ProcessLister,
  config: Config,
  cgroupRoot: string,
  down: ReadonlySet<string>,
  execOf?: ListOptions['execOf'],
  held?: ReadonlySet<string>,
): ProcessInfo[] {
  return lister.list(config, cgroupRoot, {
    tunnelUp: tunnelUpOf(down, held),
    ...(execOf ? { execOf } : {}),
  });
}
