/**
 * What the device reports (pulled, never pushed): `snapshot()` for UAPI `get=1`,
 * `peerSummaries()` for the daemon's per-second health poll; and how a peer's state reads in
 * them (`peerSummary`, `peerStatus`).
 */
import type { AwgParams } from '../awg/params.js';
import type { UintRange } from '../awg/range.js';
import type { Clock } from '../clock.js';
import type { Endpoint } from '../conn/bind.js';
import { isZeroKey } from '../crypto/keys.js';
import type { Peer } from './peer.js';

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
  /** ms since the first data message sent that no transport message has answered yet (0: none) */
  dataUnansweredMs: number;
  /** the last transport message received was a keepalive */
  lastRxKeepalive: boolean;
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

/** A peer's liveness and counters (the clock: how long an initiation has been pending). */
export function peerSummary(p: Peer, clock: Clock): PeerSummary {
  return {
    publicKey: p.publicKey,
    endpoint: p.endpoint && { address: p.endpoint.address, port: p.endpoint.port },
    endpointHost: p.endpointHost ? `${p.endpointHost.host}:${p.endpointHost.port}` : null,
    lastHandshakeTime: p.lastHandshakeWall,
    txBytes: p.txBytes,
    rxBytes: p.rxBytes,
    hasSession: !!p.keypairs.current,
    handshakePendingMs:
      p.handshakePendingSince === null ? 0 : Math.max(1, clock.now() - p.handshakePendingSince),
    dataUnansweredMs:
      p.dataUnansweredSince === null ? 0 : Math.max(1, clock.now() - p.dataUnansweredSince),
    lastRxKeepalive: p.lastRxKeepalive,
  };
}

/** The summary with the peer's configuration (`allowedIps`: its prefixes, formatted). */
export function peerStatus(p: Peer, allowedIps: string[], clock: Clock): PeerStatus {
  const psk = p.handshake.presharedKey;
  return {
    ...peerSummary(p, clock),
    presharedKey: isZeroKey(psk) ? null : psk,
    persistentKeepalive: p.persistentKeepalive,
    allowedIps,
  };
}
