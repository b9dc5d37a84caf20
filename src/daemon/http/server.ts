/**
 * The HTTP API of `awg daemon` (docs/api.md): HTTP/1.1 on the same Unix socket as the gRPC
 * API. The socket's listener (server.ts, listenWithCredentials) reads each caller's
 * credentials from the kernel first, then looks at the connection's first bytes: the HTTP/2
 * preface goes to gRPC, anything else to this server. So both APIs have one socket, one file
 * mode and one authorisation: every route names the RPC whose rule it follows (authz.ts
 * GROUP_POLICY), and ApiGate decides exactly as for that RPC, `--locked` included.
 *
 * No TCP listener, ever: `awg ui` (src/cli/commands/ui.ts) is the bridge a browser reaches,
 * and it runs as the user, with the user's own credentials on this socket.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { AwgError, ERROR_KINDS, toAwgError } from '../../errors.js';
import type { PeerCred } from '../../native/peercred.js';
import type { Rpc } from '../authz.js';
import type { DaemonCore } from '../core.js';
import type { ApiGate } from '../api-gate.js';
import { parseInput } from './input.js';
import type * as z from 'zod';

/** largest request body accepted (a POST carries a path and a few flags) */
export const MAX_BODY = 64 * 1024;

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** the caller, already authorised for the route's RPC */
  peer: PeerCred;
  core: DaemonCore;
  gate: ApiGate;
  /** the JSON body of a POST (`{}` when empty), already size-checked and parsed */
  body: Record<string, unknown>;
  /** released when the daemon's API closes (streams end) */
  onClose(stop: () => void): () => void;
}

export interface Route {
  method: 'GET' | 'POST';
  /** exact path, e.g. /api/status */
  path: string;
  /** the RPC whose authorisation this route has (authz.ts) */
  rpc: Rpc;
  /** the config path the request makes the daemon read (Apply/Diff: checked as the caller) */
  configPath?: (body: Record<string, unknown>) => string | undefined;
  /** one line for schema/api.openapi.json */
  summary?: string;
  /** a POST's body: checked before anything else (400 naming the fields); ctx.body is its output */
  body?: z.ZodType<Record<string, unknown>>;
  /** the query parameters (strings in, the route parses them: parseInput) */
  query?: z.ZodType<Record<string, unknown>>;
  /** the JSON answer's schema (schema/api.openapi.json; a test checks real answers against it) */
  /** a streamed answer's media type (no `response` schema), e.g. text/event-stream */
  stream?: string;
  response?: z.ZodType;
  /** a JSON answer (status 200), or undefined when the handler wrote the response itself (streams) */
  handle(ctx: RouteContext): Promise<unknown>;
}

export interface HttpApi {
  /** hand over an accepted connection whose first bytes are not the HTTP/2 preface */
  connection(sock: Socket): void;
  close(): void;
}

export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2) + '\n';
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(body);
}

/** the AwgError as the JSON body of a failed request: {error: {kind, message, issues?, hint?}} */
export function sendError(res: ServerResponse, e: unknown): void {
  const err = toAwgError(e);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, ERROR_KINDS[err.kind].httpStatus, {
    error: {
      kind: err.kind,
      message: err.message,
      ...(err.issues.length ? { issues: err.issues } : {}),
      ...(err.hint ? { hint: err.hint } : {}),
    },
  });
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY)
      throw new AwgError('invalid-config', `request body larger than ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  const type = String(req.headers['content-type'] ?? '');
  if (!/^application\/json\b/i.test(type))
    throw new AwgError('invalid-config', 'a request body must be application/json');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new AwgError('invalid-config', `the request body is not JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new AwgError('invalid-config', 'the request body must be a JSON object');
  return v as Record<string, unknown>;
}

/** Serve `routes` to connections handed over by the socket's listener. */
export function createHttpApi(
  core: DaemonCore,
  gate: ApiGate,
  routes: readonly Route[],
  streams: Set<() => void>,
): HttpApi {
  const byPath = new Map<string, Route[]>();
  for (const r of routes) byPath.set(r.path, [...(byPath.get(r.path) ?? []), r]);

  const server = createServer(
    { requestTimeout: 60_000, headersTimeout: 10_000, maxHeaderSize: 16 * 1024 },
    (req, res) => {
      void serve(req, res);
    },
  );
  server.on('clientError', (_e, sock: Socket) => sock.destroy());

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://awg');
      const candidates = byPath.get(url.pathname);
      if (!candidates) throw new HttpNotFound(url.pathname);
      const route = candidates.find((r) => r.method === req.method);
      if (!route) {
        res.setHeader('allow', candidates.map((r) => r.method).join(', '));
        sendJson(res, 405, {
          error: { kind: 'invalid-config', message: `${req.method} ${url.pathname}: not allowed` },
        });
        req.resume();
        return;
      }
      const raw = route.method === 'POST' ? await readBody(req) : {};
      const body = route.body ? parseInput(route.body, raw, 'request body') : raw;
      const id = req.socket.remoteAddress ?? '';
      const peer = await gate.authorize(route.rpc, { getPeer: () => id }, route.configPath?.(body));
      const value = await route.handle({
        req,
        res,
        url,
        peer,
        core,
        gate,
        body,
        onClose: (stop) => {
          streams.add(stop);
          return () => streams.delete(stop);
        },
      });
      if (value !== undefined) sendJson(res, 200, value);
    } catch (e) {
      if (e instanceof HttpNotFound) {
        sendJson(res, 404, { error: { kind: 'invalid-config', message: e.message } });
        return;
      }
      sendError(res, e);
    }
  }

  return {
    connection(sock) {
      server.emit('connection', sock);
    },
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

class HttpNotFound extends Error {
  constructor(path: string) {
    super(`no such API path: ${path} (docs/api.md lists them)`);
  }
}
