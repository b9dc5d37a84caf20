/**
 * The daemon's domain API: what `awg daemon` offers, independent of gRPC. The gRPC server
 * (server.ts) converts proto messages to and from these types at the boundary; nothing
 * proto-shaped passes this file. Secrets never appear in any of these types.
 */
import type { ExplainDocument } from '../model/explain-document.js';
import type { ExplainRequest } from '../procs/explain.js';
import type { ExecChoice } from '../model/match.js';
import type { PlanDocument } from '../model/plan-document.js';
import type { ObservationRecord } from '../pipeline/observation.js';
import type { AwgError } from '../errors.js';
import type { ProcessInfo } from '../procs/placer.js';
import type { TopDocument } from '../procs/top/document.js';
import type { DaemonStatus, UrlListStatus } from './status-document.js';

export type { UrlListStatus };
import type {
  ApplyRequest,
  ApplyResponse,
  ConfirmResponse,
  DiffResponse,
  DownResponse,
  LimitRequest,
  LimitResponse,
} from './api-documents.js';
import type {
  DaemonState,
  LimitAction,
  ListResult,
  RolloutEventState,
  WakeReason,
} from './names.js';
import type { DownReason } from './names.js';
import type { HealthState } from './tunnel-health.js';

export type { DaemonState, WakeReason };

export type { ObservationRecord, ProcessInfo, TopDocument };

/** what a Top call (`awg top` through the daemon) asks for */
export interface TopRequest {
  /** milliseconds between documents */
  intervalMs: number;
  /** list every connection in the documents (`awg top --json`) */
  connections: boolean;
}

export type DaemonEvent =
  | { type: 'reconcile-started'; at: string; reason: WakeReason }
  | {
      type: 'reconcile-finished';
      at: string;
      reason: WakeReason;
      outcome: string;
      durationMs: number;
      summary: PlanDocument['summary'];
      error?: { kind: string; message: string };
    }
  | { type: 'drift'; at: string; ids: string[]; repaired: boolean }
  | { type: 'network-changed'; at: string; detail: string }
  | { type: 'config-changed'; at: string; path: string; valid: boolean }
  | {
      type: 'tunnel';
      at: string;
      tunnel: string;
      state: HealthState;
      error?: string;
      /** why it is down (health-rating.ts) */
      reason?: DownReason;
      /** when it was last rated up (RFC 3339; absent: never) */
      lastUp?: string;
    }
  | { type: 'handshake'; at: string; tunnel: string; peer: string }
  /**
   * an amneziawg tunnel moved to another obfuscation profile (profile-switch.ts): down for
   * `handshake` or `no-data` with the one before, or `network`: the one that worked there
   */
  | {
      type: 'profile';
      at: string;
      tunnel: string;
      from: string;
      to: string;
      reason: 'handshake' | 'no-data' | 'network';
    }
  /**
   * a sticky rule (`sticky: true`, sticky.ts) keeps its fallback although its tunnel is up
   * again (`held`), or the hold ended (`reason`: network | config | apply | rule)
   */
  | {
      type: 'sticky';
      at: string;
      rule: string;
      tunnel: string;
      held: boolean;
      /** when the rule took its fallback (RFC 3339) */
      since: string;
      reason?: 'network' | 'config' | 'apply' | 'rule';
    }
  /**
   * the rollout gate holds a new revision (`waiting` for this host's wave, `halted` by
   * fleet.halt) or lets it through after holding it (`applying`): rollout-gate.ts
   */
  | {
      type: 'rollout';
      at: string;
      revision: string;
      state: RolloutEventState;
      wave?: number;
      dueAt?: string;
      message: string;
    }
  | { type: 'confirm-pending'; at: string; deadline: string }
  | { type: 'reverted'; at: string; reason: string }
  /**
   * a revision of the followed checkout failed its check after the apply (revision-watch.ts):
   * rejected for good on this host and, with `revertedTo`, the host is back on that revision
   */
  | { type: 'revision-rejected'; at: string; revision: string; reason: string; revertedTo?: string }
  | { type: 'error'; at: string; kind: string; message: string }
  /**
   * Events were lost before the next one: a subscriber resumed after a cursor the replay buffer
   * no longer holds, or one of an earlier run of the daemon (it restarted). Re-read the state.
   */
  | { type: 'gap'; at: string; after: string; reason: string }
  /** traffic counters, at most every TRAFFIC_EVENT_MS and only when one moved (feed.ts) */
  | { type: 'traffic'; at: string; rules: RuleCounter[]; tunnels: TunnelTraffic[] }
  /**
   * a list fetched by URL was fetched, found current, or not taken (`failed`: its last good
   * copy stays; `refused`: the server's copy failed the pin, the parse or maxEntries)
   */
  | {
      type: 'list';
      at: string;
      list: string;
      result: ListResult;
      entries?: number;
      error?: string;
      refused?: boolean;
    }
  /** a runtime limit (`awg limit`) was set, changed or removed; `reason` says why when not asked */
  | {
      type: 'limit';
      at: string;
      pid: number;
      action: LimitAction;
      upload?: number;
      download?: number;
      reason?: string;
    };

/** a tunnel's counters in a traffic event */
export interface TunnelTraffic {
  tunnel: string;
  /** what the engine counts (encrypted datagrams with their headers; proxy tunnels: payload) */
  rxBytes: number;
  txBytes: number;
  /** the TUN's own counts of the inner IP packets (TUN tunnels) */
  link?: LinkTraffic;
}

// The requests and answers of the calls that change the host are the types of their one
// definition, the zod schemas of api-documents.ts (both APIs carry them).
export type { ExplainDocument, ExplainRequest };
export type {
  ApplyRequest,
  ApplyResponse,
  ConfirmResponse,
  DiffResponse,
  DownResponse,
  LimitRequest,
  LimitResponse,
};

// The status and its parts are the types of its one definition, the zod schema DaemonStatus
// (status-document.ts), which `awg status --json` prints and the proto's StatusResponse carries;
// its lists of names are constants in names.ts.

/** The daemon's status (what each field says: status-document.ts). */
export type StatusResponse = DaemonStatus;
/** a tunnel's line: a detached engine's answer (same fields), plus what only the daemon knows */
export type TunnelStatus = StatusResponse['tunnels'][number];
/** the kernel's counters of a TUN link (IFLA_STATS64): inner IP packets, headers included */
export type LinkTraffic = NonNullable<TunnelStatus['linkTraffic']>;
/** the process watcher and the exec gate */
export type PlacementStatus = NonNullable<StatusResponse['placement']>;
/** per-rule traffic: the firewall's counters of the rule's cgroup (macOS: the flow router's) */
export type RuleCounter = NonNullable<StatusResponse['rules']>[number];
/** What the daemon follows (fleet: the revision it runs and whether the newest one is valid). */
export type ConfigState = NonNullable<StatusResponse['config']>;
/** A runtime limit (`awg limit`, limit-book.ts) as the API shows it. */
export type LimitInfo = NonNullable<StatusResponse['limits']>[number];

/** UpdateLists' answer: per list its outcome (as a `list` event says it) and its status after */
export interface UpdateListsResponse {
  results: Extract<DaemonEvent, { type: 'list' }>[];
  lists: UrlListStatus[];
}

/** who asks for a limit (from the socket's credentials): root, or a socket-group member */
export interface LimitCaller {
  uid: number;
  root: boolean;
}

export interface DaemonCore {
  apply(req: ApplyRequest): Promise<ApplyResponse>;
  diff(req: { configPath: string }): Promise<DiffResponse>;
  status(): Promise<StatusResponse>;
  /**
   * The observation record of this host for `awg diff --observed` elsewhere (`awg status
   * --observed-out`, pipeline/observation.ts): the objects observed now, the last applied
   * resources and claims, the facts of the config running. Observed between runs, never
   * during one. No secrets (fingerprints only).
   */
  observation(): Promise<ObservationRecord>;
  down(): Promise<DownResponse>;
  confirm(): Promise<ConfirmResponse>;
  listProcesses(): Promise<ProcessInfo[]>;
  /**
   * `awg exec` where the daemon routes it (macOS, the flow router): `pid` (the caller's own,
   * from the socket's credentials) and its descendants take `choice` until the returned
   * function is called; `onEnd` gets the reason when the daemon ends it first. Absent or
   * throwing AwgError('unsupported') where awg exec needs no daemon (Linux).
   */
  routeExec?(pid: number, choice: ExecChoice, onEnd: (reason: string) => void): Promise<() => void>;
  /**
   * `awg limit`: set, change or clear the runtime limit of a process (limit-book.ts); the run
   * that applies it has converged when this resolves. `caller` (from the socket; in-process:
   * root) decides whose processes may be limited.
   */
  limit(req: LimitRequest, caller?: LimitCaller): Promise<LimitResponse>;
  /** the runtime limits held now */
  listLimits(): Promise<LimitInfo[]>;
  /**
   * `awg lists update`: fetch the lists by URL of the config followed now (all, or the one
   * whose URL or name is `list`), whatever their refresh says; each list's outcome and its
   * status after it. A new copy wakes the loop, which applies it.
   */
  updateLists(req: { list?: string | undefined }): Promise<UpdateListsResponse>;
  /**
   * `awg explain`: the rules walked for a connection of process `pid` to `host:port` with the
   * running config, tunnel health and learned addresses (procs/explain.ts).
   */
  explain(req: ExplainRequest): Promise<ExplainDocument>;
  /**
   * The event feed; returns an unsubscribe function. Each event comes with its id (opaque,
   * ordered within this run of the daemon; '' from a core that keeps no log). `o.after`: resume
   * after that id: the events since come first (replayed), or a `gap` event when they are gone.
   */
  subscribe(
    listener: (e: DaemonEvent, id: string) => void,
    o?: { after?: string | undefined },
  ): () => void;
  /** the id of the newest event (the position a fresh subscriber starts at); absent: no log */
  lastEventId?(): string;
  /**
   * The traffic monitor (`awg top`): a document per interval until the returned function is
   * called; `onEnd` once when it ends first (the daemon stops, the kernel cannot be read).
   */
  top(
    req: TopRequest,
    listener: (d: TopDocument) => void,
    onEnd: (err?: AwgError) => void,
  ): () => void;
}
