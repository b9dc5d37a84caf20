/**
 * The canned documents the API tests' FakeCore (server-fake-core.ts) answers with, and that
 * the tests compare against: a plan, a status, an observation record, a Top document and an
 * explanation, each with every shape the wire carries.
 */
import type {
  ExplainDocument,
  ObservationRecord,
  StatusResponse,
  TopDocument,
} from '../../../src/daemon/core.js';
import type { PlanDocument } from '../../../src/model/plan-document.js';

export const SECRET_KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
export const PEER_PUB = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

export function samplePlan(config = '/etc/awg/awg.yaml'): PlanDocument {
  return {
    formatVersion: 1,
    config,
    changes: [
      {
        kind: 'link',
        id: 'link/awg-work',
        action: 'create',
        cause: 'initial',
        reason: 'missing',
        after: { name: 'awg-work', mtu: 1420, kind: 'tun' },
      },
      {
        kind: 'route',
        id: 'route/52001/0.0.0.0/0',
        action: 'update',
        cause: 'drift',
        reason: 'metric differs',
        fields: ['metric'],
        before: { table: 52001, dst: '0.0.0.0/0', metric: 5 },
        after: { table: 52001, dst: '0.0.0.0/0', metric: 0, nested: { a: [1, 'x', null, true] } },
      },
      {
        kind: 'rule',
        id: 'rule/5200',
        action: 'delete',
        cause: 'config',
        reason: 'no longer desired',
        before: { priority: 5200 },
      },
    ],
    summary: { create: 1, update: 1, replace: 0, delete: 1, drift: 1, config: 1 },
    foreign: [
      {
        kind: 'link',
        id: 'link/awg-old',
        relation: 'conflict',
        description: 'exists without our marker',
      },
    ],
    warnings: ['endpoint vpn.example.com resolved to 2 addresses; using the first'],
  };
}

export function sampleStatus(): StatusResponse {
  return {
    state: 'converged',
    configPath: '/etc/awg/awg.yaml',
    lastReconcile: { at: '2026-11-22T05:00:00.000Z', outcome: 'unchanged', durationMs: 12 },
    objects: [
      { kind: 'link', id: 'link/awg-work' },
      { kind: 'route', id: 'route/52001/0.0.0.0/0' },
    ],
    tunnels: [
      {
        name: 'work',
        type: 'wireguard',
        link: 'awg-work',
        up: true,
        lastHandshakeAgeSec: 17,
        rxBytes: 123456789012,
        txBytes: 42,
        peers: [
          {
            publicKey: PEER_PUB,
            endpoint: '192.0.2.1:51820',
            persistentKeepalive: '25',
            lastHandshakeAgeSec: 17,
            rxBytes: 123456789012,
            txBytes: 42,
          },
        ],
        linkTraffic: { rxPackets: 90000000000, rxBytes: 120000000000, txPackets: 1, txBytes: 40 },
      },
      {
        name: 'idle',
        type: 'amneziawg',
        up: false,
        rxBytes: 0,
        txBytes: 0,
        peers: [],
        profile: 'b',
        profileSwitches: [
          { at: '2026-11-22T04:59:00.000Z', from: 'a', to: 'b', reason: 'handshake' },
        ],
        probe: {
          failures: 3,
          lastFailure: 'tcp 10.9.0.1:80: no answer within 5000 ms',
          lastFailureAt: '2026-11-22T04:59:30.000Z',
        },
        heldRules: [{ rule: 'browser', since: '2026-11-22T04:58:00.000Z' }],
      },
    ],
    rules: [
      {
        name: 'browser',
        target: 'work',
        route: 'work',
        txPackets: 3,
        txBytes: 180,
        rxPackets: 2 ** 40,
        rxBytes: 2 ** 50,
      },
      // macOS: the flow router's connections (optional on the wire; absent above)
      {
        name: 'mail',
        target: 'work',
        route: 'direct',
        txPackets: 0,
        txBytes: 4,
        rxPackets: 0,
        rxBytes: 8,
        connections: 2,
      },
    ],
    limits: [
      {
        pid: 4242,
        upload: 2_000_000,
        download: 1_000_000,
        group: 'awg/browsers/_limit-4242',
        name: 'firefox',
        path: '/usr/lib/firefox/firefox',
        uid: 1000,
        since: '2026-11-22T04:59:00.000Z',
        processes: 3,
      },
      // one direction only: the other is absent on the wire too
      {
        pid: 77,
        download: 8_000,
        group: 'awg/_limit-77',
        name: 'rsync',
        path: '/usr/bin/rsync',
        uid: 0,
        since: '2026-11-22T04:59:30.000Z',
        processes: 1,
      },
    ],
  };
}

/** a record with a spec of each shape on the wire: nested objects, nulls, fingerprints */
export function sampleObservation(): ObservationRecord {
  const engine = {
    kind: 'engine' as const,
    id: 'engine/work',
    deps: ['link/awg-work'],
    spec: {
      tunnel: 'work',
      type: 'wireguard' as const,
      link: 'awg-work',
      config: {
        privateKey: 'fp:0123456789abcdef',
        listenPort: 0,
        fwmark: 0x0a000000,
        peers: [
          {
            publicKey: PEER_PUB,
            presharedKey: null,
            endpoint: '192.0.2.1:51820',
            allowedIPs: ['0.0.0.0/0'],
            persistentKeepalive: 25,
          },
        ],
      },
    },
  };
  return {
    kind: 'awg-observation',
    version: 1,
    host: 'laptop-1',
    recordedAt: '2026-11-22T05:00:00.000Z',
    observed: {
      resources: [
        engine,
        {
          kind: 'sysctl',
          id: 'sysctl/net.ipv4.ip_forward',
          deps: [],
          spec: { key: 'net.ipv4.ip_forward', value: '1' },
        },
      ],
      foreign: [
        {
          kind: 'link',
          id: 'link/awg-old',
          relation: 'conflict',
          description: 'exists without our marker',
        },
      ],
    },
    lastApplied: [engine],
    facts: {
      dnsManager: 'resolved',
      cgroupNftPrefix: '',
      resolved: { 'vpn.example.org': ['192.0.2.1'] },
    },
    claims: {
      routeProtocol: 0xa7,
      tableBase: 52000,
      bandSize: 100,
      rulePriority: 5200,
      fwmarkMask: 0x0f000000,
      nftTable: 'awg',
      linkPrefix: 'awg-',
      cgroupRoot: 'awg',
    },
    revision: 'a'.repeat(40),
    rejected: [
      { revision: 'b'.repeat(40), reason: 'tunnel(s) work not up', at: '2026-11-22T04:00:00.000Z' },
    ],
  };
}

/** a monitor document with a process, a rule, a tunnel, a limit and a connection */
export function sampleTop(): TopDocument {
  const t = (
    upload: number,
    download: number,
    sent: number,
    received: number,
    connections: number,
  ) => ({
    upload,
    download,
    sent,
    received,
    connections,
  });
  return {
    at: '2026-11-22T05:00:02.000Z',
    since: '2026-11-22T05:00:00.000Z',
    intervalMs: 1000,
    processes: [
      {
        pid: 4242,
        name: 'firefox',
        exe: '/usr/lib/firefox/firefox',
        uid: 1000,
        rule: 'browsers',
        route: 'work',
        ...t(1500, 250_000, 3000, 500_000, 2),
        limit: { download: 8_000_000 },
      },
      { pid: 7, name: 'sshd', route: 'direct', ...t(0, 0, 100, 40, 1) },
    ],
    rules: [
      {
        name: 'browsers',
        target: 'work',
        route: 'work',
        processes: 1,
        ...t(1500, 250_000, 3000, 500_000, 2),
      },
    ],
    tunnels: [{ name: 'work', ...t(1500, 250_000, 3000, 500_000, 2) }],
    direct: t(0, 0, 100, 40, 1),
    unattributed: t(0, 10, 0, 20, 0),
    total: t(1500, 250_010, 3100, 500_060, 3),
    connections: [
      {
        id: 'tcp/4/10.0.0.2:40000/192.0.2.1:443/77',
        proto: 'tcp',
        family: 4,
        local: { addr: '10.0.0.2', port: 40000 },
        remote: { addr: '192.0.2.1', port: 443 },
        pid: 4242,
        rule: 'browsers',
        route: 'work',
        upload: 1500,
        download: 250_000,
        sent: 3000,
        received: 500_000,
        started: '2026-11-22T05:00:01.000Z',
      },
      {
        id: 'udp/6/::1:53/::1:5353',
        proto: 'udp',
        family: 6,
        local: { addr: '::1', port: 53 },
        remote: { addr: '::1', port: 5353 },
        route: 'direct',
        upload: 0,
        download: 10,
        sent: 0,
        received: 20,
        closed: true,
      },
    ],
    warnings: ['conntrack accounting is off: UDP counts are missing'],
  };
}

/** an explanation as the daemon gives one: a destination-list rule passed, a program rule decides */
export function sampleExplanation(): ExplainDocument {
  return {
    source: 'daemon',
    pid: 4242,
    subject: { exe: '/usr/bin/curl', uid: 1000, cgroup: '/awg/web' },
    destination: {
      host: 'www.example.net',
      addr: '203.0.113.7',
      port: 443,
      proto: 'tcp',
      resolvedBy: 'learned',
    },
    steps: [
      {
        rule: 'blocked',
        index: 0,
        enabled: true,
        target: 'block',
        program: { fits: 'n/a', why: 'no `match`: every program' },
        destination: {
          fits: false,
          why: "not in the rule's 2 prefixes, and the rule's domains learned no such address",
        },
        verdict: 'no-fit',
      },
      {
        rule: 'web',
        index: 1,
        enabled: true,
        target: 'work',
        program: {
          fits: true,
          why: '/usr/bin/curl fits match.name curl; the process sits in awg/web',
        },
        destination: { fits: 'n/a', why: 'no `to`: every destination' },
        verdict: 'decides',
        why: 'tunnel work is up',
      },
    ],
    decision: { rule: 'web', route: 'work', why: 'rules[1] web: tunnel work is up' },
  };
}
