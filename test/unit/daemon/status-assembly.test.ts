/**
 * Status assembly without a daemon: assembleStatus over stand-ins for the daemon's parts (a
 * prepared config, fake engine stats, canned nft counters, injected link counters) — the
 * state verdict, the last run, objects, tunnel lines with their link counters, placement, and
 * the rules counted by the firewall or (macOS) by the flow router.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlacementStatus } from '../../../src/daemon/core.js';
import { assembleStatus, type StatusParts } from '../../../src/daemon/status.js';
import { HealthMonitor } from '../../../src/daemon/tunnel-health.js';
import { prepare, type Prepared } from '../../../src/pipeline/prepare.js';
import type { EngineStats } from '../../../src/resources/engine/inproc.js';
import { RecordingExec } from '../../helpers/exec.js';
import { ONE_TUNNEL_KEYS, oneTunnelConfig } from '../../helpers/daemon-config.js';

const CONFIG = oneTunnelConfig();
const NFT = JSON.stringify({
  nftables: [
    {
      rule: {
        family: 'inet',
        table: 'awg',
        chain: 'route_out',
        comment: 'app/web',
        expr: [{ counter: { packets: 3, bytes: 300 } }],
      },
    },
  ],
});
const OFF: PlacementStatus = { state: 'off', execs: 0, placed: 0, errors: 0 };
const stats: EngineStats[] = [
  {
    tunnel: 'vpn',
    type: 'wireguard',
    link: 'awg-vpn',
    up: true,
    peers: [
      {
        publicKey: ONE_TUNNEL_KEYS.peer.publicKey,
        endpoint: '10.200.9.2:51820',
        lastHandshakeMs: 0,
        rxBytes: 10,
        txBytes: 20,
        handshakePendingMs: 0,
        hasSession: false,
      },
    ],
  },
];

describe('status assembly', () => {
  let dir: string;
  let p: Prepared;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'awg-status-'));
    const file = join(dir, 'awg.yaml');
    writeFileSync(file, CONFIG);
    const r = await prepare(file, { facts: { cgroupNftPrefix: '' } });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    p = r.prepared;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const engines = { stats: () => stats, proxyStats: () => [], probe: () => {} };
  const parts = (o: Partial<StatusParts> = {}): StatusParts => ({
    config: undefined,
    configPath: undefined,
    configured: false,
    running: undefined,
    lastRun: undefined,
    observed: undefined,
    prepared: undefined,
    engines,
    health: new HealthMonitor(engines),
    confirmDeadline: undefined,
    placement: OFF,
    exec: new RecordingExec({ 'nft -t -j list ruleset inet': NFT }),
    links: () => new Map(),
    ...o,
  });

  it('nothing followed: down, nothing observed, no tunnels', async () => {
    const s = await assembleStatus(parts());
    expect(s).toEqual({ state: 'down', objects: [], tunnels: [], placement: OFF });
  });

  it('a followed config: the last run (without its reason), objects, tunnels with link counters, rule counters', async () => {
    // the run bookkeeping's record carries the wake reason; status leaves it out
    const lastRun = { at: 't', outcome: 'unchanged', durationMs: 5, reason: 'start' as const };
    const s = await assembleStatus(
      parts({
        config: { valid: true, lastPlanChanges: 0 },
        configPath: p.file,
        configured: true,
        lastRun,
        observed: { resources: p.desired.resources, foreign: [] },
        prepared: p,
        confirmDeadline: 'soon',
        links: (names) =>
          new Map(names.map((n) => [n, { rxPackets: 1, rxBytes: 84, txPackets: 2, txBytes: 168 }])),
      }),
    );
    expect(s).toMatchObject({
      config: { valid: true },
      state: 'converged',
      configPath: p.file,
      lastReconcile: { at: 't', outcome: 'unchanged', durationMs: 5 },
      objects: p.desired.resources.map((r) => ({ kind: r.kind, id: r.id })),
      confirmDeadline: 'soon',
      placement: OFF,
      rules: [
        { name: 'web', target: 'vpn', route: 'vpn', txPackets: 3, txBytes: 300, rxPackets: 0 },
      ],
    });
    expect(s.lastReconcile).not.toHaveProperty('reason');
    expect(s.tunnels).toHaveLength(1);
    expect(s.tunnels[0]).toMatchObject({
      name: 'vpn',
      link: 'awg-vpn',
      rxBytes: 10,
      txBytes: 20,
      linkTraffic: { rxPackets: 1, rxBytes: 84, txPackets: 2, txBytes: 168 },
    });
  });

  it('a tunnel with obfuscation profiles: its line carries the active profile and its switches', async () => {
    const health = new HealthMonitor(engines);
    const sw = { at: '2026-11-27T16:00:00.000Z', tunnel: 'vpn', from: 'a', to: 'b' };
    health.profiles = {
      view: (t) =>
        t === 'vpn' ? { active: 'b', switches: [{ ...sw, reason: 'no-data' }] } : undefined,
    };
    const s = await assembleStatus(
      parts({ configured: true, prepared: p, health, config: { valid: true, lastPlanChanges: 0 } }),
    );
    expect(s.tunnels[0]).toMatchObject({
      name: 'vpn',
      profile: 'b',
      profileSwitches: [{ at: sw.at, from: 'a', to: 'b', reason: 'no-data' }],
    });
    expect(s.tunnels[0]!.profileSwitches![0]).not.toHaveProperty('tunnel');
    // without profiles: neither field
    const plain = await assembleStatus(parts({ configured: true, prepared: p }));
    expect(plain.tunnels[0]).not.toHaveProperty('profile');
    expect(plain.tunnels[0]).not.toHaveProperty('profileSwitches');
  });

  it('a re-check under way keeps the verdict; a new desired state is reconciling', async () => {
    const lastRun = { at: 't', outcome: 'converged', durationMs: 1 };
    const base = { configured: true, lastRun, prepared: p };
    expect((await assembleStatus(parts({ ...base, running: 'network' }))).state).toBe('converged');
    expect((await assembleStatus(parts({ ...base, running: 'api' }))).state).toBe('reconciling');
  });

  it('macOS: the rules are counted by the flow router, not read from the firewall', async () => {
    const exec = new RecordingExec();
    const s = await assembleStatus(
      parts({
        configured: true,
        prepared: p,
        exec,
        flowTraffic: () => new Map([['web', { connections: 2, txBytes: 7, rxBytes: 9 }]]),
      }),
    );
    expect(s.rules).toEqual([
      {
        name: 'web',
        target: 'vpn',
        route: 'vpn',
        txPackets: 0,
        txBytes: 7,
        rxPackets: 0,
        rxBytes: 9,
        connections: 2,
      },
    ]);
    expect(exec.log).toEqual([]);
  });

  it('a firewall that cannot be read: no rule counters, the rest stands', async () => {
    const s = await assembleStatus(
      parts({ configured: true, prepared: p, exec: new RecordingExec() }),
    );
    expect(s.rules).toBeUndefined();
    expect(s.tunnels.map((t) => t.name)).toEqual(['vpn']);
  });
});
