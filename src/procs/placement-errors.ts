/**
 * Placement errors by kind (pure): what `awg status` counts and what the placer child reports
 * as `error` messages (docs/platform-linux.md#cgroup-placement).
 *
 * - `missingCgroup`: the rule's cgroup did not exist when a process was to be moved into it
 *   (ENOENT opening its cgroup.procs; it is created by the converge, retried on the next event);
 * - `writeFailed`: opening or writing cgroup.procs failed otherwise (EACCES, EBUSY, EINVAL…;
 *   ESRCH, a process that exited first, is no error);
 * - `gateLate`: the exec gate answered an exec past its deadline without deciding (the watcher
 *   places it then, best-effort);
 * - `gateFailed`: the exec gate failed to decide or to answer an exec (answered anyway).
 *
 * Their sum is status's `errors`.
 */
import type { ErrorKind } from '../errors.js';

export const PLACEMENT_ERROR_KINDS = [
  'missingCgroup',
  'writeFailed',
  'gateLate',
  'gateFailed',
] as const;
export type PlacementErrorKind = (typeof PLACEMENT_ERROR_KINDS)[number];
export type PlacementErrorCounts = Record<PlacementErrorKind, number>;

/** the last failure of each placer kind: the cgroup (relative to the mount) and the errno name */
export interface PlacerFailures {
  missingCgroup?: { cgroup: string };
  writeFailed?: { cgroup: string; errno: string };
}

/** from the placer's and the gate's counters (PlacerStats, GateStats) */
export function placementErrorCounts(
  st: { missingCgroup: number; errors: number },
  gate?: { late: number; errors: number },
): PlacementErrorCounts {
  return {
    missingCgroup: st.missingCgroup,
    writeFailed: st.errors,
    gateLate: gate?.late ?? 0,
    gateFailed: gate?.errors ?? 0,
  };
}

export const sumErrors = (c: PlacementErrorCounts): number =>
  PLACEMENT_ERROR_KINDS.reduce((n, k) => n + c[k], 0);

/** status text: the kinds that counted, `missing cgroup 2, write failed 1` */
export function errorKindsText(c: PlacementErrorCounts): string {
  return PLACEMENT_ERROR_KINDS.filter((k) => c[k] > 0)
    .map((k) => `${LABEL[k]} ${c[k]}`)
    .join(', ');
}

const LABEL: Record<PlacementErrorKind, string> = {
  missingCgroup: 'missing cgroup',
  writeFailed: 'write failed',
  gateLate: 'gate late',
  gateFailed: 'gate failed',
};

/** a kind that keeps counting is reported again at most this often (one line, not one per exec) */
export const REPORT_EVERY_MS = 60_000;

export interface PlacementErrorReport {
  placement: PlacementErrorKind;
  kind: ErrorKind;
  message: string;
}

/**
 * One report per kind whose count grew since `before` (and that is `due`): the error kind (a
 * refused write is `permission`) and a message that names the placement error kind, how many,
 * and the last cgroup and errno.
 */
export function placementErrorReports(
  before: PlacementErrorCounts,
  now: PlacementErrorCounts,
  last: PlacerFailures,
  due: (k: PlacementErrorKind) => boolean = () => true,
): PlacementErrorReport[] {
  const out: PlacementErrorReport[] = [];
  const push = (placement: PlacementErrorKind, kind: ErrorKind, message: string) =>
    out.push({ placement, kind, message });
  for (const k of PLACEMENT_ERROR_KINDS) {
    const n = now[k] - before[k];
    if (n <= 0 || !due(k)) continue;
    const head = `placement error ${k} (${n} more, ${now[k]} in all):`;
    if (k === 'missingCgroup')
      push(
        k,
        'driver',
        `${head} not placed, the rule's cgroup ${last.missingCgroup?.cgroup ?? '?'} does not exist (yet)`,
      );
    else if (k === 'writeFailed') {
      const f = last.writeFailed;
      push(
        k,
        f?.errno === 'EACCES' || f?.errno === 'EPERM' ? 'permission' : 'driver',
        `${head} moving a process into ${f?.cgroup ?? '?'} failed: ${f?.errno ?? '?'}`,
      );
    } else if (k === 'gateLate')
      push(
        k,
        'driver',
        `${head} the exec gate answered past its deadline without deciding; the watcher places those execs (best-effort)`,
      );
    else push(k, 'driver', `${head} the exec gate could not decide or answer an exec`);
  }
  return out;
}
