/**
 * The URL list fetcher and the update of a cached copy against a loopback HTTP(S) server in
 * this process: conditional GET, the size cap mid-stream, gzip, redirects, timeouts, the
 * sha256 pin and a copy that does not parse (the old copy kept); through a proxy tunnel's
 * dialer, and through a loopback HTTP CONNECT proxy (https with a host name).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normalListRef, type UrlListRef } from '../../../src/config/list-ref.js';
import { ListCache, sha256Hex } from '../../../src/util/list-cache.js';
import { fetchList, ListFetchError } from '../../../src/util/list-fetch.js';
import { updateList } from '../../../src/pipeline/list-update.js';
import { viaConnector } from '../../../src/resources/engine/via.js';
import { httpConnectDialer } from '../../../src/proxy/http-connect.js';
import { connect as netConnect, type Socket } from 'node:net';
import { tempDir } from '../../helpers/tmp.js';
import { AF_INET, SOCK_CLOEXEC, SOCK_STREAM, socket } from '../../../src/native/libc.js';

type Handler = (q: IncomingMessage, s: ServerResponse) => void;
let handler: Handler = (_q, s) => s.end();
const requests: IncomingMessage[] = [];
let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((q, s) => {
    requests.push(q);
    handler(q, s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

const ref = (path: string, more: Record<string, unknown> = {}): UrlListRef =>
  normalListRef({
    url: `${base}${path}`,
    refresh: '1m',
    maxBytes: 1024 * 1024,
    maxEntries: 1000,
    ...more,
  } as never) as UrlListRef;

describe('fetchList', () => {
  it('a conditional GET: the validators go out; 304 says the copy is current', async () => {
    handler = (q, s) => {
      if (q.headers['if-none-match'] === '"v1"') s.writeHead(304, { etag: '"v1"' }).end();
      else
        s.writeHead(200, { etag: '"v1"', 'last-modified': 'Wed, 01 Jan 2026 00:00:00 GMT' }).end(
          'a.example\n',
        );
    };
    const first = await fetchList({ url: `${base}/l`, maxBytes: 100 });
    expect(first).toMatchObject({ kind: 'fetched', etag: '"v1"' });
    const again = await fetchList({
      url: `${base}/l`,
      maxBytes: 100,
      etag: '"v1"',
      lastModified: 'x',
    });
    expect(again.kind).toBe('not-modified');
    expect(requests.at(-1)!.headers['if-modified-since']).toBe('x');
  });

  it('the size cap is enforced while streaming: the transfer is cut, not read whole', async () => {
    let written = 0;
    let closed = false;
    handler = (_q, s) => {
      s.writeHead(200);
      const tick = () => {
        if (closed || written > 10 * 1024 * 1024) return s.end();
        written += 16 * 1024;
        s.write(Buffer.alloc(16 * 1024, 0x61), () => setImmediate(tick));
      };
      s.on('close', () => (closed = true));
      tick();
    };
    await expect(fetchList({ url: `${base}/big`, maxBytes: 100 * 1024 })).rejects.toThrow(
      /larger than maxBytes 102400 bytes; the transfer was cut/,
    );
    expect(written).toBeLessThan(2 * 1024 * 1024);
  });

  it('a Content-Length over the cap is refused before the body', async () => {
    handler = (_q, s) => s.writeHead(200, { 'content-length': '5000' }).end(Buffer.alloc(5000));
    await expect(fetchList({ url: `${base}/cl`, maxBytes: 100 })).rejects.toThrow(
      /larger than maxBytes/,
    );
  });

  it('gzip is decoded (the cap counts decoded bytes); a bad gzip body is an error', async () => {
    handler = (q, s) => {
      if (q.url === '/gz')
        s.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync('a.example\n'));
      else if (q.url === '/bomb')
        s.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(1_000_000)));
      else s.writeHead(200, { 'content-encoding': 'gzip' }).end('this is not gzip at all');
    };
    const ok = await fetchList({ url: `${base}/gz`, maxBytes: 100 });
    expect(ok.kind === 'fetched' && ok.bytes.toString()).toBe('a.example\n');
    await expect(fetchList({ url: `${base}/bomb`, maxBytes: 10_000 })).rejects.toThrow(
      /larger than maxBytes/,
    );
    await expect(fetchList({ url: `${base}/bad`, maxBytes: 100 })).rejects.toThrow(
      /gzip body does not decode/,
    );
  });

  it('redirects are followed (relative too), bounded; a loop is named', async () => {
    handler = (q, s) => {
      if (q.url === '/r1') s.writeHead(302, { location: '/r2' }).end();
      else if (q.url === '/r2') s.writeHead(301, { location: `${base}/final` }).end();
      else if (q.url === '/final') s.end('a.example\n');
      else if (q.url === '/loop-a') s.writeHead(307, { location: '/loop-b' }).end();
      else if (q.url === '/loop-b') s.writeHead(307, { location: '/loop-a' }).end();
      else {
        const n = Number(q.url!.slice(3));
        s.writeHead(302, { location: `/ch${n + 1}` }).end();
      }
    };
    const r = await fetchList({ url: `${base}/r1`, maxBytes: 100 });
    expect(r).toMatchObject({ kind: 'fetched', finalUrl: `${base}/final` });
    await expect(fetchList({ url: `${base}/loop-a`, maxBytes: 100 })).rejects.toThrow(
      /redirect loop/,
    );
    await expect(fetchList({ url: `${base}/ch0`, maxBytes: 100 })).rejects.toThrow(
      /more than 5 redirects/,
    );
  });

  it('a silent server times out; a deadline bounds the whole fetch', async () => {
    handler = () => {};
    await expect(fetchList({ url: `${base}/silent`, maxBytes: 100, idleMs: 200 })).rejects.toThrow(
      /went silent|no complete answer/,
    );
    handler = (_q, s) => {
      s.writeHead(200);
      const t = setInterval(() => s.write('a'), 50);
      s.on('close', () => clearInterval(t));
    };
    await expect(
      fetchList({ url: `${base}/trickle`, maxBytes: 100_000, deadlineMs: 300 }),
    ).rejects.toThrow(/no complete answer in time/);
  });

  it('an error status is an error naming it; credentials and query stay out of messages', async () => {
    handler = (_q, s) => s.writeHead(404, 'Not Found').end('secret body');
    const e = await fetchList({
      url: `${base.replace('http://', 'http://u:pw@')}/x?token=abc`,
      maxBytes: 100,
    }).catch((x: unknown) => x as Error);
    expect(e).toBeInstanceOf(ListFetchError);
    expect((e as Error).message).toBe(`${base}/x?…: HTTP 404 Not Found`);
  });
});

describe('fetchList through a proxy tunnel’s dialer (via)', () => {
  it('the connection is the dialer’s: it gets the host name and port, unresolved', async () => {
    handler = (_q, s) => s.end('via.example\n');
    const asked: string[] = [];
    const connect = viaConnector({
      tunnel: 'px',
      dialer: (dst) => {
        asked.push(`${dst.host}:${dst.port}`);
        return new Promise((resolve, reject) => {
          const s = netConnect(Number(base.split(':')[2]), '127.0.0.1');
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
      },
    });
    const r = await fetchList({ url: 'http://lists.example:8080/l.txt', maxBytes: 100, connect });
    expect(r.kind === 'fetched' && r.bytes.toString()).toBe('via.example\n');
    expect(asked).toEqual(['lists.example:8080']);
    expect(requests.at(-1)!.headers.host).toBe('lists.example:8080');
  });
});

describe('fetchList through a tunnel’s link (via)', () => {
  it('the connection’s socket is the link pin’s (macOS passes its utun pin, Linux binds the link)', async () => {
    handler = (_q, s) => s.end('link.example\n');
    const pinned: string[] = [];
    const connect = viaConnector({ tunnel: 'home', link: 'awg-home', dns: [] }, async (link) => ({
      tcpFd: (family) => {
        pinned.push(`${link} v${family}`);
        // a plain socket stands in for one held to the link
        const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw new Error(`socket: ${-fd}`);
        return fd;
      },
      dgram: () => {
        throw new Error('no lookup: the URL is an address');
      },
    }));
    const r = await fetchList({ url: `${base}/l.txt`, maxBytes: 100, connect });
    expect(r.kind === 'fetched' && r.bytes.toString()).toBe('link.example\n');
    expect(pinned).toEqual(['awg-home v4']);
  });
});

describe('fetchList over https', () => {
  let cert = '';
  let key = '';
  let https: ReturnType<typeof createHttpsServer> | undefined;
  let hbase = '';
  beforeAll(async () => {
    const dir = tempDir('awgt-lt-');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=lists.test',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:lists.test',
        '-keyout',
        join(dir, 'k.pem'),
        '-out',
        join(dir, 'c.pem'),
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(dir, 'c.pem'), 'utf8');
    key = readFileSync(join(dir, 'k.pem'), 'utf8');
    https = createHttpsServer({ cert, key }, (q, s) => {
      if (q.url === '/down') s.writeHead(302, { location: `${base}/final` }).end();
      else s.end('tls.example\n');
    });
    await new Promise<void>((r) => https!.listen(0, '127.0.0.1', r));
    hbase = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    https?.closeAllConnections();
    https?.close();
  });

  it('verifies the server (an unknown CA fails), reads over TLS, refuses a redirect to http', async () => {
    await expect(fetchList({ url: `${hbase}/l`, maxBytes: 100 })).rejects.toThrow(
      /self-signed|certificate/,
    );
    const r = await fetchList({ url: `${hbase}/l`, maxBytes: 100, ca: cert });
    expect(r.kind === 'fetched' && r.bytes.toString()).toBe('tls.example\n');
    await expect(fetchList({ url: `${hbase}/down`, maxBytes: 100, ca: cert })).rejects.toThrow(
      /a redirect from https to another scheme is refused/,
    );
  });

  it('through an HTTP CONNECT proxy (via an http tunnel): the name goes unresolved in the CONNECT, TLS runs inside the tunnel and is verified; plain http reads the answer', async () => {
    const asked: string[] = [];
    let port = Number(hbase.split(':')[2]);
    // a CONNECT proxy that knows the name: lists.test is this host
    const proxy = createServer((_q, s) => s.writeHead(405).end());
    proxy.on('connect', (q: IncomingMessage, sock: Socket, head: Buffer) => {
      asked.push(q.url ?? '');
      const up = netConnect(port, '127.0.0.1', () => {
        sock.write('HTTP/1.1 200 Connection established\r\n\r\n');
        if (head.length) up.write(head);
        up.pipe(sock);
        sock.pipe(up);
      });
      up.on('error', () => sock.destroy());
      sock.on('error', () => up.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const connect = viaConnector({
        tunnel: 'hp',
        dialer: httpConnectDialer({
          server: '127.0.0.1',
          port: (proxy.address() as AddressInfo).port,
        }),
      });
      const url = `https://lists.test:${port}/l`;
      await expect(fetchList({ url, maxBytes: 100, connect })).rejects.toThrow(
        /self-signed|certificate/,
      );
      const r = await fetchList({ url, maxBytes: 100, ca: cert, connect });
      expect(r.kind === 'fetched' && r.bytes.toString()).toBe('tls.example\n');
      expect(asked).toEqual([`lists.test:${port}`, `lists.test:${port}`]);
      // plain http through the same dialer: its stream comes paused after the CONNECT
      port = Number(base.split(':')[2]);
      handler = (_q, s) => s.end('plain.example\n');
      const p = await fetchList({ url: `http://lists.test:${port}/p`, maxBytes: 100, connect });
      expect(p.kind === 'fetched' && p.bytes.toString()).toBe('plain.example\n');
      expect(asked.at(-1)).toBe(`lists.test:${port}`);
    } finally {
      proxy.closeAllConnections();
      proxy.close();
    }
  });
});

describe('updateList: the cached copy', () => {
  it('fetched, then not modified (304 keeps the copy, checkedAt moves), then changed', async () => {
    let body = 'a.example\n192.0.2.0/24\n';
    handler = (q, s) => {
      const etag = `"${sha256Hex(Buffer.from(body)).slice(0, 8)}"`;
      if (q.headers['if-none-match'] === etag) return s.writeHead(304).end();
      s.writeHead(200, { etag }).end(body);
    };
    const cache = new ListCache(tempDir('awg-lu-'));
    let t = Date.parse('2026-01-01T00:00:00Z');
    const now = () => new Date((t += 60_000));
    const r = ref('/u');
    const a = await updateList(r, cache, { now });
    expect(a).toMatchObject({
      result: 'fetched',
      changed: true,
      meta: { entries: 2, format: 'plain' },
    });
    const b = await updateList(r, cache, { now });
    expect(b).toMatchObject({ result: 'not-modified', changed: false });
    expect(b.meta!.fetchedAt).toBe(a.meta!.fetchedAt);
    expect(b.meta!.checkedAt > a.meta!.checkedAt).toBe(true);
    body = 'b.example\n';
    const c = await updateList(r, cache, { now });
    expect(c).toMatchObject({ result: 'fetched', changed: true, meta: { entries: 1 } });
    expect(cache.read(r.url)!.bytes.toString()).toBe('b.example\n');
  });

  it('the same bytes again without validators: not modified', async () => {
    handler = (_q, s) => s.end('a.example\n');
    const cache = new ListCache(tempDir('awg-lu-'));
    expect((await updateList(ref('/same'), cache)).result).toBe('fetched');
    expect(await updateList(ref('/same'), cache)).toMatchObject({
      result: 'not-modified',
      changed: false,
    });
  });

  it('a copy that does not parse, a pin mismatch, too many entries, the server gone: refused, the old copy kept', async () => {
    let body = 'a.example\n';
    handler = (_q, s) => s.end(body);
    const cache = new ListCache(tempDir('awg-lu-'));
    const r = ref('/bad');
    expect((await updateList(r, cache)).result).toBe('fetched');
    body = 'good.example\nthis is not an entry\n';
    const bad = await updateList(r, cache);
    expect(bad).toMatchObject({ result: 'failed', refused: true, changed: false });
    expect(bad.error).toMatch(/does not parse as plain \(1 error; first at 2:1/);
    expect(cache.read(r.url)!.bytes.toString()).toBe('a.example\n');
    expect(cache.readMeta(r.url)).toMatchObject({ failures: 1, lastError: { message: bad.error } });

    body = 'c.example\n';
    const pinned = await updateList({ ...r, sha256: sha256Hex(Buffer.from('a.example\n')) }, cache);
    expect(pinned.error).toMatch(/SHA-256 [0-9a-f]{64} is not the pinned/);
    expect(cache.read(r.url)!.bytes.toString()).toBe('a.example\n');

    body = 'x.example\ny.example\nz.example\n';
    const many = await updateList({ ...r, maxEntries: 2 }, cache);
    expect(many.error).toMatch(/holds 3 entries, more than maxEntries 2/);

    const gone = await updateList({ ...r, url: 'http://127.0.0.1:1/l' }, cache);
    expect(gone).toMatchObject({ result: 'failed', changed: false });
    expect(gone.meta).toBeUndefined();
    expect(cache.read(r.url)!.bytes.toString()).toBe('a.example\n');
    expect(cache.readMeta(r.url)!.failures).toBe(3);
  });
});
