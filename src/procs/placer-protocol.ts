/**
 * Wire protocol between the daemon and `awg placer` (its process watcher in a child process):
 * one JSON object per line ("\n"), UTF-8, on the child's stdin (to the placer) and stdout
 * (from it). Pure: framing and validation only.
 *
 * Contract:
 * - The child handles its input strictly in order; a `stats` request with an `id` is answered
 *   after everything sent before it has been applied (the daemon's flush).
 * - `config` is the whole placement state (rules as in the config schema, already validated
 *   by the daemon; the cgroup root; the v2 mount; the tunnels that are down; the root of the
 *   process tree never moved). The first one starts placement; a later one with another
 *   cgroupRoot or mount first sends every placed process back (rules []), then starts over.
 * - EOF on stdin: the child closes its cgroup fds and the connector and exits 0.
 * - Out: `ready` once (scheduling outcome), `stats` when counters change (at most once per
 *   interval) and on request, `error` for anything the daemon should report (placement
 *   errors: one per kind that counted since its last report, at most once a minute,
 *   placement-errors.ts); `fatal: true`
 *   means the child exits and a restart would fail the same way (e.g. `unsupported`);
 *   `placed` per exec placement only when traced (AWG_PLACER_TRACE=1, benchmarks).
 */
import type { Rule } from '../config/schema.js';
import type { IdentityFacts } from '../model/who.js';
import type { ErrorKind } from '../errors.js';
import type { PlacerStats } from './placer.js';
import type { GateStats } from './gate.js';
import { isObject, isStrings } from '../util/shape.js';

export interface PlacerMount {
  mountPoint: string;
  root: string;
}

export type ToPlacer =
  | {
      type: 'config';
      rules: Rule[];
      cgroupRoot: string;
      mount: PlacerMount;
      down: string[];
      /** rules held on their fallback (`sticky`): their tunnel counts as down for them */
      held?: string[];
      ownPid?: number;
      /** user names → uids and units → cgroups as the daemon probed them (model/who.ts) */
      identity?: IdentityFacts;
    }
  | { type: 'down'; down: string[]; held?: string[] }
  | { type: 'rescan' }
  | { type: 'stats'; id?: number };

export interface ConnectorCounts {
  received: number;
  overruns: number;
}

/**
 * The exec gate's state: `gated` (every mark it needs is in place), `best-effort` (no gate, or
 * some file system could not be marked: the watcher alone places what it misses; `reason`).
 * Sent when it changes; `marks` are the mount points whose file systems are marked.
 */
export interface GateInfo {
  state: 'gated' | 'best-effort';
  reason?: string;
  /** `trees`: only the file systems of dir/path rules; `all`: a name/regex rule needs them all */
  scope?: 'trees' | 'all';
  marks: string[];
}

export type FromPlacer =
  | { type: 'ready'; pid: number; fifo: boolean; priority?: number; reason?: string }
  | ({
      type: 'stats';
      id?: number;
      connector: ConnectorCounts;
      rssKb: number;
      gate?: GateStats;
    } & PlacerStats)
  | ({ type: 'gate' } & GateInfo)
  | { type: 'error'; kind: ErrorKind; message: string; fatal?: boolean }
  /** only with AWG_PLACER_TRACE=1 (benchmarks): one per exec placement, CLOCK_MONOTONIC ns as decimal strings */
  | { type: 'placed'; pid: number; execNs: string; recvNs?: string; placedNs: string };

export const STAT_KEYS = [
  'execs',
  'placed',
  'misses',
  'kept',
  'ownTree',
  'vanished',
  'esrch',
  'missingCgroup',
  'errors',
  'rescans',
  'gated',
] as const satisfies readonly (keyof PlacerStats)[];

export const zeroStats = (): PlacerStats => ({
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
});

export const GATE_KEYS = [
  'events',
  'execs',
  'placed',
  'late',
  'errors',
  'overflows',
  'denied',
] as const satisfies readonly (keyof GateStats)[];

/** a line longer than this is a protocol error (a config of thousands of rules fits easily) */
export const MAX_LINE = 4 << 20;

export const encode = (m: ToPlacer | FromPlacer): string => `${JSON.stringify(m)}\n`;

/**
 * Splits a byte stream into lines. Multi-byte characters split across chunks are kept whole;
 * a trailing partial line waits for the next chunk; an overlong line is reported and dropped.
 */
export class LineDecoder {
  private buf = '';
  private readonly td = new TextDecoder('utf-8');
  private skipping = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOverlong: (bytes: number) => void = () => {},
    private readonly max = MAX_LINE,
  ) {}

  push(chunk: Uint8Array | string): void {
    let s = typeof chunk === 'string' ? chunk : this.td.decode(chunk, { stream: true });
    for (;;) {
      const nl = s.indexOf('\n');
      if (nl < 0) break;
      const line = this.buf + s.slice(0, nl);
      this.buf = '';
      s = s.slice(nl + 1);
      if (this.skipping) this.skipping = false;
      else if (line.length > this.max) this.onOverlong(line.length);
      else if (line.trim() !== '') this.onLine(line);
    }
    if (this.skipping) return;
    this.buf += s;
    if (this.buf.length > this.max) {
      this.onOverlong(this.buf.length);
      this.buf = '';
      this.skipping = true;
    }
  }

  /** what is left without a newline (at EOF) */
  rest(): string {
    return this.skipping ? '' : this.buf + this.td.decode();
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** one input line → a message, or a reason why not */
export function parseToPlacer(line: string): ToPlacer | { invalid: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    return { invalid: `not JSON: ${(e as Error).message}` };
  }
  if (!isObject(v)) return { invalid: 'not an object' };
  switch (v.type) {
    case 'config': {
      const m = v.mount;
      if (
        !Array.isArray(v.rules) ||
        !v.rules.every(
          (r) =>
            isObject(r) &&
            (r.match === undefined || isObject(r.match)) &&
            typeof r.target === 'string',
        )
      )
        return { invalid: 'config: rules must be rule objects' };
      if (
        typeof v.cgroupRoot !== 'string' ||
        v.cgroupRoot === '' ||
        v.cgroupRoot.startsWith('/') ||
        v.cgroupRoot.split('/').includes('..')
      )
        return { invalid: 'config: cgroupRoot must be a relative path below the mount' };
      if (!isObject(m) || typeof m.mountPoint !== 'string' || typeof m.root !== 'string')
        return { invalid: 'config: mount must be {mountPoint, root}' };
      if (!isStrings(v.down)) return { invalid: 'config: down must be a list of tunnel names' };
      if (v.held !== undefined && !isStrings(v.held))
        return { invalid: 'config: held must be a list of rule names' };
      if (v.ownPid !== undefined && !(isCount(v.ownPid) && v.ownPid > 0))
        return { invalid: 'config: ownPid must be a pid' };
      const id = v.identity;
      const isMap = (x: unknown, ok: (y: unknown) => boolean): boolean =>
        x === undefined || (isObject(x) && Object.values(x).every(ok));
      if (
        id !== undefined &&
        !(
          isObject(id) &&
          isMap(id.users, isCount) &&
          isMap(id.unitCgroups, (y) => typeof y === 'string' && y.startsWith('/'))
        )
      )
        return {
          invalid: 'config: identity must be {users?: {name: uid}, unitCgroups?: {unit: path}}',
        };
      return {
        type: 'config',
        rules: v.rules as Rule[],
        cgroupRoot: v.cgroupRoot,
        mount: { mountPoint: m.mountPoint, root: m.root },
        down: v.down,
        ...(v.held !== undefined ? { held: v.held } : {}),
        ...(v.ownPid !== undefined ? { ownPid: v.ownPid as number } : {}),
        ...(id !== undefined ? { identity: id as IdentityFacts } : {}),
      };
    }
    case 'down':
      if (v.held !== undefined && !isStrings(v.held))
        return { invalid: 'down: held must be a list of rule names' };
      return isStrings(v.down)
        ? { type: 'down', down: v.down, ...(v.held !== undefined ? { held: v.held } : {}) }
        : { invalid: 'down: down must be a list of tunnel names' };
    case 'rescan':
      return { type: 'rescan' };
    case 'stats':
      if (v.id !== undefined && !isCount(v.id))
        return { invalid: 'stats: id must be a non-negative integer' };
      return v.id === undefined ? { type: 'stats' } : { type: 'stats', id: v.id as number };
    default:
      return { invalid: `unknown message type ${JSON.stringify(v.type)}` };
  }
}

const KINDS: readonly ErrorKind[] = [
  'invalid-config',
  'unsupported',
  'permission',
  'conflict',
  'driver',
  'verification',
  'bug',
];

/** one output line of the child → a message, or undefined (not ours: logged as text) */
export function parseFromPlacer(line: string): FromPlacer | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(v)) return undefined;
  switch (v.type) {
    case 'ready':
      if (typeof v.fifo !== 'boolean' || !isCount(v.pid)) return undefined;
      return {
        type: 'ready',
        pid: v.pid,
        fifo: v.fifo,
        ...(isCount(v.priority) ? { priority: v.priority } : {}),
        ...(typeof v.reason === 'string' ? { reason: v.reason } : {}),
      };
    case 'stats': {
      const st = zeroStats();
      for (const k of STAT_KEYS) {
        if (!isCount(v[k])) return undefined;
        st[k] = v[k];
      }
      const c = isObject(v.connector) ? v.connector : {};
      const g = isObject(v.gate) ? v.gate : undefined;
      const gate =
        g && GATE_KEYS.every((k) => isCount(g[k]))
          ? (Object.fromEntries(GATE_KEYS.map((k) => [k, g[k]])) as unknown as GateStats)
          : undefined;
      return {
        type: 'stats',
        ...(isCount(v.id) ? { id: v.id } : {}),
        ...st,
        connector: {
          received: isCount(c.received) ? c.received : 0,
          overruns: isCount(c.overruns) ? c.overruns : 0,
        },
        rssKb: isCount(v.rssKb) ? v.rssKb : 0,
        ...(gate ? { gate } : {}),
      };
    }
    case 'gate':
      if ((v.state !== 'gated' && v.state !== 'best-effort') || !isStrings(v.marks))
        return undefined;
      return {
        type: 'gate',
        state: v.state,
        ...(typeof v.reason === 'string' ? { reason: v.reason } : {}),
        ...(v.scope === 'trees' || v.scope === 'all' ? { scope: v.scope } : {}),
        marks: v.marks,
      };
    case 'placed':
      if (
        !isCount(v.pid) ||
        typeof v.execNs !== 'string' ||
        typeof v.placedNs !== 'string' ||
        !/^\d+$/.test(v.execNs) ||
        !/^\d+$/.test(v.placedNs)
      )
        return undefined;
      return {
        type: 'placed',
        pid: v.pid,
        execNs: v.execNs,
        ...(typeof v.recvNs === 'string' && /^\d+$/.test(v.recvNs) ? { recvNs: v.recvNs } : {}),
        placedNs: v.placedNs,
      };
    case 'error':
      if (typeof v.message !== 'string') return undefined;
      return {
        type: 'error',
        kind: KINDS.includes(v.kind as ErrorKind) ? (v.kind as ErrorKind) : 'driver',
        message: v.message,
        ...(v.fatal === true ? { fatal: true } : {}),
      };
    default:
      return undefined;
  }
}
