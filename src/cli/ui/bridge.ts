/**
 * The bridge of `awg ui` (docs/ui.md): an HTTP server on 127.0.0.1 that serves the dashboard's
 * files and passes its API calls on to the daemon's Unix socket, where the daemon authorises
 * them by this process's own credentials (the user who ran `awg ui`). The daemon has no TCP
 * listener; this is the only way a browser reaches it, so every request must prove it came
 * from the page this run printed:
 *
 * - a random per-run token (256 bits) in the printed URL; the first visit trades it for an
 *   HttpOnly SameSite=Strict cookie and a redirect to the URL without it; every request needs
 *   the cookie (or the `x-awg-token` header) or gets 403;
 * - Host must be 127.0.0.1:<port> or localhost:<port> (a rebound DNS name is refused);
 * - Origin, when sent, must be this origin; a POST must send it, and as application/json
 *   (another site's form or fetch cannot); Sec-Fetch-Site, when sent, must be same-origin or
 *   none (a typed or opened URL);
 * - a strict CSP and no CORS header on any answer.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/** headers on every answer of the bridge */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** the dashboard's files (share/ui/), served from memory */
export const ASSETS: Readonly<Record<string, string>> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/dom.js': 'dom.js',
  '/events.js': 'events.js',
  '/lists.js': 'lists.js',
  '/pending.js': 'pending.js',
  '/app.css': 'app.css',
};
const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** the daemon's POST routes the page may call (the daemon still decides who may) */
export const POST_PATHS = new Set(['/api/diff', '/api/apply', '/api/confirm']);

export interface BridgeOptions {
  /** the daemon's API socket */
  socketPath: string;
  /** share/ui */
  assetsDir: string;
  /** 0 (default): a free port */
  port?: number | undefined;
  /** default: 32 random bytes, base64url */
  token?: string | undefined;
  /** what the page is told about the user (root sees the apply panel) */
  session: { root: boolean; uid: number };
}

export interface Bridge {
  port: number;
  token: string;
  /** the URL to open: http://127.0.0.1:<port>/?token=… */
  url: string;
  close(): Promise<void>;
}

const COOKIE = (port: number) => `awg_ui_${port}`;

function sameToken(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function send(
  res: ServerResponse,
  status: number,
  body: string,
  type = 'text/plain; charset=utf-8',
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

function sendJsonError(res: ServerResponse, status: number, kind: string, message: string): void {
  send(
    res,
    status,
    JSON.stringify({ error: { kind, message } }) + '\n',
    'application/json; charset=utf-8',
  );
}

const refuse = (res: ServerResponse, why: string) => send(res, 403, `awg ui: ${why}\n`);

/** Start the bridge on 127.0.0.1. */
export async function startBridge(o: BridgeOptions): Promise<Bridge> {
  const token = o.token ?? randomBytes(32).toString('base64url');
  const assets = new Map<string, { body: Buffer; type: string }>();
  for (const [path, file] of Object.entries(ASSETS)) {
    const ext = file.slice(file.lastIndexOf('.') + 1);
    assets.set(path, { body: readFileSync(join(o.assetsDir, file)), type: TYPES[ext]! });
  }
  let port = 0;
  const upstreams = new Set<IncomingMessage | ReturnType<typeof request>>();

  const server = createServer({ headersTimeout: 10_000, maxHeaderSize: 16 * 1024 }, (req, res) =>
    serve(req, res),
  );
  server.on('clientError', (_e, sock) => sock.destroy());

  function serve(req: IncomingMessage, res: ServerResponse): void {
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`)
      return refuse(res, `Host ${JSON.stringify(host)} is not this bridge's`);
    const origin = req.headers.origin;
    const self = `http://${host}`;
    if (origin !== undefined && origin !== self)
      return refuse(res, `Origin ${JSON.stringify(origin)} is not ${self}`);
    // cookies ignore ports: a page of another local server (127.0.0.1:<other>) is "same-site"
    // and its <script src> or <img> GET carries our cookie without an Origin header
    const fetchSite = req.headers['sec-fetch-site'];
    if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none')
      return refuse(res, `a request from another site (${String(fetchSite)})`);

    const url = new URL(req.url ?? '/', self);
    const given = url.searchParams.get('token');
    if (given !== null) {
      if (!sameToken(given, token)) return refuse(res, 'wrong token');
      url.searchParams.delete('token');
      if (req.method === 'GET' && !url.pathname.startsWith('/api/')) {
        // the token leaves the address bar (and the history); the cookie carries it from here
        res.writeHead(303, {
          ...SECURITY_HEADERS,
          location: url.pathname + url.search,
          'set-cookie': `${COOKIE(port)}=${token}; HttpOnly; SameSite=Strict; Path=/`,
          'content-length': 0,
        });
        res.end();
        return;
      }
    } else {
      const header = req.headers['x-awg-token'];
      const t = typeof header === 'string' ? header : cookieValue(req.headers.cookie, COOKIE(port));
      if (!sameToken(t, token))
        return refuse(res, 'this needs the URL `awg ui` printed (with its token)');
    }

    if (req.method === 'GET' && url.pathname === '/session') {
      return send(
        res,
        200,
        JSON.stringify({ ...o.session, socket: o.socketPath }) + '\n',
        'application/json; charset=utf-8',
      );
    }
    if (req.method === 'GET') {
      const a = assets.get(url.pathname);
      if (a) return send(res, 200, a.body.toString('utf8'), a.type);
      if (url.pathname.startsWith('/api/')) return proxy(req, res, url, undefined);
      return send(res, 404, 'not found\n');
    }
    if (req.method === 'POST' && POST_PATHS.has(url.pathname)) {
      if (origin !== self) return refuse(res, 'a POST must come from the page (Origin)');
      if (!/^application\/json\b/i.test(String(req.headers['content-type'] ?? '')))
        return send(res, 415, 'awg ui: a POST must be application/json\n');
      return proxy(req, res, url, 'application/json');
    }
    send(res, 405, `awg ui: ${req.method} ${url.pathname} is not allowed\n`);
  }

  function proxy(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    contentType: string | undefined,
  ): void {
    const headers: Record<string, string> = { host: 'awg' };
    if (contentType) headers['content-type'] = contentType;
    const accept = req.headers.accept;
    if (accept) headers.accept = accept;
    const last = req.headers['last-event-id'];
    if (typeof last === 'string') headers['last-event-id'] = last;
    const up = request({
      socketPath: o.socketPath,
      method: req.method,
      path: url.pathname + url.search,
      headers,
      // a connection of its own per request: the global agent keeps idle connections, and
      // one the daemon closes as idle (its keep-alive timeout) while a request goes out on it
      // ends in ECONNRESET, a 503 for the page (a Unix socket costs nothing to connect)
      agent: false,
    });
    upstreams.add(up);
    up.on('response', (ur) => {
      upstreams.add(ur);
      const type = String(ur.headers['content-type'] ?? 'application/json; charset=utf-8');
      // only what the page needs passes: no daemon header (and no CORS header) is copied
      res.writeHead(ur.statusCode ?? 502, { ...SECURITY_HEADERS, 'content-type': type });
      if (type.startsWith('text/event-stream')) {
        res.flushHeaders();
        req.socket.setNoDelay(true);
      }
      ur.on('data', (c: Buffer) => res.write(c));
      ur.on('end', () => res.end());
      ur.on('error', () => res.destroy());
      ur.on('close', () => upstreams.delete(ur));
    });
    up.on('error', (e: NodeJS.ErrnoException) => {
      upstreams.delete(up);
      if (res.headersSent) return void res.destroy();
      if (e.code === 'EACCES')
        return sendJsonError(
          res,
          403,
          'permission',
          `the awg daemon socket ${o.socketPath} does not let this user in`,
        );
      sendJsonError(
        res,
        503,
        'driver',
        `the awg daemon is not reachable at ${o.socketPath}: ${e.code ?? e.message}`,
      );
    });
    up.on('close', () => upstreams.delete(up));
    // the browser went away (a closed tab ends its event stream at the daemon too)
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  return {
    port,
    token,
    url: `http://127.0.0.1:${port}/?token=${token}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const u of upstreams) u.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
