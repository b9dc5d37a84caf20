/**
 * The counters awg's hosts report to the daemon's status and metrics: an engine's per-peer
 * numbers, and the macOS flow router's per-rule traffic (with its zero, shared by the router
 * and the status that reads it). Types, and one constructor: cheap to load anywhere.
 */

/** What an engine host reports of its WireGuard tunnels (the daemon's health and status). */
export interface PeerStats {
  publicKey: string;
  endpoint?: string;
  /** Unix ms; 0 = never */
  lastHandshakeMs: number;
  rxBytes: number;
  txBytes: number;
  /** ms the oldest unanswered handshake initiation has waited (0: none pending) */
  handshakePendingMs: number;
  /** a session is established now */
  hasSession: boolean;
  /**
   * awg's own engine: ms since the first data message sent that no transport message
   * (data or keepalive) answered (0: none). External engines leave it out: the daemon derives
   * it from the byte counters (daemon/data-path.ts).
   */
  dataUnansweredMs?: number;
  /** awg's own engine: the last transport message received was a keepalive */
  lastRxKeepalive?: boolean;
}

export interface EngineStats {
  tunnel: string;
  type: string;
  link: string;
  up: boolean;
  peers: PeerStats[];
}

/** a rule's connections through the flow router and their payload bytes (tx: app → destination, rx: back to the app) */
export interface RuleTraffic {
  connections: number;
  txBytes: number;
  rxBytes: number;
}

/** A rule without traffic yet: a fresh object, which the router adds to. */
export function zeroRuleTraffic(): RuleTraffic {
  return { connections: 0, txBytes: 0, rxBytes: 0 };
}
