/**
 * A tunnel's rating over time (pure, clock given): the handshake/engine/proxy rating
 * (tunnel-health.ts wgHealth, the proxy checker) combined with the data path (data-path.ts)
 * and the active probe (health-probe.ts), with the reason and the times status shows.
 *
 * No flapping: going down needs the cause's own bound (downAfter, the no-data bound, the
 * probe's failure threshold); a tunnel down for a data-path reason (`no-data`,
 * `probe-failed`) comes back only once the cause stayed clear for RECOVER_HOLD_MS. A change
 * is a change of state or of reason: exactly one per change.
 */
import type { DownReason, HealthState } from './names.js';

export { DOWN_REASONS, type DownReason } from './names.js';

/** a data-path down needs its cause clear this long (ms) before the tunnel is up again */
export const RECOVER_HOLD_MS = 2_000;

export interface RatingInput {
  /** the handshake (engine) or proxy checker rating */
  base: HealthState;
  /** why `base` is down (when it is) */
  baseReason?: DownReason | undefined;
  /** data-path.ts: every initiating peer with a fresh session has our data unanswered */
  noData: boolean;
  /** the configured probe failed past its threshold */
  probeFailed: boolean;
}

export interface Rating {
  state: HealthState;
  reason?: DownReason;
  /** ms (the rating's clock) of the last change */
  sinceMs: number;
  /** ms of the last tick rated up (0: never) */
  lastUpMs: number;
}

const isDownState = (s: HealthState) => s === 'down' || s === 'auth-failed';
const dataPath = (r: DownReason | undefined) => r === 'no-data' || r === 'probe-failed';

/** One tunnel's rating: `next` each tick. */
export class TunnelRating {
  private r: Rating | undefined;
  /** when the data-path cause was last seen clear, while still held down */
  private clearSince: number | null = null;

  get current(): Rating | undefined {
    return this.r;
  }

  next(i: RatingInput, nowMs: number): { rating: Rating; changed: boolean } {
    let state = i.base;
    let reason = isDownState(state) ? (i.baseReason ?? 'handshake') : undefined;
    if (!isDownState(state) && i.probeFailed) [state, reason] = ['down', 'probe-failed'];
    else if (!isDownState(state) && i.noData) [state, reason] = ['down', 'no-data'];
    const prev = this.r;
    if (isDownState(state)) this.clearSince = null;
    else if (prev?.state === 'down' && dataPath(prev.reason)) {
      this.clearSince ??= nowMs;
      if (nowMs - this.clearSince < RECOVER_HOLD_MS) [state, reason] = ['down', prev.reason];
      else this.clearSince = null;
    }
    const changed = !prev || prev.state !== state || prev.reason !== reason;
    const rating: Rating = {
      state,
      ...(reason ? { reason } : {}),
      sinceMs: changed ? nowMs : prev.sinceMs,
      lastUpMs: state === 'up' ? nowMs : (prev?.lastUpMs ?? 0),
    };
    this.r = rating;
    return { rating, changed };
  }
}
