/**
 * Tunnel health as the loop sees it (DESIGN.md §6: rules switch fallbacks while their
 * target is "not up"). Pure.
 *
 * WireGuard/AmneziaWG, from the engine's peers (only peers with an endpoint initiate; a
 * tunnel with none — a server — is always up):
 * - `down`: the engine is not running, or every initiating peer has had a handshake
 *   initiation unanswered for at least `downAfterMs` (a rekey unanswered that long counts
 *   too, even while the old session has not expired yet);
 * - `up`: not down, and some peer completed a handshake (ever, since the engine started);
 * - `connecting`: not down and no handshake yet.
 * A down tunnel stays down until a handshake completes (the unanswered series keeps its
 * start time across the daemon's probes), so it does not flap at every probe.
 *
 * Proxy tunnels: the upstream health checker's state (`unknown` counts as connecting).
 * Only `down` and `auth-failed` make rules take their fallback: `connecting` routes into the
 * tunnel (its traffic waits there for the first handshake instead of going direct).
 */
export type HealthState = 'connecting' | 'up' | 'down' | 'auth-failed';

export interface WgPeerHealth {
  hasEndpoint: boolean;
  /** Unix ms; 0 = never */
  lastHandshakeMs: number;
  handshakePendingMs: number;
}

export function wgHealth(running: boolean, peers: readonly WgPeerHealth[], downAfterMs: number): HealthState {
  if (!running) return 'down';
  const initiating = peers.filter((p) => p.hasEndpoint);
  if (initiating.length === 0) return 'up';
  // also when a session still exists: a rekey unanswered that long means the peer is gone
  if (initiating.every((p) => p.handshakePendingMs >= downAfterMs)) return 'down';
  return peers.some((p) => p.lastHandshakeMs > 0) ? 'up' : 'connecting';
}

/** whether rules targeting a tunnel in this state take their fallback */
export const isDown = (s: HealthState | undefined): boolean => s === 'down' || s === 'auth-failed';

/** the set of tunnels not up, for BuildOptions.down */
export function downSet(states: ReadonlyMap<string, HealthState>): Set<string> {
  return new Set([...states].filter(([, s]) => isDown(s)).map(([t]) => t));
}
