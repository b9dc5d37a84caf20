/**
 * `awg status` shows each peer's persistent keepalive as configured: a number, or an
 * AmneziaWG 3.x range "MIN-MAX" (never one of its draws); absent when off.
 */
import { describe, expect, it } from 'vitest';
import { renderDaemonStatus } from '../../../src/cli/commands/status.js';
import { tunnelStatuses } from '../../../src/daemon/status.js';
import type { HealthMonitor } from '../../../src/daemon/tunnel-health.js';
import { statusFromWire, statusToWire } from '../../../src/daemon/wire/status.js';
import type { AnyResource, WgEngineSpec } from '../../../src/model/resources.js';
import type { EngineStats } from '../../../src/resources/engine/stats.js';
import { PEER_PUB, sampleStatus } from './server-fake-core.js';

const OTHER = 'LQHi3Fu5j8PZutPu2+rfXWaFcKW6Y+9QTAYTqsJNFnE=';
const peer = (publicKey: string, persistentKeepalive: number | string) => ({
  publicKey,
  presharedKey: null,
  endpoint: null,
  allowedIPs: [],
  persistentKeepalive,
});
const spec: WgEngineSpec = {
  tunnel: 'work',
  type: 'amneziawg',
  link: 'awg-work',
  config: {
    privateKey: 'fp',
    listenPort: 0,
    fwmark: 1,
    peers: [peer(PEER_PUB, '20-30'), peer(OTHER, 0)],
    obfuscation: {},
  },
};
const health = {
  stateOf: () => 'up',
  ratingOf: () => undefined,
  errorOf: () => undefined,
} as unknown as HealthMonitor;
const stats: EngineStats = {
  tunnel: 'work',
  type: 'amneziawg',
  link: 'awg-work',
  up: true,
  peers: [PEER_PUB, OTHER].map((publicKey) => ({
    publicKey,
    lastHandshakeMs: 0,
    rxBytes: 0,
    txBytes: 0,
    handshakePendingMs: 0,
    hasSession: false,
  })),
};

describe('status: the keepalive as configured', () => {
  it('the daemon puts the range on its peer, nothing on a peer without keepalives; the text says it', () => {
    const engine = { kind: 'engine', id: 'engine/work', spec } as unknown as AnyResource;
    const [t] = tunnelStatuses([engine], [stats], [], health);
    expect(t!.peers.map((p) => p.persistentKeepalive)).toEqual(['20-30', undefined]);
    const doc = { ...sampleStatus(), tunnels: [t!] };
    // through the wire and back unchanged
    expect(statusFromWire(statusToWire(doc)).tunnels![0]!.peers).toEqual(t!.peers);
    const text = renderDaemonStatus(doc);
    expect(text).toContain(
      `  peer ${PEER_PUB}: handshake never, rx 0 B, tx 0 B, keepalive every 20-30 s`,
    );
    expect(text).toContain(`  peer ${OTHER}: handshake never, rx 0 B, tx 0 B\n`);
  });
});
