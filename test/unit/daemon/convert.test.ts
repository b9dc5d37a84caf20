import * as protoLoader from '@grpc/proto-loader';
import type * as grpc from '@grpc/grpc-js';
import { renderDaemonStatus } from '../../../src/cli/commands/status.js';
import { describe, expect, it } from 'vitest';
import { AwgError, ERROR_KINDS, type ErrorKind } from '../../../src/errors.js';
import {
  applyRequestFromWire,
  applyRequestToWire,
  applyResponseFromWire,
  applyResponseToWire,
  diffResponseFromWire,
  diffResponseToWire,
  downResponseFromWire,
  downResponseToWire,
  errorFromWire,
  errorToWire,
  eventFromWire,
  eventToWire,
  execRequestFromWire,
  execRequestToWire,
  LOADER_OPTIONS,
  processesFromWire,
  processesToWire,
  PROTO_PATH,
  SERVICE_NAME,
  statusFromWire,
  statusToWire,
  topDocumentFromWire,
  topDocumentToWire,
  topRequestFromWire,
  topRequestToWire,
} from '../../../src/daemon/convert.js';
import type { StatusResponse } from '../../../src/daemon/core.js';
import { DAEMON_STATES } from '../../../src/daemon/names.js';
import { ALL_EVENTS, FakeCore, samplePlan, sampleStatus, sampleTop } from './server-fake-core.js';

// Round trips go through the real protobuf encoding, so a field missing from the .proto
// (or a wrong type) is caught here, not only a typo in convert.ts.
const svc = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS)[SERVICE_NAME] as unknown as Record<
  string,
  grpc.MethodDefinition<object, object>
>;

function wire<T>(method: string, side: 'request' | 'response', msg: object): T {
  const m = svc[method]!;
  const bytes = side === 'request' ? m.requestSerialize(msg) : m.responseSerialize(msg);
  return (side === 'request' ? m.requestDeserialize(bytes) : m.responseDeserialize(bytes)) as T;
}

describe('proto ⇄ domain conversion (through the protobuf encoding)', () => {
  it('ApplyRequest', () => {
    for (const r of [
      { configPath: '/etc/awg/awg.yaml' },
      { configPath: '/x.yaml', dryRun: true },
      { configPath: '/ü/x.yaml', confirmTimeoutSec: 120 },
    ]) {
      expect(applyRequestFromWire(wire('Apply', 'request', applyRequestToWire(r)))).toEqual(r);
    }
  });

  it('an ApplyRequest with a confirm timeout over 86400 s (up to the uint32 maximum) is invalid-config', () => {
    for (const sec of [86_401, 2 ** 32 - 1])
      expect(() =>
        applyRequestFromWire(
          wire('Apply', 'request', { configPath: '/x.yaml', confirmTimeoutSec: sec }),
        ),
      ).toThrow(/expected whole seconds from 1 to 86400/);
    expect(
      applyRequestFromWire(
        wire('Apply', 'request', { configPath: '/x.yaml', confirmTimeoutSec: 86_400 }),
      ),
    ).toEqual({ configPath: '/x.yaml', confirmTimeoutSec: 86_400 });
  });

  it('ExecRequest: each choice; none, or an empty name, is invalid-config; ExecRegistered carries the pid', () => {
    for (const c of [{ tunnel: 'work' }, { direct: true as const }, { rule: 'browsers' }])
      expect(execRequestFromWire(wire('Exec', 'request', execRequestToWire(c)))).toEqual(c);
    for (const w of [{}, { tunnel: '' }, { rule: '' }, { direct: false }])
      expect(() => execRequestFromWire(wire('Exec', 'request', w))).toThrow(
        /give exactly one of a tunnel name, direct or a rule name/,
      );
    expect(wire('Exec', 'response', { pid: 4242 })).toEqual({ pid: 4242 });
  });

  it('an ApplyRequest without a config path is invalid-config', () => {
    expect(() => applyRequestFromWire(wire('Apply', 'request', {}))).toThrow(/config path missing/);
  });

  it('ApplyResponse with and without error / deadline; the plan document is identical', () => {
    const plain = { outcome: 'converged', plan: samplePlan(), mutations: 3 };
    expect(applyResponseFromWire(wire('Apply', 'response', applyResponseToWire(plain)))).toEqual(
      plain,
    );
    const full = {
      outcome: 'failed-closed',
      plan: {
        ...samplePlan(),
        config: undefined,
        changes: [],
        summary: { create: 0, update: 0, replace: 0, delete: 0, drift: 0, config: 0 },
        foreign: [],
        warnings: [],
      },
      mutations: 0,
      error: { kind: 'driver', message: 'nft: ä' },
      confirmDeadline: '2026-11-22T05:01:00.000Z',
    };
    delete (full.plan as { config?: string | undefined }).config;
    expect(applyResponseFromWire(wire('Apply', 'response', applyResponseToWire(full)))).toEqual(
      full,
    );
  });

  it('Diff and Down responses', () => {
    const d = { plan: samplePlan(), changes: true };
    expect(diffResponseFromWire(wire('Diff', 'response', diffResponseToWire(d)))).toEqual(d);
    const n = { plan: { ...samplePlan(), changes: [], foreign: [], warnings: [] }, changes: false };
    expect(diffResponseFromWire(wire('Diff', 'response', diffResponseToWire(n)))).toEqual(n);
    const down = { removed: ['a', 'b'], mutations: 2 };
    expect(downResponseFromWire(wire('Down', 'response', downResponseToWire(down)))).toEqual(down);
  });

  it('Status: every state, optional fields absent stay absent, 64-bit byte counters survive', () => {
    for (const state of DAEMON_STATES) {
      const s = { ...sampleStatus(), state };
      expect(statusFromWire(wire('Status', 'response', statusToWire(s)))).toEqual(s);
    }
    const bare: StatusResponse = { state: 'down', objects: [], tunnels: [] };
    expect(statusFromWire(wire('Status', 'response', statusToWire(bare)))).toEqual(bare);
    const stub: StatusResponse = {
      ...sampleStatus(),
      dnsStub: {
        port: 15296,
        queries: 2 ** 40,
        answers: 7,
        servfails: 1,
        upstreamTimeouts: 0,
        learnedAnswers: 3,
        installs: 5,
        installFailures: 0,
        elements: 4,
        names: 2,
      },
    };
    expect(statusFromWire(wire('Status', 'response', statusToWire(stub)))).toEqual(stub);
    const withErr: StatusResponse = {
      ...sampleStatus(),
      lastReconcile: {
        at: 'x',
        outcome: 'failed',
        durationMs: 1,
        error: { kind: 'driver', message: 'm' },
      },
      confirmDeadline: 'd',
    };
    expect(statusFromWire(wire('Status', 'response', statusToWire(withErr)))).toEqual(withErr);
    const host: StatusResponse = {
      ...sampleStatus(),
      hostConditions: [
        {
          kind: 'no-default-route',
          family: 4,
          reach: ['192.168.50.0/24'],
          message: 'no IPv4 default route in the main table: …',
        },
        { kind: 'no-default-route', family: 6, reach: [], message: 'no IPv6 default route …' },
        {
          kind: 'endpoint-unreachable',
          tunnel: 't1',
          address: '10.0.0.9',
          message: 'tunnel t1: endpoint 10.0.0.9 unreachable: no route (Network is unreachable)',
        },
      ],
    };
    expect(statusFromWire(wire('Status', 'response', statusToWire(host)))).toEqual(host);
    expect(renderDaemonStatus(host)).toContain(
      '\nhost: tunnel t1: endpoint 10.0.0.9 unreachable: no route (Network is unreachable)\n',
    );
    // a kind this side does not know (a newer daemon's) is left out
    const w = statusToWire(host);
    w.hostConditions[0]!.kind = 'from-the-future';
    expect(statusFromWire(w).hostConditions?.map((h) => h.kind)).toEqual([
      'no-default-route',
      'endpoint-unreachable',
    ]);
    for (const placement of [
      { state: 'active', execs: 9, placed: 3, errors: 0, mode: 'gated', gateMarks: ['/', '/opt'] },
      {
        state: 'active',
        execs: 9,
        placed: 3,
        errors: 1,
        mode: 'best-effort',
        modeReason: 'exec gate unavailable: fanotify_init: errno 1 (needs CAP_SYS_ADMIN)',
      },
      { state: 'active', execs: 0, placed: 0, errors: 0 },
      {
        state: 'active',
        execs: 9,
        placed: 3,
        errors: 5,
        errorsByKind: { missingCgroup: 2, writeFailed: 0, gateLate: 3, gateFailed: 0 },
      },
    ] as StatusResponse['placement'][]) {
      const s = { ...sampleStatus(), placement };
      expect(statusFromWire(wire('Status', 'response', statusToWire(s)))).toEqual(s);
      expect(renderDaemonStatus(s)).toContain(
        placement!.mode === 'gated'
          ? 'placement: active, gated (exec gate on /, /opt), 3 placed of 9 execs, 0 errors'
          : placement!.mode
            ? 'placement: active, best-effort (exec gate unavailable: fanotify_init: errno 1 (needs CAP_SYS_ADMIN)), 3 placed'
            : placement!.errorsByKind
              ? 'placement: active, 3 placed of 9 execs, 5 errors (missing cgroup 2, gate late 3)\n'
              : 'placement: active, 0 placed of 0 execs',
      );
    }
    // a handshake age of 0 is not "never"
    const zero = {
      ...sampleStatus(),
      tunnels: [{ ...sampleStatus().tunnels[0]!, lastHandshakeAgeSec: 0 }],
    };
    expect(
      statusFromWire(wire('Status', 'response', statusToWire(zero))).tunnels[0]!
        .lastHandshakeAgeSec,
    ).toBe(0);
  });

  it('every event type', () => {
    for (const e of ALL_EVENTS)
      expect(eventFromWire(wire('Watch', 'response', eventToWire(e)))).toEqual(e);
  });

  it('an event type this client does not know is skipped, not misread', () => {
    expect(eventFromWire({ at: 'x', id: '' })).toBeUndefined();
  });

  it('ListProcesses', () => {
    const ps = new FakeCore().processes;
    expect(processesFromWire(wire('ListProcesses', 'response', processesToWire(ps)))).toEqual(ps);
  });

  it('Top: the request, and the document field for field (absent stays absent, limits, closed)', () => {
    const req = { intervalMs: 250, connections: true };
    expect(topRequestFromWire(wire('Top', 'request', topRequestToWire(req)))).toEqual(req);
    // an unset interval is the default second
    expect(topRequestFromWire(wire('Top', 'request', {}))).toEqual({
      intervalMs: 1000,
      connections: false,
    });
    const d = sampleTop();
    expect(topDocumentFromWire(wire('Top', 'response', topDocumentToWire(d)))).toEqual(d);
    const bare = { ...d, processes: [{ ...d.processes[1]! }], connections: [] };
    expect(topDocumentFromWire(wire('Top', 'response', topDocumentToWire(bare)))).toEqual(bare);
  });

  it('a Top document that breaks its schema is malformed', () => {
    const w = wire<Parameters<typeof topDocumentFromWire>[0]>(
      'Top',
      'response',
      topDocumentToWire(sampleTop()),
    );
    expect(() =>
      topDocumentFromWire({ ...w, connections: [{ ...w.connections[0]!, proto: 'sctp' }] }),
    ).toThrow(/malformed API message: TopDocument/);
    expect(() => topDocumentFromWire({ ...w, total: null })).toThrow(/without total/);
  });

  it('an unknown state from the wire is an error, not a silent default', () => {
    expect(() =>
      statusFromWire({
        state: 'STATE_UNSPECIFIED',
        objects: [],
        tunnels: [],
        rules: [],
        limits: [],
        hostConditions: [],
        lists: [],
      }),
    ).toThrow(/malformed/);
  });

  it('errors: each kind maps to its gRPC code and back with issues and hint', () => {
    for (const kind of Object.keys(ERROR_KINDS) as ErrorKind[]) {
      const e = new AwgError(kind, `boom ${kind}`, {
        hint: 'try x',
        issues: [
          { file: 'a.yaml', line: 2, col: 3, path: 'tunnels', message: 'bad', severity: 'error' },
        ],
      });
      const w = errorToWire(e);
      expect(w.code).toBe(ERROR_KINDS[kind].grpcCode);
      const back = errorFromWire(w.code, e.message, w.trailer);
      expect(back).toMatchObject({ kind, message: e.message, hint: 'try x', issues: e.issues });
      // without our trailer the code alone still gives the kind
      expect(errorFromWire(w.code, 'x', undefined).kind).toBe(kind);
    }
    expect(errorFromWire(2, 'unknown', 'not json').kind).toBe('driver');
  });
});
