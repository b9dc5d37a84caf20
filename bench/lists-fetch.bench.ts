/**
 * Step 21: a list by URL (`to.lists: [{url}]`), fetched, parsed and cached by awg's own path —
 * pipeline/list-update.ts `updateList` (the daemon's refresh and `awg lists update`): the
 * conditional GET of util/list-fetch.ts, the parse (config/list-formats) and the cache's
 * crash-safe write (util/list-cache.ts). The list is bench/lists-gen.ts `registryList`
 * (100,000 entries, 1.75 MiB; `--smoke`: 10,000). The server is a child process (this file,
 * `serve`) on 127.0.0.1: nothing leaves loopback. Three cases, each timed in this process:
 *
 * - plain: the server does not compress; the cache is emptied before each run (a first fetch);
 * - gzip: the server sends `Content-Encoding: gzip` (awg asks for it); the cache emptied too;
 * - 304: the cache holds the copy, the GET carries `If-None-Match` (and `If-Modified-Since`),
 *   the server answers 304 without a body; the record is touched, nothing parsed.
 *
 * The fetch alone (util/list-fetch.ts `fetchList`, no parse or cache) is timed beside it. The
 * anchor, in the same run and alternating with ours round by round: `curl -s -o FILE` of the
 * same URL (`--compressed` for gzip, `-H 'If-None-Match: …'` for the 304): the wall of the
 * command (its start included) and curl's own `time_total` (the transfer alone).
 *
 * Every run is checked for its kind, the smoke's whole point (not a timing): plain and gzip
 * must be `fetched` with every entry, gzip must have been sent compressed and cached decoded
 * (the plain copy's digest), a 304 must be `not-modified` with no body sent; a copy the server
 * sends with only `Last-Modified` must be revalidated by `If-Modified-Since` too.
 * `AWG_BENCH_ROUNDS` (7) and `AWG_BENCH_FETCH_ENTRIES` (100,000) override the sizes.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { normalListRef, type UrlListRef } from '../src/config/list-ref.js';
import { updateList, type ListUpdateOutcome } from '../src/pipeline/list-update.js';
import { ListCache, LIST_CACHE_DIR, sha256Hex } from '../src/util/list-cache.js';
import { fetchList } from '../src/util/list-fetch.js';
import { median, percentile, type Sample } from './lib.js';
import { registryList } from './lists-gen.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const SELF = fileURLToPath(import.meta.url);
const ETAG = '"bench-v1"';
const LAST_MODIFIED = 'Sat, 28 Nov 2026 00:00:00 GMT';

/** what the server did for one request (GET /stats: the last one per path) */
interface Served {
  path: string;
  status: number;
  encoding: string;
  /** body bytes sent */
  bytes: number;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
}

/**
 * The server (child process): `/plain` never compresses, `/gzip` compresses when asked
 * (Accept-Encoding: gzip), `/lm` never compresses and has no ETag (Last-Modified only).
 * A request whose validator matches gets 304 without a body.
 */
function serve(file: string): void {
  const body = readFileSync(file);
  const gz = gzipSync(body, { level: 6 });
  const last = new Map<string, Served>();
  const server = createServer((q, s) => {
    const path = (q.url ?? '/').split('?')[0]!;
    if (path === '/stats') {
      s.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify(Object.fromEntries(last)),
      );
      return;
    }
    if (!['/plain', '/gzip', '/lm'].includes(path)) return void s.writeHead(404).end();
    const inm = q.headers['if-none-match'];
    const ims = q.headers['if-modified-since'];
    const etag = path === '/lm' ? {} : { etag: ETAG };
    const validators = { ...etag, 'last-modified': LAST_MODIFIED };
    const seen = {
      ...(inm !== undefined ? { ifNoneMatch: inm } : {}),
      ...(ims !== undefined ? { ifModifiedSince: ims } : {}),
    };
    const fresh = path === '/lm' ? ims === LAST_MODIFIED : inm === ETAG;
    if (fresh) {
      last.set(path, { path, status: 304, encoding: 'none', bytes: 0, ...seen });
      s.writeHead(304, validators).end();
      return;
    }
    const gzip = path === '/gzip' && /\bgzip\b/.test(String(q.headers['accept-encoding'] ?? ''));
    const out = gzip ? gz : body;
    last.set(path, {
      path,
      status: 200,
      encoding: gzip ? 'gzip' : 'identity',
      bytes: out.length,
      ...seen,
    });
    s.writeHead(200, {
      ...validators,
      'content-type': 'text/plain',
      'content-length': String(out.length),
      ...(gzip ? { 'content-encoding': 'gzip' } : {}),
      ...(path === '/gzip' ? { vary: 'Accept-Encoding' } : {}),
    }).end(out);
  });
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`ready ${port} ${gz.length}\n`);
  });
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

async function startServer(file: string): Promise<{ p: ChildProcess; port: number; gz: number }> {
  const p = spawn(process.execPath, ['--import', 'tsx', SELF, 'serve', file], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
    });
    p.on('exit', (code) => reject(new Error(`the list server exited (${code})`)));
  });
  const [, port, gz] = /^ready (\d+) (\d+)$/.exec(line) ?? [];
  if (!port) throw new Error(`list server: ${line}`);
  return { p, port: Number(port), gz: Number(gz) };
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

interface Curl {
  wall: number;
  /** curl's time_total, ms */
  total: number;
  code: number;
  size: number;
}

function curl(args: string[]): Promise<Curl> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) =>
    execFile(
      'curl',
      ['-s', '-w', '%{http_code} %{size_download} %{time_total}', ...args],
      (e, stdout) => {
        const wall = ms(t0);
        if (e) return reject(new Error(`curl ${args.join(' ')}: ${e.message}`));
        const [code, size, total] = stdout.trim().split(' ').map(Number);
        resolve({ wall, total: total! * 1000, code: code!, size: size! });
      },
    ),
  );
}

const haveCurl = () => new Promise<boolean>((r) => execFile('curl', ['--version'], (e) => r(!e)));

const sample = (name: string, runs: number[], note?: string): Sample => ({
  name,
  unit: 'ms',
  runs,
  median: median(runs),
  p90: percentile(runs, 90),
  ...(note !== undefined ? { note } : {}),
});

const fmt = (n: number) => n.toLocaleString('en');
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

export async function listsFetchBench(smoke: boolean): Promise<Sample[]> {
  const n = smoke ? 10_000 : Number(process.env.AWG_BENCH_FETCH_ENTRIES ?? 100_000);
  const rounds = smoke ? 1 : Number(process.env.AWG_BENCH_ROUNDS ?? 7);
  const dir = mkdtempSync(join(tmpdir(), 'awg-bench-fetch-'));
  const text = registryList(n);
  const bytes = Buffer.from(text);
  const sha = sha256Hex(bytes);
  const file = join(dir, 'list.txt');
  writeFileSync(file, bytes);
  const server = await startServer(file);
  const base = `http://127.0.0.1:${server.port}`;
  const anchor = await haveCurl();
  if (!anchor && !smoke) throw new Error('lists-fetch: curl is not on PATH (the anchor)');
  const stateDir = join(dir, 'state');
  const cache = new ListCache(stateDir);
  const ref = (path: string): UrlListRef =>
    normalListRef({
      url: `${base}${path}`,
      refresh: '1h',
      maxBytes: 64 * 1024 * 1024,
      maxEntries: 1_000_000,
    }) as UrlListRef;
  const served = async (path: string): Promise<Served> => {
    const r = await fetch(`${base}/stats`);
    const all = (await r.json()) as Record<string, Served>;
    if (!all[path]) throw new Error(`lists-fetch: the server saw no request for ${path}`);
    return all[path];
  };
  const fail = (what: string, detail: unknown): never => {
    throw new Error(`lists-fetch: ${what}: ${JSON.stringify(detail)}`);
  };
  /** the kind of a fresh fetch: fetched, every entry, the decoded copy cached */
  const checkFetched = async (o: ListUpdateOutcome, path: string, encoding: string) => {
    if (o.result !== 'fetched' || o.meta?.entries !== n || o.meta.sha256 !== sha)
      fail(`${path} was not fetched whole`, { ...o, meta: { ...o.meta } });
    const s = await served(path);
    if (s.status !== 200 || s.encoding !== encoding)
      fail(`${path}: the server sent ${s.encoding}, not ${encoding}`, s);
    const body = cache.read(ref(path).url);
    if (!body?.bytes.equals(bytes)) fail(`${path}: the cached copy is not the list`, body?.meta);
  };
  /** the kind of a revalidation: not-modified, a validator sent, no body */
  const checkNotModified = async (o: ListUpdateOutcome, path: string) => {
    if (o.result !== 'not-modified' || o.changed) fail(`${path} was not a 304`, o);
    const s = await served(path);
    const validator = path === '/lm' ? s.ifModifiedSince : s.ifNoneMatch;
    if (s.status !== 304 || s.bytes !== 0 || !validator)
      fail(`${path}: the revalidation downloaded the body again`, s);
  };
  const emptyCache = () => rmSync(join(stateDir, LIST_CACHE_DIR), { recursive: true, force: true });

  const runs: Record<string, number[]> = {};
  const put = (k: string, v: number) => (runs[k] ??= []).push(v);
  const ours = async (record: boolean) => {
    for (const [path, enc] of [
      ['/plain', 'identity'],
      ['/gzip', 'gzip'],
    ] as const) {
      emptyCache();
      let t0 = process.hrtime.bigint();
      const o = await updateList(ref(path), cache);
      const t = ms(t0);
      await checkFetched(o, path, enc);
      t0 = process.hrtime.bigint();
      const f = await fetchList({ url: ref(path).url, maxBytes: 64 * 1024 * 1024 });
      const tf = ms(t0);
      if (f.kind !== 'fetched' || !f.bytes.equals(bytes)) fail(`${path}: fetchList`, f.kind);
      if (record) {
        put(`ours ${path}`, t);
        put(`fetch ${path}`, tf);
      }
    }
    // the cache holds /gzip's copy (fetched just now): a revalidation
    const t0 = process.hrtime.bigint();
    const o = await updateList(ref('/gzip'), cache);
    const t = ms(t0);
    await checkNotModified(o, '/gzip');
    if (record) put('ours 304', t);
  };
  const curls = async (record: boolean) => {
    if (!anchor) return;
    const out = join(dir, 'curl.out');
    const cases = [
      ['/plain', [], 200, bytes.length],
      ['/gzip', ['--compressed'], 200, server.gz],
      ['304', ['-H', `If-None-Match: ${ETAG}`], 304, 0],
    ] as const;
    for (const [key, extra, code, size] of cases) {
      const url = `${base}${key === '304' ? '/gzip' : key}`;
      const c = await curl([...extra, '-o', out, url]);
      if (c.code !== code || c.size !== size) fail(`curl ${key}`, c);
      if (code === 200 && statSync(out).size !== bytes.length) fail(`curl ${key}: file size`, c);
      if (record) {
        put(`curl ${key}`, c.wall);
        put(`curl total ${key}`, c.total);
      }
    }
  };

  const loadBefore = load();
  try {
    // a list with Last-Modified only: revalidated by If-Modified-Since (checked, not timed)
    await checkFetched(await updateList(ref('/lm'), cache), '/lm', 'identity');
    await checkNotModified(await updateList(ref('/lm'), cache), '/lm');
    // a round to warm up (JIT, connections, page cache), not recorded
    await ours(false);
    await curls(false);
    for (let i = 0; i < rounds; i++) {
      if (i % 2) {
        await curls(true);
        await ours(true);
      } else {
        await ours(true);
        await curls(true);
      }
    }
  } finally {
    server.p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  const what = `${fmt(n)} entries, ${(bytes.length / 2 ** 20).toFixed(2)} MiB (gzip ${(server.gz / 2 ** 20).toFixed(2)} MiB)`;
  const note = `${what}; load ${loadBefore} → ${load()}`;
  const out: Sample[] = [
    sample('updateList (fetch + parse + cache), plain', runs['ours /plain']!, note),
    sample('updateList (fetch + parse + cache), gzip', runs['ours /gzip']!),
    sample('updateList, 304 (If-None-Match; record touched)', runs['ours 304']!),
    sample('fetchList alone (no parse, no cache), plain', runs['fetch /plain']!),
    sample('fetchList alone (no parse, no cache), gzip', runs['fetch /gzip']!),
  ];
  if (anchor)
    out.push(
      sample('anchor: curl -s -o FILE, plain (command wall)', runs['curl /plain']!),
      sample('anchor: curl -s --compressed -o FILE, gzip (command wall)', runs['curl /gzip']!),
      sample("anchor: curl -H 'If-None-Match: …', 304 (command wall)", runs['curl 304']!),
      sample('anchor: curl time_total, plain', runs['curl total /plain']!),
      sample('anchor: curl time_total, gzip', runs['curl total /gzip']!),
      sample('anchor: curl time_total, 304', runs['curl total 304']!),
    );
  else console.log('lists-fetch: no curl, the anchor is not measured');
  return out;
}

if (process.argv[2] === 'serve' && process.argv[1] === SELF) serve(process.argv[3]!);
else if (process.argv[1]?.endsWith('lists-fetch.bench.ts')) {
  const { printSamples, machine } = await import('./lib.js');
  console.log(`machine: ${machine()}`);
  printSamples('lists-fetch', await listsFetchBench(process.argv.includes('--smoke')));
}
