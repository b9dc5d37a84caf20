/**
 * HTTP CONNECT upstream (RFC 9110 §9.3.6) with optional Basic authentication (RFC 7617)
 * and optional TLS to the proxy itself. The TCP socket to the proxy carries the bypass
 * SO_MARK (see socks5.ts). Only the status line is judged: 2xx is a tunnel; 407 is an
 * authentication failure (a configuration error; so is 401, which tinyproxy sends for wrong
 * credentials); 403 and other 4xx are a refusal of this
 * destination; 5xx means the proxy could not reach it. The response header is bounded
 * (16 KiB) and any bytes after it are handed back to the caller's stream.
 */
import type { Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import { safeLine } from '../util/sanitize.js';
import { connectToProxy, untilAbort, type ProxyAuth } from './socks5.js';
import {
  ProxyDialError,
  formatDst,
  type Destination,
  type DialOptions,
  type Dialer,
} from './types.js';

export interface HttpConnectOptions {
  server: string;
  port: number;
  auth?: ProxyAuth | undefined;
  /** TLS to the proxy; `true` uses the system CAs and the server name */
  tls?: boolean | ConnectionOptions;
  bypassMark?: number;
  timeoutMs?: number;
  highWaterMark?: number;
  /** the proxy's host name → addresses (default: the system resolver) */
  resolve?: (host: string) => Promise<string[]>;
}

const MAX_HEADER = 16 * 1024;

export function connectRequest(dst: Destination, auth?: ProxyAuth): string {
  const authority = formatDst(dst);
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
  if (auth)
    lines.push(
      `Proxy-Authorization: Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}`,
    );
  return `${lines.join('\r\n')}\r\n\r\n`;
}

export interface ConnectResponse {
  status: number;
  reason: string;
}

/**
 * Parses the status line of a CONNECT response header (without the final CRLFCRLF). The
 * reason phrase is the proxy's free text and ends up in errors, status and logs: control
 * characters and escape sequences are escaped/removed and it is cut to 120 characters.
 */
export function parseConnectResponse(head: string): ConnectResponse {
  const line = head.split('\r\n', 1)[0] ?? '';
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(line);
  if (!m)
    throw new ProxyDialError(
      'protocol',
      `HTTP proxy sent an invalid status line ${JSON.stringify(line.slice(0, 80))}`,
    );
  return { status: Number(m[1]), reason: safeLine(m[2] ?? '', 120) };
}

/** The error for a non-2xx answer to CONNECT. */
export function connectError(
  r: ConnectResponse,
  proxy: string,
  dst: Destination,
  auth?: ProxyAuth,
): ProxyDialError {
  const s = `${r.status}${r.reason ? ` ${r.reason}` : ''}`;
  // 407 is the standard answer; tinyproxy 1.11 answers 401 when credentials were sent but are wrong
  if (r.status === 407 || r.status === 401)
    return new ProxyDialError(
      'auth',
      auth
        ? `HTTP proxy ${proxy} refused the credentials of user ${JSON.stringify(auth.username)} (${s})`
        : `HTTP proxy ${proxy} requires authentication (${s}); set auth in the tunnel`,
      { status: r.status },
    );
  if (r.status === 403)
    return new ProxyDialError(
      'rejected',
      `HTTP proxy ${proxy} forbids CONNECT to ${formatDst(dst)} (${s})`,
      {
        status: r.status,
      },
    );
  if (r.status >= 500)
    return new ProxyDialError(
      'rejected',
      `HTTP proxy ${proxy} could not reach ${formatDst(dst)} (${s})`,
      {
        status: r.status,
      },
    );
  return new ProxyDialError(
    'rejected',
    `HTTP proxy ${proxy} refused CONNECT to ${formatDst(dst)} (${s})`,
    {
      status: r.status,
    },
  );
}

async function startTls(
  sock: Socket,
  o: HttpConnectOptions,
  timeoutMs: number,
): Promise<TLSSocket> {
  const extra = typeof o.tls === 'object' ? o.tls : {};
  return await new Promise<TLSSocket>((resolve, reject) => {
    const t = tlsConnect({
      ...(isIP(o.server) ? {} : { servername: o.server }),
      ...extra,
      socket: sock,
    });
    t.on('error', () => {}); // from birth: it outlives this handshake (see native/tcpsock.ts)
    const timer = setTimeout(() => {
      t.destroy();
      reject(
        new ProxyDialError(
          'timeout',
          `TLS handshake with HTTP proxy ${o.server}:${o.port} timed out`,
        ),
      );
    }, timeoutMs);
    t.once('secureConnect', () => {
      clearTimeout(timer);
      t.off('error', onErr);
      resolve(t);
    });
    const onErr = (e: Error) => {
      clearTimeout(timer);
      t.destroy();
      reject(
        new ProxyDialError(
          'unreachable',
          `TLS to HTTP proxy ${o.server}:${o.port} failed: ${e.message}`,
          { cause: e },
        ),
      );
    };
    t.once('error', onErr);
  });
}

/** Sends CONNECT on `s` and resolves with `s` once a 2xx arrived (excess bytes unshifted). */
export async function httpConnectHandshake(
  s: Duplex,
  dst: Destination,
  o: { server: string; port: number; auth?: ProxyAuth | undefined },
  timeoutMs: number,
): Promise<Duplex> {
  const proxy = `${o.server}:${o.port}`;
  return await new Promise<Duplex>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (e?: Error) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('error', onError);
      s.off('end', onEnd);
      if (e) {
        s.destroy();
        reject(e);
      }
    };
    const timer = setTimeout(
      () =>
        done(
          new ProxyDialError(
            'timeout',
            `HTTP proxy ${proxy} did not answer CONNECT within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    const onError = (e: Error) =>
      done(new ProxyDialError('unreachable', `HTTP proxy ${proxy}: ${e.message}`, { cause: e }));
    const onEnd = () =>
      done(
        new ProxyDialError('protocol', `HTTP proxy ${proxy} closed the connection during CONNECT`),
      );
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > MAX_HEADER)
          done(
            new ProxyDialError(
              'protocol',
              `HTTP proxy ${proxy} sent a header over ${MAX_HEADER} bytes`,
            ),
          );
        return;
      }
      let r: ConnectResponse;
      try {
        r = parseConnectResponse(buf.subarray(0, end).toString('latin1'));
      } catch (e) {
        done(e as Error);
        return;
      }
      if (r.status < 200 || r.status > 299) {
        done(connectError(r, proxy, dst, o.auth));
        return;
      }
      done();
      s.pause();
      const rest = buf.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    s.on('data', onData);
    s.once('error', onError);
    s.once('end', onEnd);
    s.write(connectRequest(dst, o.auth));
  });
}

/** A Dialer that reaches each destination through the HTTP proxy with CONNECT. */
export function httpConnectDialer(o: HttpConnectOptions): Dialer {
  const timeoutMs = o.timeoutMs ?? 10_000;
  return async (dst: Destination, opts: DialOptions = {}) => {
    const sock = await connectToProxy(o, opts);
    return untilAbort(sock, opts.signal, `HTTP proxy ${o.server}:${o.port}`, async () => {
      let s: Duplex = sock;
      try {
        if (o.tls) s = await startTls(sock, o, timeoutMs);
      } catch (e) {
        sock.destroy();
        throw e;
      }
      return await httpConnectHandshake(s, dst, o, timeoutMs);
    });
  };
}
