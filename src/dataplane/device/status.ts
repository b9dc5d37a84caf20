/**
 * What the device reports (pulled, never pushed): `snapshot()` for UAPI `get=1`,
 * `peerSummaries()` for the daemon's per-second health poll.
 */
import type { AwgParams } from '../awg/params.js';
import type { UintRange } from '../awg/range.js';
import type { Endpoint } from '../conn/bind.js';

export interface PeerSummary {
  publicKey: Uint8Array;
  endpoint: Endpoint | null;
  endpointHost: string | null;
  /** Unix ms; 0 = never */
  lastHandshakeTime: number;
  txBytes: number;
  rxBytes: number;
  hasSession: boolean;
  /** ms the oldest unanswered handshake initiation has been waiting (0: none pending) */
  handshakePendingMs: number;
}

export interface PeerStatus extends PeerSummary {
  presharedKey: Uint8Array | null;
  persistentKeepalive: UintRange;
  allowedIps: string[];
}

export interface DeviceSnapshot {
  privateKey: Uint8Array | null;
  listenPort: number;
  fwmark: number;
  awg: AwgParams;
  peers: PeerStatus[];
}
