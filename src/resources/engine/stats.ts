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
}

export interface EngineStats {
  tunnel: string;
  type: string;
  link: string;
  up: boolean;
  peers: PeerStats[];
}
