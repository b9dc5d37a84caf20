import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createMetrics,
  parseListen,
  startMetricsServer,
  type MetricsServer,
} from '../../../src/daemon/metrics.js';
import { ALL_EVENTS, FakeCore, PEER_PUB } from './server-fake-core.js';

const servers: MetricsServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }),
      );
    });
    r.on('error', reject);
    r.end();
  });
}

const line = (text: string, prefix: string) => text.split('\n').find((l) => l.startsWith(prefix));

describe('Prometheus metrics', () => {
  it('awg_revision_rejected: 1 per revision the host rejected after its apply, beside behind', async () => {
    const core = new FakeCore();
    core.statusValue = {
      ...core.statusValue,
      config: {
        revision: 'a'.repeat(40),
        checkoutRevision: 'b'.repeat(40),
        valid: true,
        lastPlanChanges: 0,
        rejected: [
          { revision: 'c'.repeat(40), reason: 'x', at: '2026-11-22T03:00:00.000Z' },
          { revision: 'b'.repeat(40), reason: 'y', at: '2026-11-22T04:00:00.000Z' },
        ],
      },
    };
    const t = await createMetrics(core).render();
    expect(t.split('\n').filter((l) => l.startsWith('awg_revision_rejected{'))).toEqual([
      `awg_revision_rejected{rev="${'c'.repeat(40)}"} 1`,
      `awg_revision_rejected{rev="${'b'.repeat(40)}"} 1`,
    ]);
    expect(line(t, 'awg_config_behind ')).toBe('awg_config_behind 1');
  });

  it('counts reconciles and durations by outcome, drift found/repaired, errors by kind, from events', async () => {
    const core = new FakeCore();
    const m = createMetrics(core);
    for (const e of ALL_EVENTS) core.emit(e);
    core.emit({ type: 'drift', at: 'x', ids: ['a'], repaired: false });
    const t = await m.render();
    expect(line(t, 'awg_reconcile_total{outcome="converged"}')).toBe(
      'awg_reconcile_total{outcome="converged"} 1',
    );
    expect(line(t, 'awg_reconcile_total{outcome="failed"}')).toBe(
      'awg_reconcile_total{outcome="failed"} 1',
    );
    expect(line(t, 'awg_reconcile_total{outcome="rolled-back"}')).toBe(
      'awg_reconcile_total{outcome="rolled-back"} 0',
    );
    expect(line(t, 'awg_reconcile_duration_seconds_sum{outcome="converged"}')).toBe(
      'awg_reconcile_duration_seconds_sum{outcome="converged"} 0.1',
    );
    expect(line(t, 'awg_reconcile_duration_seconds_bucket{le="0.01",outcome="failed"}')).toBe(
      'awg_reconcile_duration_seconds_bucket{le="0.01",outcome="failed"} 1',
    );
    expect(line(t, 'awg_drift_detected_total ')).toBe('awg_drift_detected_total 3');
    expect(line(t, 'awg_drift_repairs_total ')).toBe('awg_drift_repairs_total 2');
    expect(line(t, 'awg_errors_total{kind="invalid-config"}')).toBe(
      'awg_errors_total{kind="invalid-config"} 1',
    );
    expect(line(t, 'awg_network_changes_total ')).toBe('awg_network_changes_total 1');
    expect(line(t, 'awg_confirm_reverts_total ')).toBe('awg_confirm_reverts_total 1');
    expect(line(t, 'awg_tunnel_profile_switches_total{tunnel="idle",reason="no-data"}')).toBe(
      'awg_tunnel_profile_switches_total{tunnel="idle",reason="no-data"} 1',
    );
    m.close();
    expect(core.subscribers).toBe(0);
  });

  it('per-tunnel bytes, up and handshake age, and the state, from status at each scrape', async () => {
    const core = new FakeCore();
    const m = createMetrics(core);
    let t = await m.render();
    expect(line(t, 'awg_tunnel_rx_bytes_total{tunnel="work"}')).toBe(
      'awg_tunnel_rx_bytes_total{tunnel="work"} 123456789012',
    );
    expect(line(t, 'awg_tunnel_tx_bytes_total{tunnel="work"}')).toBe(
      'awg_tunnel_tx_bytes_total{tunnel="work"} 42',
    );
    expect(line(t, 'awg_tunnel_up{tunnel="work"}')).toBe('awg_tunnel_up{tunnel="work"} 1');
    expect(line(t, 'awg_tunnel_up{tunnel="idle"}')).toBe('awg_tunnel_up{tunnel="idle"} 0');
    // the active obfuscation profile (tunnels with profiles only)
    expect(line(t, 'awg_tunnel_profile{tunnel="idle"')).toBe(
      'awg_tunnel_profile{tunnel="idle",profile="b"} 1',
    );
    expect(line(t, 'awg_tunnel_profile{tunnel="work"')).toBeUndefined();
    // the active probe's failures and the sticky rules held on their fallback
    expect(line(t, 'awg_tunnel_probe_failures{tunnel="idle"}')).toBe(
      'awg_tunnel_probe_failures{tunnel="idle"} 3',
    );
    expect(line(t, 'awg_tunnel_probe_last_failure_timestamp_seconds{tunnel="idle"}')).toBe(
      `awg_tunnel_probe_last_failure_timestamp_seconds{tunnel="idle"} ${Date.parse('2026-11-22T04:59:30.000Z') / 1000}`,
    );
    expect(line(t, 'awg_tunnel_probe_failures{tunnel="work"}')).toBeUndefined();
    expect(line(t, 'awg_rule_held_since_timestamp_seconds{')).toBe(
      `awg_rule_held_since_timestamp_seconds{rule="browser",tunnel="idle"} ${Date.parse('2026-11-22T04:58:00.000Z') / 1000}`,
    );
    expect(line(t, 'awg_tunnel_last_handshake_age_seconds{tunnel="work"}')).toBe(
      'awg_tunnel_last_handshake_age_seconds{tunnel="work"} 17',
    );
    // never handshaken: absent, not 0
    expect(line(t, 'awg_tunnel_last_handshake_age_seconds{tunnel="idle"}')).toBeUndefined();
    expect(line(t, 'awg_state{state="converged"}')).toBe('awg_state{state="converged"} 1');
    expect(line(t, 'awg_state{state="failed-closed"}')).toBe('awg_state{state="failed-closed"} 0');
    // a tunnel that disappears from the config disappears from the metrics
    core.statusValue = { ...core.statusValue, state: 'failed-closed', tunnels: [] };
    t = await m.render();
    expect(t).not.toContain('tunnel="work"');
    expect(line(t, 'awg_state{state="failed-closed"}')).toBe('awg_state{state="failed-closed"} 1');
    // public keys, endpoints and messages are not labels
    expect(t).not.toContain(PEER_PUB);
    expect(t).not.toContain('192.0.2.1');
    m.close();
  });

  it('every name ending in _total is a counter, and every cumulative value is one (rate() needs counter semantics)', async () => {
    const core = new FakeCore();
    core.statusValue = {
      ...core.statusValue,
      tunnels: [
        ...core.statusValue.tunnels.map((x) => ({
          ...x,
          linkTraffic: { rxPackets: 4, rxBytes: 400, txPackets: 3, txBytes: 300 },
        })),
        {
          name: 'px',
          type: 'socks5',
          up: true,
          rxBytes: 5,
          txBytes: 6,
          peers: [],
          connectionsActive: 2,
          connectionsTotal: 40,
          dialErrors: 3,
        },
      ],
      placement: {
        state: 'active',
        execs: 900,
        placed: 12,
        errors: 3,
        errorsByKind: { missingCgroup: 1, writeFailed: 2, gateLate: 0, gateFailed: 0 },
        mode: 'gated',
        gateMarks: ['/'],
      },
      dnsStub: {
        port: 15296,
        queries: 31,
        answers: 30,
        servfails: 1,
        upstreamTimeouts: 0,
        learnedAnswers: 9,
        installs: 14,
        installFailures: 0,
        elements: 6,
        names: 3,
      },
      rules: [
        {
          name: 'browser',
          target: 'work',
          route: 'work',
          txPackets: 77,
          txBytes: 9000,
          rxPackets: 88,
          rxBytes: 120000,
        },
        {
          name: 'blk',
          target: '',
          route: 'blocked',
          txPackets: 6,
          txBytes: 340,
          rxPackets: 0,
          rxBytes: 0,
          sets: [
            { name: 'd4_blk', kind: 'static', elements: 99812, packets: 4, bytes: 240 },
            { name: 'l4_blk', kind: 'learned', packets: 2, bytes: 100 },
          ],
        },
        {
          name: 'mail',
          target: 'work',
          route: 'direct',
          txPackets: 0,
          txBytes: 40,
          rxPackets: 0,
          rxBytes: 80,
          connections: 5,
        },
      ],
    };
    const m = createMetrics(core);
    const t = await m.render();
    const types = new Map([...t.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1]!, x[2]!]));
    const totals = [...types].filter(([n]) => n.endsWith('_total'));
    expect(totals.filter(([, type]) => type !== 'counter')).toEqual([]);
    expect(totals.length).toBe(23);
    expect([...types].filter(([n, type]) => type === 'counter' && !n.endsWith('_total'))).toEqual(
      [],
    );
    // the values read at scrape time are the sources' cumulative values, per label set
    expect(line(t, 'awg_tunnel_connections_total{tunnel="px"}')).toBe(
      'awg_tunnel_connections_total{tunnel="px"} 40',
    );
    expect(line(t, 'awg_tunnel_connections{tunnel="px"}')).toBe(
      'awg_tunnel_connections{tunnel="px"} 2',
    );
    expect(line(t, 'awg_tunnel_dial_errors_total{tunnel="px"}')).toBe(
      'awg_tunnel_dial_errors_total{tunnel="px"} 3',
    );
    expect(line(t, 'awg_placement_placed_total ')).toBe('awg_placement_placed_total 12');
    expect(line(t, 'awg_placement_execs_total ')).toBe('awg_placement_execs_total 900');
    expect(line(t, 'awg_placement_errors_total{kind="missingCgroup"}')).toBe(
      'awg_placement_errors_total{kind="missingCgroup"} 1',
    );
    expect(line(t, 'awg_placement_errors_total{kind="writeFailed"}')).toBe(
      'awg_placement_errors_total{kind="writeFailed"} 2',
    );
    expect(line(t, 'awg_placement_errors_total{kind="gateLate"}')).toBe(
      'awg_placement_errors_total{kind="gateLate"} 0',
    );
    expect(line(t, 'awg_dns_queries_total ')).toBe('awg_dns_queries_total 31');
    expect(line(t, 'awg_dns_learned_elements ')).toBe('awg_dns_learned_elements 6');
    expect(line(t, 'awg_placement_mode{mode="gated"}')).toBe('awg_placement_mode{mode="gated"} 1');
    expect(line(t, 'awg_placement_mode{mode="best-effort"}')).toBe(
      'awg_placement_mode{mode="best-effort"} 0',
    );
    expect(
      line(t, 'awg_rule_packets_total{rule="browser",target="work",route="work",direction="tx"}'),
    ).toBe('awg_rule_packets_total{rule="browser",target="work",route="work",direction="tx"} 77');
    expect(
      line(t, 'awg_rule_bytes_total{rule="browser",target="work",route="work",direction="tx"}'),
    ).toBe('awg_rule_bytes_total{rule="browser",target="work",route="work",direction="tx"} 9000');
    expect(
      line(t, 'awg_rule_packets_total{rule="browser",target="work",route="work",direction="rx"}'),
    ).toBe('awg_rule_packets_total{rule="browser",target="work",route="work",direction="rx"} 88');
    expect(
      line(t, 'awg_rule_bytes_total{rule="browser",target="work",route="work",direction="rx"}'),
    ).toBe('awg_rule_bytes_total{rule="browser",target="work",route="work",direction="rx"} 120000');
    // a macOS rule: its connections and payload bytes, no packets (the flow router counts streams)
    expect(line(t, 'awg_rule_connections_total{rule="mail",target="work",route="direct"}')).toBe(
      'awg_rule_connections_total{rule="mail",target="work",route="direct"} 5',
    );
    expect(
      line(t, 'awg_rule_bytes_total{rule="mail",target="work",route="direct",direction="rx"}'),
    ).toBe('awg_rule_bytes_total{rule="mail",target="work",route="direct",direction="rx"} 80');
    expect(t).not.toContain('awg_rule_packets_total{rule="mail"');
    // a destination rule: per set its entries (when read) and hits
    expect(line(t, 'awg_rule_set_elements{rule="blk",set="d4_blk",kind="static"}')).toBe(
      'awg_rule_set_elements{rule="blk",set="d4_blk",kind="static"} 99812',
    );
    expect(t).not.toContain('awg_rule_set_elements{rule="blk",set="l4_blk"');
    expect(line(t, 'awg_rule_set_hits_total{rule="blk",set="l4_blk",kind="learned"}')).toBe(
      'awg_rule_set_hits_total{rule="blk",set="l4_blk",kind="learned"} 2',
    );
    expect(line(t, 'awg_rule_set_bytes_total{rule="blk",set="d4_blk",kind="static"}')).toBe(
      'awg_rule_set_bytes_total{rule="blk",set="d4_blk",kind="static"} 240',
    );
    // per tunnel: the TUN link's counters, both directions; a proxy tunnel has none
    expect(line(t, 'awg_tunnel_link_packets_total{tunnel="work",direction="rx"}')).toBe(
      'awg_tunnel_link_packets_total{tunnel="work",direction="rx"} 4',
    );
    expect(line(t, 'awg_tunnel_link_bytes_total{tunnel="work",direction="tx"}')).toBe(
      'awg_tunnel_link_bytes_total{tunnel="work",direction="tx"} 300',
    );
    expect(t).not.toContain('awg_tunnel_link_bytes_total{tunnel="px"');
    // a second scrape sets, never adds; a restarted engine's counter starts again from its source
    core.statusValue = {
      ...core.statusValue,
      tunnels: core.statusValue.tunnels.map((x) =>
        x.name === 'px' ? { ...x, connectionsTotal: 1 } : x,
      ),
    };
    const t2 = await m.render();
    expect(line(t2, 'awg_tunnel_connections_total{tunnel="px"}')).toBe(
      'awg_tunnel_connections_total{tunnel="px"} 1',
    );
    expect(line(t2, 'awg_placement_placed_total ')).toBe('awg_placement_placed_total 12');
    m.close();
  });

  it('serves GET /metrics on loopback; anything else is 404; a failing status is 500 with the kind only', async () => {
    const core = new FakeCore();
    const s = await startMetricsServer(core, '127.0.0.1:0');
    servers.push(s);
    expect(s.address.host).toBe('127.0.0.1');
    const r = await get(s.address.port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body).toContain('# TYPE awg_reconcile_total counter');
    expect((await get(s.address.port, '/')).status).toBe(404);
    const { AwgError } = await import('../../../src/errors.js');
    core.fail.status = new AwgError('driver', 'secret detail /etc/awg/work.key');
    const bad = await get(s.address.port, '/metrics');
    expect(bad.status).toBe(500);
    expect(bad.body).toBe('awg: metrics unavailable: driver\n');
  });

  it('listen addresses: loopback by default', () => {
    expect(parseListen('9586')).toEqual({ host: '127.0.0.1', port: 9586, loopback: true });
    expect(parseListen(':9586')).toEqual({ host: '127.0.0.1', port: 9586, loopback: true });
    expect(parseListen('[::1]:9586')).toEqual({ host: '::1', port: 9586, loopback: true });
    expect(parseListen('0.0.0.0:9586')).toEqual({ host: '0.0.0.0', port: 9586, loopback: false });
    expect(() => parseListen('host')).toThrow(/expected host:port/);
    expect(() => parseListen('127.0.0.1:70000')).toThrow(/bad port/);
  });
});
