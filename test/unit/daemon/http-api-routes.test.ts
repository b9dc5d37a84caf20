/**
 * The HTTP API's routes (src/daemon/http/api-routes.ts) against a FakeCore over a real Unix
 * socket: every route answers the document its gRPC call answers, valid against the generated
 * schema/api.openapi.json; each has exactly its RPC's authorisation (root, the socket group,
 * others; `--locked`); bad requests are 400 naming the field. The caller's credentials come
 * from a fake CallerNatives (the real kernel side: test/netns/daemon-authz.test.ts).
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterEach, describe, expect, it } from 'vitest';
import type * as z from 'zod';
import { ProcessDoc, type ApplyRequest } from '../../../src/daemon/api-documents.js';
import { GROUP_POLICY, LOCKED_RPCS, type Rpc } from '../../../src/daemon/authz.js';
import { DaemonClient } from '../../../src/daemon/client.js';
import type { ProcessInfo, TopDocument, TopRequest } from '../../../src/daemon/core.js';
import { ROUTES } from '../../../src/daemon/http/routes.js';
import { MAX_BODY } from '../../../src/daemon/http/server.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { statusDocument, StatusDocument } from '../../../src/daemon/status-document.js';
import { AwgError } from '../../../src/errors.js';
import { linuxCallerNatives, type PeerCred } from '../../../src/native/peercred.js';
import { TopDocument as TopDocumentSchema } from '../../../src/procs/top/document.js';
import { FakeCore, sampleTop } from './server-fake-core.js';
import { eventually } from '../../helpers/eventually.js';

const GROUP = 65534;
const ROOT: PeerCred = { pid: 10, uid: 0, gid: 0, groups: [] };
const MEMBER: PeerCred = { pid: 11, uid: 1000, gid: 1000, groups: [27, GROUP] };
const STRANGER: PeerCred = { pid: 12, uid: 1002, gid: 1002, groups: [27] };

// compile-time: the process list's schema is ProcessInfo (procs/placer.ts), field for field
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const processDocIsProcessInfo: Same<z.infer<typeof ProcessDoc>, ProcessInfo> = true;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** a monitor that answers each Top call with `doc`, synchronously or on a later turn */
class TopCore extends FakeCore {
  doc: TopDocument = sampleTop();
  sync = false;
  override top(
    req: TopRequest,
    listener: (d: TopDocument) => void,
    onEnd: (err?: AwgError) => void,
  ): () => void {
    if (this.sync) listener(this.doc);
    const stop = super.top(req, listener, onEnd);
    if (!this.sync) setImmediate(() => this.pushTop(this.doc));
    return stop;
  }
}

interface Served {
  core: FakeCore;
  path: string;
  log: string[];
  as(p: PeerCred): Served;
  call(
    method: string,
    url: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; headers: Record<string, unknown>; json: Record<string, unknown> }>;
}

async function serve(
  core: FakeCore = new TopCore(),
  o: { locked?: boolean } = {},
): Promise<Served> {
  const d = mkdtempSync(join(tmpdir(), 'awg-http-routes-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  const path = join(d, 'awg.sock');
  let who = ROOT;
  const log: string[] = [];
  const server = await startApiServer(core, {
    socketPath: path,
    group: GROUP,
    callers: { peer: () => who, acl: linuxCallerNatives.acl },
    log: (level, message) => log.push(`${level}: ${message}`),
    ...(o.locked ? { locked: true } : {}),
  });
  cleanups.push(() => server.close());
  let caller = ROOT;
  const s: Served = {
    core,
    path,
    log,
    as(p) {
      caller = p;
      return s;
    },
    call(method, url, body, headers = {}) {
      // the caller is read when the connection is accepted: one connection per request
      who = caller;
      const text =
        body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      return new Promise((resolve, reject) => {
        const r = request(
          {
            socketPath: path,
            method,
            path: url,
            agent: false,
            headers: {
              ...(text !== undefined ? { 'content-type': 'application/json' } : {}),
              ...headers,
            },
          },
          (res) => {
            let t = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (t += c));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                headers: res.headers,
                json: JSON.parse(t) as Record<string, unknown>,
              }),
            );
          },
        );
        r.on('error', reject);
        r.end(text);
      });
    },
  };
  return s;
}

const openapi = JSON.parse(
  readFileSync(new URL('../../../schema/api.openapi.json', import.meta.url), 'utf8'),
) as { paths: Record<string, Record<string, unknown>> };
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
ajv.addSchema({ ...openapi, $id: 'awg-api' });
const pointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');
/** the answer of `method path` as schema/api.openapi.json says it */
function checkAgainstSchema(method: string, path: string, status: number, body: unknown): void {
  const where =
    status === 200
      ? `awg-api#/paths/${pointer(path)}/${method.toLowerCase()}/responses/200/content/application~1json/schema`
      : 'awg-api#/components/responses/Error/content/application~1json/schema';
  const v = ajv.getSchema(where);
  expect(v, where).toBeDefined();
  expect(v!(body), `${method} ${path}: ${JSON.stringify(v!.errors)}`).toBe(true);
}

const CONFIG = '/etc/awg/awg.yaml';
/** a request each route accepts from root */
const GOOD: Record<string, unknown> = {
  'POST /api/limit': { pid: 4242, download: 1_000_000 },
  'POST /api/diff': { configPath: CONFIG },
  'POST /api/apply': { configPath: CONFIG, confirmTimeoutSec: 30 },
};
/** the query a GET route needs */
const QUERY: Record<string, string> = {
  'GET /api/explain': '?pid=4242&to=www.example.net:443',
};
const withQuery = (r: { method: string; path: string }) =>
  r.path + (QUERY[`${r.method} ${r.path}`] ?? '');

describe('the HTTP API’s routes and the RPCs', () => {
  /** RPCs without an HTTP route here, and why */
  const NO_ROUTE: Partial<Record<Rpc, string>> = {
    // the caller's own pid is routed while its call is open (macOS): a process-bound
    // registration; `awg exec` makes it over gRPC, and the socket group may not
    Exec: 'process-bound registration, gRPC only',
  };

  it('every RPC but Exec has a route; every route names an RPC and has its schema', () => {
    const routed = new Set(ROUTES.map((r) => r.rpc));
    for (const rpc of Object.keys(GROUP_POLICY) as Rpc[])
      if (!(rpc in NO_ROUTE)) expect(routed.has(rpc), `${rpc} has no route`).toBe(true);
    for (const r of ROUTES) {
      expect(Object.keys(GROUP_POLICY)).toContain(r.rpc);
      expect(openapi.paths[r.path]?.[r.method.toLowerCase()]).toMatchObject({
        'x-awg-rpc': r.rpc,
      });
    }
    // Top streams over gRPC; over HTTP it is one reading per GET (connections, traffic)
    expect(
      ROUTES.filter((r) => r.rpc === 'Top')
        .map((r) => r.path)
        .sort(),
    ).toEqual(['/api/connections', '/api/traffic']);
    expect(processDocIsProcessInfo).toBe(true);
  });

  it('every route answers root with its document, valid against schema/api.openapi.json', async () => {
    const s = await serve();
    for (const r of ROUTES) {
      if (!r.response) continue;
      const res = await s.call(r.method, withQuery(r), GOOD[`${r.method} ${r.path}`]);
      expect(res.status, `${r.method} ${r.path}: ${JSON.stringify(res.json)}`).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      checkAgainstSchema(r.method, r.path, res.status, res.json);
      // the same document the route's zod schema describes
      expect(r.response.safeParse(res.json).success).toBe(true);
    }
    // the monitor was left after its one document each time
    expect((s.core as TopCore).tops.size).toBe(0);
  });

  it('GET /api/status is what `awg status --json` prints through the daemon, and gRPC’s Status', async () => {
    const s = await serve();
    const r = await s.call('GET', '/api/status');
    expect(r.json).toEqual(JSON.parse(JSON.stringify(statusDocument(s.core.statusValue))));
    expect(StatusDocument.parse(r.json)).toMatchObject({ source: 'daemon' });
    const client = await DaemonClient.open(s.path);
    cleanups.push(() => client.close());
    expect(r.json).toEqual(JSON.parse(JSON.stringify(statusDocument(await client.status()))));
  });

  it('GET /api/explain: the core’s explanation for pid and HOST:PORT, the same gRPC answers; a bad query is a 400 the core never sees', async () => {
    const s = await serve();
    const r = await s.call('GET', '/api/explain?pid=77&to=[2001:db8::1]:53&udp=true');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ ...s.core.explainValue, pid: 77 });
    expect(s.core.calls.at(-1)).toEqual({
      method: 'explain',
      arg: { pid: 77, host: '2001:db8::1', port: 53, proto: 'udp' },
    });
    const client = await DaemonClient.open(s.path);
    cleanups.push(() => client.close());
    expect(await client.explain({ pid: 77, host: '2001:db8::1', port: 53, proto: 'udp' })).toEqual(
      r.json,
    );
    const n = s.core.calls.length;
    for (const q of ['pid=0&to=a:1', 'pid=1&to=nohostport', 'pid=1', 'pid=1&to=a:99999']) {
      const bad = await s.call('GET', `/api/explain?${q}`);
      expect(bad.status, q).toBe(400);
      checkAgainstSchema('GET', '/api/explain', bad.status, bad.json);
    }
    expect(s.core.calls.length).toBe(n);
  });

  it('GET /api/processes and /api/limits: the lists gRPC answers', async () => {
    const s = await serve();
    expect((await s.call('GET', '/api/processes')).json).toEqual({
      processes: s.core.processes,
    });
    await s.call('POST', '/api/limit', { pid: 77, upload: 8000 });
    expect((await s.call('GET', '/api/limits')).json).toEqual({ limits: s.core.limits });
    expect(s.core.limits.map((l) => l.pid)).toEqual([77]);
  });

  it('GET /api/connections: each connection with its process’s name, rule, route, bytes and start; one reading, then unsubscribed', async () => {
    const s = await serve();
    const core = s.core as TopCore;
    const r = await s.call('GET', '/api/connections?interval=500');
    expect(r.status).toBe(200);
    const conns = r.json.connections as Record<string, unknown>[];
    expect(conns[0]).toMatchObject({
      pid: 4242,
      process: { pid: 4242, name: 'firefox', exe: '/usr/lib/firefox/firefox' },
      rule: 'browsers',
      route: 'work',
      sent: 3000,
      received: 500_000,
      upload: 1500,
      download: 250_000,
      started: '2026-11-22T05:00:01.000Z',
    });
    // unattributed: no process
    expect(conns[1]).not.toHaveProperty('process');
    expect(r.json).toMatchObject({ at: core.doc.at, since: core.doc.since, intervalMs: 1000 });
    expect(core.calls.filter((c) => c.method.startsWith('top'))).toEqual([
      { method: 'top', arg: { intervalMs: 500, connections: true } },
      { method: 'top-ended' },
    ]);
    // a monitor that answers at once (before core.top returns) is left too
    core.sync = true;
    expect((await s.call('GET', '/api/connections')).status).toBe(200);
    expect(core.tops.size).toBe(0);
    expect(core.calls.filter((c) => c.method === 'top').at(-1)!.arg).toEqual({
      intervalMs: 1000,
      connections: true,
    });
  });

  it('GET /api/traffic: the monitor’s document without connections', async () => {
    const s = await serve();
    const core = s.core as TopCore;
    core.doc = { ...sampleTop(), connections: [] };
    const r = await s.call('GET', '/api/traffic?interval=5000');
    expect(r.status).toBe(200);
    expect(TopDocumentSchema.parse(r.json)).toEqual(core.doc);
    expect(core.calls.find((c) => c.method === 'top')!.arg).toEqual({
      intervalMs: 5000,
      connections: false,
    });
  });

  it('?interval out of range or not a number: 400 naming it, and no monitor is started', async () => {
    const s = await serve();
    for (const q of ['interval=50', 'interval=60000', 'interval=abc', 'interval=1.5']) {
      const r = await s.call('GET', `/api/traffic?${q}`);
      expect(r.status, q).toBe(400);
      expect((r.json.error as { message: string }).message).toMatch(/^query: interval: /);
      checkAgainstSchema('GET', '/api/traffic', r.status, r.json);
    }
    expect(s.core.calls.filter((c) => c.method === 'top')).toEqual([]);
  });

  it('the monitor ends before its first reading: the error’s status; the client goes away: the subscription ends', async () => {
    const core = new FakeCore();
    const s = await serve(core);
    const pending = s.call('GET', '/api/connections');
    await eventually(() => expect(core.tops.size).toBe(1));
    core.endTops(new AwgError('driver', 'cannot read the conntrack table'));
    const r = await pending;
    expect(r.status).toBe(503);
    expect(r.json).toEqual({
      error: { kind: 'driver', message: 'cannot read the conntrack table' },
    });
    // a client that disconnects while waiting
    const req = request({ socketPath: s.path, path: '/api/traffic', agent: false });
    req.on('error', () => {});
    req.end();
    await eventually(() => expect(core.tops.size).toBe(1));
    req.destroy();
    await eventually(() => expect(core.tops.size).toBe(0));
  });

  it('POST /api/apply, /api/diff, /api/down, /api/confirm, /api/limit reach the core with the request', async () => {
    const s = await serve();
    expect((await s.call('POST', '/api/diff', { configPath: CONFIG })).json).toEqual(
      JSON.parse(JSON.stringify(s.core.diffValue)),
    );
    const dry = await s.call('POST', '/api/apply', { configPath: CONFIG, dryRun: true });
    expect(dry.json).toMatchObject({ outcome: 'planned', mutations: 4 });
    const a = await s.call('POST', '/api/apply', { configPath: CONFIG, confirmTimeoutSec: 30 });
    expect(a.json).toMatchObject({ confirmDeadline: '2026-11-22T05:00:30.000Z' });
    expect((await s.call('POST', '/api/confirm')).json).toEqual({ confirmed: true });
    expect((await s.call('POST', '/api/confirm', {})).json).toEqual({ confirmed: true });
    expect((await s.call('POST', '/api/down')).json).toEqual(s.core.downValue);
    const l = await s.call('POST', '/api/limit', { pid: 4242, download: 1_000_000 });
    expect(l.json).toMatchObject({ changed: true, limit: { pid: 4242, download: 1_000_000 } });
    expect(await s.call('POST', '/api/limit', { pid: 4242, clear: true })).toMatchObject({
      status: 200,
      json: { changed: true },
    });
    expect(s.core.calls.map((c) => c.method)).toEqual([
      'diff',
      'apply',
      'apply',
      'confirm',
      'confirm',
      'down',
      'limit',
      'limit',
    ]);
    expect(s.core.calls[1]!.arg).toEqual({ configPath: CONFIG, dryRun: true });
    expect(s.core.calls[6]!.arg).toEqual({
      req: { pid: 4242, download: 1_000_000 },
      caller: { uid: 0, root: true },
    });
    // the mutations are audited as over gRPC
    expect(s.log.filter((l) => l.startsWith('info: API'))).toEqual([
      'info: API Apply by uid 0 (gid 0, pid 10)',
      'info: API Apply by uid 0 (gid 0, pid 10)',
      'info: API Confirm by uid 0 (gid 0, pid 10)',
      'info: API Confirm by uid 0 (gid 0, pid 10)',
      'info: API Down by uid 0 (gid 0, pid 10)',
      'info: API Limit by uid 0 (gid 0, pid 10)',
      'info: API Limit by uid 0 (gid 0, pid 10)',
    ]);
  });

  it('bad bodies are 400 naming the field, before the core (or the trust check) sees them', async () => {
    const s = await serve();
    const bad: [string, unknown, RegExp][] = [
      ['/api/apply', {}, /^request body: configPath: /],
      ['/api/apply', { configPath: 'awg.yaml' }, /configPath: config path must be absolute/],
      ['/api/apply', { configPath: '' }, /configPath: config path missing/],
      ['/api/apply', { configPath: CONFIG, dryRun: 'yes' }, /dryRun: /],
      ['/api/apply', { configPath: CONFIG, confirmTimeoutSec: -1 }, /confirmTimeoutSec: /],
      ['/api/apply', { configPath: CONFIG, force: true }, /Unrecognized key.*force/],
      ['/api/diff', { configPath: 7 }, /configPath: /],
      ['/api/limit', { pid: 0, download: 1000 }, /pid: /],
      ['/api/limit', { pid: 'x' }, /pid: /],
      ['/api/limit', { pid: 5, clear: true, upload: 1000 }, /clear: clear takes no upload/],
      ['/api/limit', { pid: 5, upload: 1.5 }, /upload: /],
      ['/api/down', { now: true }, /Unrecognized key/],
      ['/api/apply', [CONFIG], /must be a JSON object/],
      ['/api/apply', '{"configPath": ', /not JSON/],
    ];
    for (const [path, body, message] of bad) {
      const r = await s.call('POST', path, body);
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      const err = r.json.error as { kind: string; message: string; issues?: { path: string }[] };
      expect(err.kind).toBe('invalid-config');
      expect(err.message).toMatch(message);
      checkAgainstSchema('POST', path, r.status, r.json);
    }
    // the field is an issue too, for a form to point at
    const r = await s.call('POST', '/api/apply', { configPath: 'rel.yaml' });
    expect((r.json.error as { issues: unknown[] }).issues).toEqual([
      {
        file: 'request body',
        path: 'configPath',
        message: 'config path must be absolute',
        severity: 'error',
      },
    ]);
    expect(s.core.calls).toEqual([]);
  });

  it('a body that is not application/json, or too large, is 400', async () => {
    const s = await serve();
    const form = await s.call('POST', '/api/diff', `configPath=${CONFIG}`, {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(form.status).toBe(400);
    expect(form.json).toMatchObject({
      error: { kind: 'invalid-config', message: 'a request body must be application/json' },
    });
    const none = await s.call('POST', '/api/diff', JSON.stringify({ configPath: CONFIG }), {
      'content-type': 'text/plain',
    });
    expect(none.status).toBe(400);
    const big = JSON.stringify({ configPath: CONFIG, pad: 'x'.repeat(MAX_BODY) });
    const r = await s.call('POST', '/api/diff', big);
    expect(r.status).toBe(400);
    expect((r.json.error as { message: string }).message).toBe(
      `request body larger than ${MAX_BODY} bytes`,
    );
    expect(s.core.calls).toEqual([]);
  });

  it('unknown paths are 404; a route’s other method is 405 with Allow', async () => {
    const s = await serve();
    const nf = await s.call('GET', '/api/statuses');
    expect(nf.status).toBe(404);
    checkAgainstSchema('GET', '/api/status', nf.status, nf.json);
    for (const [method, path, allow] of [
      ['GET', '/api/apply', 'POST'],
      ['POST', '/api/status', 'GET'],
      ['PUT', '/api/limit', 'POST'],
      ['DELETE', '/api/connections', 'GET'],
    ] as const) {
      const r = await s.call(method, path);
      expect(r.status, `${method} ${path}`).toBe(405);
      expect(r.headers.allow).toBe(allow);
    }
  });
});

describe('authorisation: exactly the gRPC call’s', () => {
  const requestOf = (r: (typeof ROUTES)[number]) => GOOD[`${r.method} ${r.path}`];

  it('someone outside the socket group gets 403 from every route, and the core is never asked', async () => {
    const s = await serve();
    for (const r of ROUTES) {
      const res = await s.as(STRANGER).call(r.method, withQuery(r), requestOf(r));
      expect(res.status, `${r.method} ${r.path}`).toBe(403);
      expect(res.json.error).toMatchObject({
        kind: 'permission',
        message: `permission denied: ${r.rpc} for uid 1002 (gid 1002, pid 12): only root and members of group ${GROUP} may use this socket`,
      });
      checkAgainstSchema(r.method, r.path, res.status, res.json);
    }
    expect(s.core.calls).toEqual([]);
    expect(s.log.filter((l) => l.startsWith('warn:'))).toHaveLength(ROUTES.length);
  });

  it('a socket-group member reads state; cannot Down, Confirm root’s apply, or Apply/Diff an untrusted config; Limit carries its uid', async () => {
    const s = await serve();
    for (const path of ['/api/status', '/api/processes', '/api/limits', '/api/traffic'])
      expect((await s.as(MEMBER).call('GET', path)).status, path).toBe(200);
    expect((await s.as(MEMBER).call('GET', '/api/connections')).status).toBe(200);
    const down = await s.as(MEMBER).call('POST', '/api/down');
    expect(down.status).toBe(403);
    expect((down.json.error as { message: string }).message).toBe(
      'permission denied: Down for uid 1000 (gid 1000, pid 11): Down removes every tunnel and the kill switch; only root may',
    );
    // root's pending apply (over HTTP) is root's to confirm
    await s.as(ROOT).call('POST', '/api/apply', { configPath: CONFIG, confirmTimeoutSec: 60 });
    const confirm = await s.as(MEMBER).call('POST', '/api/confirm');
    expect(confirm.status).toBe(403);
    expect((confirm.json.error as { message: string }).message).toContain(
      'may confirm only an apply it made itself',
    );
    // a config in a world-writable directory: refused before anything reads it
    const d = mkdtempSync(join(tmpdir(), 'awg-http-untrusted-'));
    cleanups.push(() => rmSync(d, { recursive: true, force: true }));
    const file = join(d, 'awg.yaml');
    writeFileSync(file, 'version: 1\n');
    for (const path of ['/api/apply', '/api/diff']) {
      const r = await s.as(MEMBER).call('POST', path, { configPath: file, dryRun: true });
      // (Diff takes no dryRun: 400 before the trust check; Apply: 403)
      if (path === '/api/diff') {
        expect(r.status).toBe(400);
        const t = await s.as(MEMBER).call('POST', path, { configPath: file });
        expect(t.status).toBe(403);
        expect((t.json.error as { message: string }).message).toContain(
          `config ${file} is not trusted: directory /tmp is writable by its group and others`,
        );
      } else expect(r.status).toBe(403);
    }
    const l = await s.as(MEMBER).call('POST', '/api/limit', { pid: 4242, download: 8000 });
    expect(l.status).toBe(200);
    expect(s.core.calls.filter((c) => c.method === 'limit').map((c) => c.arg)).toEqual([
      { req: { pid: 4242, download: 8000 }, caller: { uid: 1000, root: false } },
    ]);
    expect(s.core.calls.map((c) => c.method)).not.toContain('down');
    expect(s.core.calls.filter((c) => c.method === 'confirm')).toEqual([]);
  });

  it.runIf(process.geteuid?.() === 0)(
    'a socket-group member may Apply a trusted config and confirm its own apply; root’s Down ends its window',
    async () => {
      // a confirm window that is still open (FakeCore's deadlines are fixed, in the past)
      class Open extends TopCore {
        override async apply(req: ApplyRequest) {
          const r = await super.apply(req);
          return req.confirmTimeoutSec
            ? { ...r, confirmDeadline: new Date(Date.now() + 60_000).toISOString() }
            : r;
        }
      }
      const s = await serve(new Open());
      // a directory only root controls (not under /tmp: world-writable directories are never trusted)
      const d = mkdtempSync('/run/awg-http-trusted-');
      cleanups.push(() => rmSync(d, { recursive: true, force: true }));
      chmodSync(d, 0o755);
      mkdirSync(join(d, 'etc'), { mode: 0o755 });
      const file = join(d, 'etc', 'awg.yaml');
      writeFileSync(file, 'version: 1\n', { mode: 0o644 });
      const a = await s
        .as(MEMBER)
        .call('POST', '/api/apply', { configPath: file, confirmTimeoutSec: 60 });
      expect(a.status, JSON.stringify(a.json)).toBe(200);
      expect((await s.as(MEMBER).call('POST', '/api/confirm')).json).toEqual({ confirmed: true });
      // confirmed: the window is closed, so there is nothing of its own to confirm
      expect((await s.as(MEMBER).call('POST', '/api/confirm')).status).toBe(403);
      await s.as(MEMBER).call('POST', '/api/apply', { configPath: file, confirmTimeoutSec: 60 });
      expect((await s.as(ROOT).call('POST', '/api/down')).status).toBe(200);
      expect((await s.as(MEMBER).call('POST', '/api/confirm')).status).toBe(403);
      const applied = s.core.calls.filter((c) => c.method === 'apply').map((c) => c.arg);
      expect(applied).toEqual<ApplyRequest[]>([
        { configPath: file, confirmTimeoutSec: 60 },
        { configPath: file, confirmTimeoutSec: 60 },
      ]);
    },
  );

  it('--locked: root is refused exactly what LOCKED_RPCS says (Apply but a dry run, Confirm, Down); the rest is served', async () => {
    const s = await serve(new TopCore(), { locked: true });
    // the event stream never ends: its --locked answer (served) is http-events.test.ts's
    for (const r of ROUTES.filter((r) => r.rpc !== 'Watch')) {
      const res = await s.call(r.method, withQuery(r), requestOf(r));
      const refused = LOCKED_RPCS[r.rpc] !== undefined;
      expect(res.status, `${r.method} ${r.path}`).toBe(refused ? 403 : 200);
      if (refused)
        expect((res.json.error as { message: string }).message).toBe(
          `${r.rpc} refused: this daemon is locked to its config repository (awg daemon --locked); change the repository instead`,
        );
    }
    const dry = await s.call('POST', '/api/apply', { configPath: CONFIG, dryRun: true });
    expect(dry.status).toBe(200);
    expect(s.core.calls.map((c) => c.method)).not.toContain('down');
    expect(s.core.calls.filter((c) => c.method === 'apply')).toEqual([
      { method: 'apply', arg: { configPath: CONFIG, dryRun: true } },
    ]);
  });
});
