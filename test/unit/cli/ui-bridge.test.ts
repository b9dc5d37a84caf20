/**
 * The bridge of `awg ui` (src/cli/ui/bridge.ts) against a fake daemon: an HTTP server on a
 * temporary Unix socket that records what reaches it. The defences (token, Host, Origin,
 * POST content type), the headers of every answer (CSP, no CORS), the proxying of JSON,
 * POSTs and the SSE stream (chunks arrive one by one, not buffered to the end), and a daemon
 * that is down (503 JSON).
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowser, uiCommand } from '../../../src/cli/commands/ui.js';
import { CSP, startBridge, type Bridge } from '../../../src/cli/ui/bridge.js';
import { packagePath } from '../../../src/util/package-root.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(
  port: number,
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        agent: false,
        method: o.method ?? 'GET',
        headers: { host: `127.0.0.1:${port}`, ...o.headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

describe('awg ui bridge', () => {
  let dir: string;
  let socketPath: string;
  let daemon: Server;
  let bridge: Bridge;
  const seen: Seen[] = [];
  /** the SSE response the fake daemon holds open, and a way to write to it */
  let sse: { write(s: string): void; end(): void } | undefined;
  let sseOpened: () => void = () => undefined;
  let sseClosed: () => void = () => undefined;

  const cookie = () => `awg_ui_${bridge.port}=${bridge.token}`;
  const get = (path: string, headers: Record<string, string> = {}) =>
    http(bridge.port, path, { headers: { cookie: cookie(), ...headers } });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'awgt-ui-'));
    socketPath = join(dir, 'awg.sock');
    daemon = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        if (req.url?.startsWith('/api/events')) {
          res.writeHead(200, {
            'content-type': 'text/event-stream',
            'access-control-allow-origin': '*',
          });
          res.write(': hello\n\n');
          sse = { write: (s) => res.write(s), end: () => res.end() };
          res.on('close', () => sseClosed());
          sseOpened();
          return;
        }
        if (req.url === '/api/apply' && req.method === 'POST') {
          res.writeHead(403, {
            'content-type': 'application/json',
            'access-control-allow-origin': '*',
          });
          res.end(JSON.stringify({ error: { kind: 'permission', message: 'root only' } }));
          return;
        }
        res.writeHead(200, {
          'content-type': 'application/json',
          'access-control-allow-origin': '*',
          'set-cookie': 'daemon=1',
        });
        res.end(JSON.stringify({ state: 'converged', url: req.url, body }));
      });
    });
    await new Promise<void>((r) => daemon.listen(socketPath, r));
    bridge = await startBridge({
      socketPath,
      assetsDir: packagePath('share', 'ui'),
      session: { root: false, uid: 1000 },
    });
  });

  afterAll(async () => {
    sse?.end();
    await bridge?.close();
    await new Promise<void>((r) => daemon.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints a 127.0.0.1 URL with a token of at least 128 bits, different per run', async () => {
    expect(bridge.url).toBe(`http://127.0.0.1:${bridge.port}/?token=${bridge.token}`);
    expect(Buffer.from(bridge.token, 'base64url').length).toBeGreaterThanOrEqual(16);
    const other = await startBridge({
      socketPath,
      assetsDir: packagePath('share', 'ui'),
      session: { root: false, uid: 1000 },
    });
    expect(other.token).not.toBe(bridge.token);
    await other.close();
  });

  it('trades the URL token for an HttpOnly SameSite=Strict cookie and a token-less redirect', async () => {
    const r = await http(bridge.port, `/?token=${bridge.token}`);
    expect(r.status).toBe(303);
    expect(r.headers.location).toBe('/');
    const set = String(r.headers['set-cookie']);
    expect(set).toContain(`awg_ui_${bridge.port}=${bridge.token}`);
    expect(set).toContain('HttpOnly');
    expect(set).toContain('SameSite=Strict');
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('<script type="module" src="/app.js"></script>');
  });

  it('refuses requests without the token, or with a wrong one (403), and reaches no daemon', async () => {
    const before = seen.length;
    expect((await http(bridge.port, '/')).status).toBe(403);
    expect((await http(bridge.port, '/api/status')).status).toBe(403);
    // a token one character off (never the token itself: it may begin with an x)
    const wrong = (bridge.token[0] === 'x' ? 'y' : 'x') + bridge.token.slice(1);
    expect((await http(bridge.port, `/?token=${wrong}`)).status).toBe(403);
    expect(
      (await http(bridge.port, '/api/status', { headers: { cookie: `awg_ui_${bridge.port}=no` } }))
        .status,
    ).toBe(403);
    // a cookie of another run's port does not count
    expect(
      (
        await http(bridge.port, '/api/status', {
          headers: { cookie: `awg_ui_1=${bridge.token}` },
        })
      ).status,
    ).toBe(403);
    expect(seen.length).toBe(before);
    // control: the header works as the cookie does
    expect(
      (await http(bridge.port, '/api/status', { headers: { 'x-awg-token': bridge.token } })).status,
    ).toBe(200);
  });

  it('refuses a foreign Host (DNS rebinding) and a foreign Origin (CSRF), even with the token', async () => {
    const before = seen.length;
    const badHost = await get('/api/status', { host: `evil.example:${bridge.port}` });
    expect(badHost.status).toBe(403);
    expect(badHost.body).toContain('Host');
    expect((await get('/api/status', { host: `127.0.0.1:${bridge.port + 1}` })).status).toBe(403);
    const badOrigin = await get('/api/status', { origin: 'http://evil.example' });
    expect(badOrigin.status).toBe(403);
    expect(badOrigin.body).toContain('Origin');
    expect((await get('/api/status', { origin: `http://localhost:${bridge.port}` })).status).toBe(
      403,
    );
    expect((await get('/api/status', { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    // another server on 127.0.0.1 is the same site (cookies ignore ports), not the same origin
    expect((await get('/api/status', { 'sec-fetch-site': 'same-site' })).status).toBe(403);
    expect(seen.length).toBe(before);
    // control: localhost with its own origin is this bridge
    expect((await get('/api/status', { 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    expect((await get('/', { 'sec-fetch-site': 'none' })).status).toBe(200);
    const ok = await get('/api/status', {
      host: `localhost:${bridge.port}`,
      origin: `http://localhost:${bridge.port}`,
    });
    expect(ok.status).toBe(200);
  });

  it('sends the strict CSP and security headers on every answer, and never a CORS header', async () => {
    const answers = [
      await get('/'),
      await get('/app.js'),
      await get('/app.css'),
      await get('/api/status'),
      await get('/nope'),
      await http(bridge.port, '/'),
    ];
    for (const r of answers) {
      expect(r.headers['content-security-policy']).toBe(CSP);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBe('no-referrer');
      expect(Object.keys(r.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
      // nothing of the daemon's own headers passes
      expect(r.headers['set-cookie'] ?? '').not.toContain('daemon=1');
    }
    expect(CSP).toContain("default-src 'none'");
    expect(CSP).toContain("script-src 'self'");
    expect(CSP).toContain("frame-ancestors 'none'");
    expect(answers[1]!.headers['content-type']).toContain('text/javascript');
  });

  it('proxies GET /api/* with the query, and without the browser cookie or token', async () => {
    const r = await get('/api/processes?all=1');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ state: 'converged', url: '/api/processes?all=1' });
    const last = seen.at(-1)!;
    expect(last.headers.cookie).toBeUndefined();
    expect(last.headers.origin).toBeUndefined();
    expect(JSON.stringify(last.headers)).not.toContain(bridge.token);
  });

  it('tells the page who the user is (/session)', async () => {
    const r = await get('/session');
    expect(JSON.parse(r.body)).toMatchObject({ root: false, uid: 1000, socket: socketPath });
  });

  it('POST: needs this Origin and application/json; passes the body and the daemon answer', async () => {
    const before = seen.length;
    const body = JSON.stringify({ configPath: '/etc/awg/awg.yaml' });
    const json = { cookie: cookie(), 'content-type': 'application/json' };
    const noOrigin = await http(bridge.port, '/api/diff', { method: 'POST', headers: json, body });
    expect(noOrigin.status).toBe(403);
    const form = await http(bridge.port, '/api/diff', {
      method: 'POST',
      headers: {
        ...json,
        origin: `http://127.0.0.1:${bridge.port}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'configPath=/x',
    });
    expect(form.status).toBe(415);
    const other = await http(bridge.port, '/api/down', {
      method: 'POST',
      headers: { ...json, origin: `http://127.0.0.1:${bridge.port}` },
      body: '{}',
    });
    expect(other.status).toBe(405);
    expect(seen.length).toBe(before);

    const ok = await http(bridge.port, '/api/diff', {
      method: 'POST',
      headers: { ...json, origin: `http://127.0.0.1:${bridge.port}` },
      body,
    });
    expect(ok.status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/api/diff', body });
    // the daemon's refusal reaches the page as it is (read-only for non-root)
    const denied = await http(bridge.port, '/api/apply', {
      method: 'POST',
      headers: { ...json, origin: `http://127.0.0.1:${bridge.port}` },
      body,
    });
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body)).toEqual({
      error: { kind: 'permission', message: 'root only' },
    });
  });

  it('pipes the SSE stream as it comes (Last-Event-ID passed on), and ends it with the tab', async () => {
    const opened = new Promise<void>((r) => (sseOpened = r));
    const chunks: string[] = [];
    let gotChunk: () => void = () => undefined;
    /** resolves once the stream so far holds `text` */
    const received = (text: string) =>
      new Promise<void>((r) => {
        gotChunk = () => {
          if (chunks.join('').includes(text)) r();
        };
        gotChunk();
      });
    const req = request({
      host: '127.0.0.1',
      port: bridge.port,
      path: '/api/events?after=abc.3',
      headers: {
        host: `127.0.0.1:${bridge.port}`,
        cookie: cookie(),
        accept: 'text/event-stream',
        'last-event-id': 'abc.3',
      },
    });
    const res = await new Promise<IncomingMessage>((resolve) => {
      req.on('response', resolve);
      req.end();
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      chunks.push(c);
      gotChunk();
    });
    await opened;
    expect(seen.at(-1)).toMatchObject({ url: '/api/events?after=abc.3' });
    expect(seen.at(-1)!.headers['last-event-id']).toBe('abc.3');
    // each event arrives while the stream is still open (no buffering to the end)
    await received(': hello');
    for (const id of ['abc.4', 'abc.5']) {
      const next = received(`id: ${id}`);
      sse!.write(`id: ${id}\nevent: handshake\ndata: {}\n\n`);
      await next;
    }
    const closed = new Promise<void>((r) => (sseClosed = r));
    req.destroy();
    // the daemon's side of the stream ends too
    await closed;
    sse = undefined;
  });

  it('answers 503 JSON while the daemon is down, and 200 again when it is back', async () => {
    sse?.end();
    sse = undefined;
    await new Promise<void>((r) => daemon.close(() => r()));
    const down = await get('/api/status');
    expect(down.status).toBe(503);
    expect(down.headers['content-type']).toContain('application/json');
    expect(JSON.parse(down.body)).toMatchObject({ error: { kind: 'driver' } });
    expect(JSON.parse(down.body).error.message).toContain(socketPath);
    const sseDown = await get('/api/events', { accept: 'text/event-stream' });
    expect(sseDown.status).toBe(503);
    await new Promise<void>((r) => daemon.listen(socketPath, r));
    expect((await get('/api/status')).status).toBe(200);
  });
});

describe('awg ui command', () => {
  const capture = () => {
    const out: string[] = [];
    const err: string[] = [];
    return {
      io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), colour: false },
      out,
      err,
    };
  };

  it('prints the URL with its token, serves until told to stop, exit 0', async () => {
    const c = capture();
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    const done = uiCommand(c.io, { socket: '/nonexistent/awg.sock', open: false }, { until });
    await expect.poll(() => c.out.join('')).toMatch(/awg ui: http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    const url = /(http:\S+)/.exec(c.out.join(''))![1]!;
    const port = Number(new URL(url).port);
    // served: the page for the token; the daemon's absence is a 503 on the API, not a crash
    expect((await http(port, new URL(url).pathname + new URL(url).search)).status).toBe(303);
    const token = new URL(url).searchParams.get('token')!;
    const api = await http(port, '/api/status', { headers: { 'x-awg-token': token } });
    expect(api.status).toBe(503);
    stop();
    expect(await done).toBe(0);
    await expect(http(port, '/')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('refuses a --port that is not one (exit 1)', async () => {
    const c = capture();
    expect(
      await uiCommand(c.io, { port: '70000', open: false }, { until: Promise.resolve() }),
    ).toBe(1);
    expect(c.err.join('')).toContain('--port 70000');
  });

  it('opens no browser without a display (Linux)', () => {
    if (process.platform === 'darwin') return;
    expect(openBrowser('http://127.0.0.1:1/', { PATH: '/nonexistent' })).toBe(false);
  });
});
