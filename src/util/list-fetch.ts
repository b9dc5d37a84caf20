/**
 * One HTTP(S) GET of a list (`to.lists: [{url}]`), with Node's http client over a connection
 * the caller may choose (direct, bound to a tunnel's link, through a tunnel's proxy:
 * resources/engine/via.ts):
 * - conditional: `If-None-Match` / `If-Modified-Since` from the cached copy's validators; a
 *   304 says the copy is current;
 * - redirects followed up to MAX_REDIRECTS, relative ones too; a redirect from https to
 *   http is refused (it would drop the protection the config asked for), and so is a loop;
 * - the size cap (`maxBytes`) is enforced while the body streams (and on Content-Length
 *   first): the transfer is cut the moment it is exceeded, never buffered whole first;
 * - `Content-Encoding: gzip` is decoded (the cap counts decoded bytes); a body that is not
 *   valid gzip, or another encoding, is an error;
 * - a deadline for the whole fetch (connect, redirects, body) and an idle timeout.
 * Errors are ListFetchError with a message fit for a status line (no response body in it).
 */
import { request, type IncomingMessage, type RequestOptions } from 'node:http';
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { createGunzip } from 'node:zlib';

export const MAX_REDIRECTS = 5;
/** the whole fetch, connect to last byte (a 64 MiB list on a slow link takes a while) */
export const FETCH_DEADLINE_MS = 120_000;
/** no byte for this long: the server is gone */
export const FETCH_IDLE_MS = 20_000;

export class ListFetchError extends Error {
  override name = 'ListFetchError';
}

/** a TCP connection to host:port (the caller's route: direct, a tunnel's link, its proxy) */
export type Connector = (host: string, port: number, o: { timeoutMs: number }) => Promise<Duplex>;

export interface ListFetchOptions {
  url: string;
  maxBytes: number;
  /** the cached copy's validators: a conditional GET */
  etag?: string | undefined;
  lastModified?: string | undefined;
  connect?: Connector | undefined;
  deadlineMs?: number | undefined;
  idleMs?: number | undefined;
  /** extra CA certificates (tests: a loopback server's self-signed one) */
  ca?: string | Buffer | undefined;
  userAgent?: string | undefined;
}

export type ListFetchResult =
  | { kind: 'not-modified'; etag?: string; lastModified?: string }
  | { kind: 'fetched'; bytes: Buffer; etag?: string; lastModified?: string; finalUrl: string };

const directConnect: Connector = (host, port, o) =>
  new Promise((resolve, reject) => {
    const s = netConnect({ host, port, timeout: o.timeoutMs });
    s.once('connect', () => {
      s.setTimeout(0);
      resolve(s);
    });
    s.once('timeout', () => {
      s.destroy();
      reject(new ListFetchError(`connecting to ${host}:${port} timed out`));
    });
    s.once('error', reject);
  });

/** `https://user:pw@host/p?q` → `https://host/p?…`: what a message may show of a URL */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(not a URL)';
  }
}

function header(res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return typeof v === 'string' && v.length <= 1024 ? v : undefined;
}

function validators(res: IncomingMessage): { etag?: string; lastModified?: string } {
  const etag = header(res, 'etag');
  const lastModified = header(res, 'last-modified');
  return { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
}

/** Fetch `o.url`; see the file comment. Rejects with ListFetchError (or the socket's error). */
export async function fetchList(o: ListFetchOptions): Promise<ListFetchResult> {
  const deadline = Date.now() + (o.deadlineMs ?? FETCH_DEADLINE_MS);
  const seen = new Set<string>();
  let url = o.url;
  for (let hop = 0; ; hop++) {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new ListFetchError(`${redactUrl(url)}: only http and https are fetched`);
    seen.add(u.href);
    const r = await getOnce(u, o, deadline);
    if (r.kind !== 'redirect') return r.kind === 'fetched' ? { ...r, finalUrl: u.href } : r;
    let next: URL;
    try {
      next = new URL(r.location, u);
    } catch {
      throw new ListFetchError(`${redactUrl(u.href)}: a redirect to an invalid location`);
    }
    if (u.protocol === 'https:' && next.protocol !== 'https:')
      throw new ListFetchError(
        `${redactUrl(u.href)} redirects to ${redactUrl(next.href)}: a redirect from https to another scheme is refused`,
      );
    if (seen.has(next.href))
      throw new ListFetchError(
        `${redactUrl(o.url)}: a redirect loop (back to ${redactUrl(next.href)})`,
      );
    if (hop + 1 > MAX_REDIRECTS)
      throw new ListFetchError(`${redactUrl(o.url)}: more than ${MAX_REDIRECTS} redirects`);
    url = next.href;
  }
}

type Once =
  | { kind: 'redirect'; location: string }
  | { kind: 'not-modified'; etag?: string; lastModified?: string }
  | { kind: 'fetched'; bytes: Buffer; etag?: string; lastModified?: string };

function getOnce(u: URL, o: ListFetchOptions, deadline: number): Promise<Once> {
  const tls = u.protocol === 'https:';
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = u.port ? Number(u.port) : tls ? 443 : 80;
  const connect = o.connect ?? directConnect;
  const left = () => Math.max(1, deadline - Date.now());
  return new Promise<Once>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () => fail(new ListFetchError(`${redactUrl(u.href)}: no complete answer in time`)),
      left(),
    );
    const fail = (e: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(e instanceof Error ? e : new ListFetchError(String(e)));
    };
    const done = (v: Once) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const headers: Record<string, string> = {
      'accept-encoding': 'gzip',
      'user-agent': o.userAgent ?? 'awg-lists',
      accept: '*/*',
    };
    if (o.etag) headers['if-none-match'] = o.etag;
    if (o.lastModified) headers['if-modified-since'] = o.lastModified;
    const req = request({
      protocol: 'http:',
      host,
      port,
      path: `${u.pathname}${u.search}`,
      method: 'GET',
      headers: { ...headers, host: u.host },
      createConnection: ((_opts: unknown, cb: (err: Error | null, s?: Duplex) => void) => {
        connect(host, port, { timeoutMs: Math.min(15_000, left()) })
          .then((raw) => {
            if (!tls) return raw;
            return new Promise<Duplex>((res, rej) => {
              const s = tlsConnect({
                socket: raw,
                servername: isIP(host) ? undefined : host,
                host,
                ...(o.ca ? { ca: o.ca } : {}),
                ALPNProtocols: ['http/1.1'],
              });
              s.once('secureConnect', () => res(s));
              s.once('error', (e) => {
                raw.destroy();
                rej(e);
              });
            });
          })
          .then(
            (s) => cb(null, s),
            (e: Error) => cb(e),
          );
        return undefined;
      }) as unknown as RequestOptions['createConnection'],
    });
    // a connector may hand over a paused stream (a proxy dialer pauses it after its handshake,
    // proxy/http-connect.ts); the client only adds a 'data' listener, which does not restart
    // a stream paused on purpose: it waited for an answer that was there (`via` an http tunnel)
    req.once('socket', (s) => s.resume());
    req.setTimeout(o.idleMs ?? FETCH_IDLE_MS, () =>
      fail(new ListFetchError(`${redactUrl(u.href)}: the server went silent`)),
    );
    req.on('error', (e) => fail(new ListFetchError(`${redactUrl(u.href)}: ${e.message}`)));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(status)) {
        res.resume();
        const location = header(res, 'location');
        if (!location)
          return fail(
            new ListFetchError(`${redactUrl(u.href)}: HTTP ${status} without a Location`),
          );
        return done({ kind: 'redirect', location });
      }
      if (status === 304 && (o.etag || o.lastModified)) {
        res.resume();
        return done({ kind: 'not-modified', ...validators(res) });
      }
      if (status !== 200) {
        res.resume();
        return fail(
          new ListFetchError(
            `${redactUrl(u.href)}: HTTP ${status}${res.statusMessage ? ` ${res.statusMessage.slice(0, 80)}` : ''}`,
          ),
        );
      }
      const length = Number(header(res, 'content-length') ?? NaN);
      const encoding = (header(res, 'content-encoding') ?? 'identity').toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'x-gzip')
        return fail(
          new ListFetchError(
            `${redactUrl(u.href)}: the server sent Content-Encoding ${JSON.stringify(encoding.slice(0, 40))}, which is not read (identity or gzip)`,
          ),
        );
      const tooLarge = () =>
        new ListFetchError(
          `${redactUrl(u.href)}: larger than maxBytes ${o.maxBytes} bytes; the transfer was cut`,
        );
      if (encoding === 'identity' && Number.isFinite(length) && length > o.maxBytes)
        return fail(tooLarge());
      const body: Duplex | IncomingMessage =
        encoding === 'identity' ? res : res.pipe(createGunzip());
      const chunks: Buffer[] = [];
      let size = 0;
      let wire = 0;
      res.on('data', (d: Buffer) => {
        wire += d.length;
        // a compressed body larger than the cap can only decode larger
        if (wire > o.maxBytes) fail(tooLarge());
      });
      body.on('data', (d: Buffer) => {
        size += d.length;
        if (size > o.maxBytes) return fail(tooLarge());
        chunks.push(d);
      });
      body.on('error', (e: Error) =>
        fail(
          new ListFetchError(
            `${redactUrl(u.href)}: ${body === res ? e.message : `the gzip body does not decode: ${e.message}`}`,
          ),
        ),
      );
      res.on('aborted', () =>
        fail(new ListFetchError(`${redactUrl(u.href)}: the transfer was cut short`)),
      );
      body.on('end', () => {
        if (!res.complete)
          return fail(new ListFetchError(`${redactUrl(u.href)}: the transfer was cut short`));
        done({ kind: 'fetched', bytes: Buffer.concat(chunks, size), ...validators(res) });
      });
    });
    req.end();
  });
}
