/** An in-memory DaemonCore for API tests: canned answers, recorded calls, injected events. */
import type {
  ApplyRequest,
  ApplyResponse,
  DaemonCore,
  DaemonEvent,
  ExplainDocument,
  ExplainRequest,
  LimitCaller,
  LimitInfo,
  LimitRequest,
  LimitResponse,
  ObservationRecord,
  ProcessInfo,
  StatusResponse,
  TopDocument,
  TopRequest,
  UpdateListsResponse,
} from '../../../src/daemon/core.js';
import type { AwgError } from '../../../src/errors.js';
import type { ExecChoice } from '../../../src/model/match.js';
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

export const ALL_EVENTS: DaemonEvent[] = [
  { type: 'reconcile-started', at: '2026-11-22T05:00:00.000Z', reason: 'drift-timer' },
  {
    type: 'reconcile-finished',
    at: '2026-11-22T05:00:00.100Z',
    reason: 'confirm-timeout',
    outcome: 'converged',
    durationMs: 100,
    summary: { create: 1, update: 0, replace: 0, delete: 0, drift: 0, config: 1 },
  },
  {
    type: 'reconcile-finished',
    at: '2026-11-22T05:00:00.200Z',
    reason: 'retry',
    outcome: 'failed',
    durationMs: 7,
    summary: { create: 0, update: 0, replace: 0, delete: 0, drift: 0, config: 0 },
    error: { kind: 'driver', message: 'ip route failed' },
  },
  {
    type: 'drift',
    at: '2026-11-22T05:00:01.000Z',
    ids: ['route/52001/0.0.0.0/0', 'rule/5200'],
    repaired: true,
  },
  { type: 'network-changed', at: '2026-11-22T05:00:02.000Z', detail: 'link eth0 up' },
  {
    type: 'config-changed',
    at: '2026-11-22T05:00:03.000Z',
    path: '/etc/awg/awg.yaml',
    valid: false,
  },
  { type: 'tunnel', at: '2026-11-22T05:00:04.000Z', tunnel: 'work', state: 'up' },
  { type: 'tunnel', at: '2026-11-22T05:00:04.500Z', tunnel: 'work', state: 'down' },
  { type: 'handshake', at: '2026-11-22T05:00:05.000Z', tunnel: 'work', peer: PEER_PUB },
  {
    type: 'profile',
    at: '2026-11-22T05:00:05.500Z',
    tunnel: 'idle',
    from: 'a',
    to: 'b',
    reason: 'no-data',
  },
  {
    type: 'sticky',
    at: '2026-11-22T05:00:05.600Z',
    rule: 'browser',
    tunnel: 'work',
    held: true,
    since: '2026-11-22T05:00:01.000Z',
  },
  {
    type: 'sticky',
    at: '2026-11-22T05:00:05.700Z',
    rule: 'browser',
    tunnel: 'work',
    held: false,
    since: '2026-11-22T05:00:01.000Z',
    reason: 'network',
  },
  { type: 'confirm-pending', at: '2026-11-22T05:00:06.000Z', deadline: '2026-11-22T05:01:06.000Z' },
  {
    type: 'rollout',
    at: '2026-11-22T05:00:06.100Z',
    revision: 'b'.repeat(40),
    state: 'waiting',
    wave: 2,
    dueAt: '2026-11-22T05:15:00.000Z',
    message: 'waiting for wave 2 (wave-2) at 2026-11-22T05:15:00.000Z',
  },
  {
    type: 'rollout',
    at: '2026-11-22T05:15:00.100Z',
    revision: 'b'.repeat(40),
    state: 'applying',
    message: 'wave 2 is due',
  },
  {
    type: 'reverted',
    at: '2026-11-22T05:01:06.000Z',
    reason: 'confirm timeout expired without confirm()',
  },
  {
    type: 'error',
    at: '2026-11-22T05:01:07.000Z',
    kind: 'invalid-config',
    message: 'awg.yaml:3:5: tunnels.work.peers: required',
  },
  {
    type: 'traffic',
    at: '2026-11-22T05:01:08.000Z',
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
    ],
    tunnels: [
      {
        tunnel: 'work',
        rxBytes: 5,
        txBytes: 6,
        link: { rxPackets: 1, rxBytes: 2, txPackets: 3, txBytes: 4 },
      },
      { tunnel: 'px', rxBytes: 0, txBytes: 0 },
    ],
  },
  {
    type: 'limit',
    at: '2026-11-22T05:01:09.000Z',
    pid: 4242,
    action: 'added',
    upload: 2_000_000,
    download: 1_000_000,
  },
  { type: 'limit', at: '2026-11-22T05:01:10.000Z', pid: 4242, action: 'changed', download: 8_000 },
  {
    type: 'limit',
    at: '2026-11-22T05:01:11.000Z',
    pid: 4242,
    action: 'removed',
    download: 8_000,
    reason: 'exited',
  },
  {
    type: 'gap',
    at: '2026-11-22T05:00:02.500Z',
    after: '1a2b3c4d.17',
    reason: 'the daemon restarted',
  },
  {
    type: 'list',
    at: '2026-11-22T05:01:12.000Z',
    list: 'https://l.example/a',
    result: 'fetched',
    entries: 41_203,
  },
  {
    type: 'list',
    at: '2026-11-22T05:01:13.000Z',
    list: 'https://l.example/a',
    result: 'failed',
    error: 'HTTP 503',
    refused: true,
  },
  {
    type: 'revision-rejected',
    at: '2026-11-22T05:00:00.000Z',
    revision: 'b'.repeat(40),
    reason: 'tunnel(s) work not up within 60s of the apply',
    revertedTo: 'a'.repeat(40),
  },
  {
    type: 'revision-rejected',
    at: '2026-11-22T05:00:00.000Z',
    revision: 'c'.repeat(40),
    reason: 'git (192.0.2.9:22) not reached within 60s of the apply',
  },
  { type: 'reconcile-started', at: '2026-11-22T05:00:00.000Z', reason: 'revision-rejected' },
];

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

export class FakeCore implements DaemonCore {
  readonly calls: { method: string; arg?: unknown }[] = [];
  private readonly listeners = new Set<(e: DaemonEvent, id: string) => void>();
  /** set to make the next call of that method throw */
  fail: Partial<
    Record<
      | 'apply'
      | 'diff'
      | 'status'
      | 'observation'
      | 'down'
      | 'confirm'
      | 'listProcesses'
      | 'routeExec'
      | 'limit'
      | 'listLimits'
      | 'explain'
      | 'updateLists',
      unknown
    >
  > = {};
  /** live awg exec registrations: the pid, the choice, and how the daemon would end one */
  readonly execs = new Map<number, { choice: ExecChoice; end(reason: string): void }>();
  statusValue: StatusResponse = sampleStatus();
  observationValue: ObservationRecord = sampleObservation();
  applyValue: ApplyResponse = { outcome: 'converged', plan: samplePlan(), mutations: 4 };
  diffValue = { plan: samplePlan(), changes: true };
  downValue = { removed: ['link/awg-work', 'route/52001/0.0.0.0/0'], mutations: 2 };
  confirmValue = { confirmed: true };
  processes: ProcessInfo[] = [
    {
      pid: 4242,
      name: 'firefox',
      path: '/usr/lib/firefox/firefox',
      rule: 'browsers',
      target: 'work',
      route: 'work',
      limit: { pid: 4242, upload: 2_000_000, download: 1_000_000 },
    },
    {
      pid: 4243,
      name: 'firefox',
      path: '/usr/lib/firefox/firefox',
      rule: 'browsers',
      target: 'work',
      route: 'work',
      limit: { pid: 4242, download: 1_000_000 },
    },
    { pid: 1, name: 'systemd', path: '/usr/lib/systemd/systemd', route: 'direct' },
  ];

  private check(m: keyof FakeCore['fail']): void {
    const f = this.fail[m];
    if (f !== undefined) {
      delete this.fail[m];
      throw f;
    }
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  emit(e: DaemonEvent): void {
    for (const l of this.listeners) l(e, '');
  }

  async apply(req: ApplyRequest): Promise<ApplyResponse> {
    this.calls.push({ method: 'apply', arg: req });
    this.check('apply');
    const r = { ...this.applyValue };
    if (req.dryRun) r.outcome = 'planned';
    if (req.confirmTimeoutSec)
      r.confirmDeadline = new Date(
        Date.parse('2026-11-22T05:00:00.000Z') + req.confirmTimeoutSec * 1000,
      ).toISOString();
    return r;
  }
  async diff(req: { configPath: string }) {
    this.calls.push({ method: 'diff', arg: req });
    this.check('diff');
    return this.diffValue;
  }
  async status(): Promise<StatusResponse> {
    this.calls.push({ method: 'status' });
    this.check('status');
    return this.statusValue;
  }
  async observation(): Promise<ObservationRecord> {
    this.calls.push({ method: 'observation' });
    this.check('observation');
    return this.observationValue;
  }
  async down() {
    this.calls.push({ method: 'down' });
    this.check('down');
    return this.downValue;
  }
  async confirm() {
    this.calls.push({ method: 'confirm' });
    this.check('confirm');
    return this.confirmValue;
  }
  async listProcesses(): Promise<ProcessInfo[]> {
    this.calls.push({ method: 'listProcesses' });
    this.check('listProcesses');
    return this.processes;
  }
  limits: LimitInfo[] = [];
  async limit(req: LimitRequest, caller?: LimitCaller): Promise<LimitResponse> {
    this.calls.push({ method: 'limit', arg: { req, caller } });
    this.check('limit');
    this.limits = this.limits.filter((l) => l.pid !== req.pid);
    if (req.clear) return { changed: true };
    const limit: LimitInfo = {
      pid: req.pid,
      ...(req.upload !== undefined ? { upload: req.upload } : {}),
      ...(req.download !== undefined ? { download: req.download } : {}),
      group: `awg/_limit-${req.pid}`,
      name: 'curl',
      path: '/usr/bin/curl',
      uid: caller?.uid ?? 0,
      since: '2026-11-22T05:00:00.000Z',
      processes: 1,
    };
    this.limits.push(limit);
    return { limit, changed: true };
  }
  explainValue: ExplainDocument = sampleExplanation();
  async explain(req: ExplainRequest): Promise<ExplainDocument> {
    this.calls.push({ method: 'explain', arg: req });
    this.check('explain');
    return { ...this.explainValue, pid: req.pid };
  }
  async listLimits(): Promise<LimitInfo[]> {
    this.calls.push({ method: 'listLimits' });
    this.check('listLimits');
    return this.limits;
  }
  updateListsValue: UpdateListsResponse = { results: [], lists: [] };
  async updateLists(req: { list?: string | undefined }): Promise<UpdateListsResponse> {
    this.calls.push({ method: 'updateLists', arg: req });
    this.check('updateLists');
    return this.updateListsValue;
  }
  async routeExec(
    pid: number,
    choice: ExecChoice,
    onEnd: (reason: string) => void,
  ): Promise<() => void> {
    this.calls.push({ method: 'routeExec', arg: { pid, choice } });
    this.check('routeExec');
    this.execs.set(pid, {
      choice,
      end: (reason) => {
        this.execs.delete(pid);
        onEnd(reason);
      },
    });
    return () => {
      this.calls.push({ method: 'exec-ended', arg: { pid } });
      this.execs.delete(pid);
    };
  }
  subscribe(listener: (e: DaemonEvent, id: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** live Top subscriptions */
  readonly tops = new Set<{
    req: TopRequest;
    listener: (d: TopDocument) => void;
    onEnd: (err?: AwgError) => void;
  }>();
  top(
    req: TopRequest,
    listener: (d: TopDocument) => void,
    onEnd: (err?: AwgError) => void,
  ): () => void {
    this.calls.push({ method: 'top', arg: req });
    const t = { req, listener, onEnd };
    this.tops.add(t);
    return () => {
      this.calls.push({ method: 'top-ended' });
      this.tops.delete(t);
    };
  }
  /** a document to every Top subscriber */
  pushTop(d: TopDocument): void {
    for (const t of this.tops) t.listener(d);
  }
  /** the daemon ends every Top call (with an error, or as when it stops) */
  endTops(err?: AwgError): void {
    const all = [...this.tops];
    this.tops.clear();
    for (const t of all) t.onEnd(err);
  }
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
