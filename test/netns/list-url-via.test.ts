/**
 * Lists by URL fetched `via` a tunnel, against the real kernel, through the daemon (`awg
 * daemon` from dist/), in the topology of perapp-topology.ts (list-url.test.ts has `via` a
 * WireGuard tunnel and a SOCKS5 tunnel with IP literals). The daemon runs in a private mount
 * namespace whose /etc/resolv.conf names a trap: a DNS server on the router's client side
 * (the underlay), which logs every query and knows no name. The list server runs on the
 * server, reachable directly too, and logs the source of each GET: the client's underlay
 * address would be a direct fetch.
 * - `via h1`, an HTTP CONNECT proxy (a small proxy on peer1 that logs each CONNECT): the
 *   daemon fetches the list at start and on `awg lists update` through the proxy; the list
 *   server sees the proxy, never the client;
 * - an https URL with a host name `via h1`: TLS inside the CONNECT tunnel, verified; the
 *   name goes to the proxy unresolved (the CONNECT names it; the proxy resolves it), the
 *   trap is never asked;
 * - a host name `via t1` (WireGuard): looked up with t1's `dns` server, which only the
 *   tunnel reaches (an address on peer1's loopback), through the link; the fetch goes
 *   through t1; the trap is never asked (and it is asked when the system resolver is used:
 *   the check can fail);
 * - `awg lists update --direct` (no daemon in the way, the same private resolv.conf): the
 *   same lists through the same routes, built from the config.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AWG_BIN, type AwgEnv, cleanupAwgEnv, makeAwgEnv } from '../helpers/awg.js';
import {
  inMountNs,
  netnsPath,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import { DNS_ZONE_SERVER, dnsQueries } from './dns-zone-server.js';
import {
  ADDR,
  awgd,
  clientTunnels,
  createPerAppTopology,
  eventually,
  showRun,
  startDaemon,
  type Daemon,
  type PerAppTopology,
} from './perapp-topology.js';

const skip = requireNetnsPrereqs(['nft', 'unshare', 'mount', 'openssl', 'getent']);

const PROXY_PORT = 3128;
/** t1's resolver: an address on peer1's loopback, which only the tunnel reaches */
const TUN_DNS = '10.200.94.53';
const TLS_NAME = 'tls.awg.test';
const NAMED = 'lists.awg.test';
const PROXIED = `http://${ADDR.server}:9103/proxied.txt`;
const TLSED = `https://${TLS_NAME}:9443/tls.txt`;
const NAMEDURL = `http://${NAMED}:9104/named.txt`;

/**
 * The list server: `node -e LISTS_JS ADDR DIR CERT KEY`: http on 9103 and 9104, https (CERT,
 * KEY) on 9443; a path's file from DIR with an ETag (304 on a match); logs each GET with the
 * port and the source address.
 */
const LISTS_JS = `
const http = require('http'), https = require('https'), fs = require('fs'), path = require('path'), crypto = require('crypto');
const [addr, dir, cert, key] = process.argv.slice(1);
const handler = (port) => (q, s) => {
  let body;
  try { body = fs.readFileSync(path.join(dir, path.basename(q.url))); } catch { s.writeHead(404).end(); return; }
  const etag = '"' + crypto.createHash('sha256').update(body).digest('hex').slice(0, 16) + '"';
  console.log('GET ' + port + q.url + ' inm=' + (q.headers['if-none-match'] || '') + ' from ' + q.socket.remoteAddress);
  if (q.headers['if-none-match'] === etag) { s.writeHead(304, { etag }).end(); return; }
  s.writeHead(200, { etag, 'content-type': 'text/plain' }).end(body);
};
let n = 0; const up = () => { if (++n === 3) console.log('listening'); };
http.createServer(handler(9103)).listen(9103, addr, up);
http.createServer(handler(9104)).listen(9104, addr, up);
https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, handler(9443)).listen(9443, addr, up);
`;

/**
 * An HTTP CONNECT proxy: `node -e PROXY_JS ADDR PORT NAMES` (NAMES: JSON `{name: address}`,
 * its own resolver); logs `CONNECT authority from address` per request.
 */
const PROXY_JS = `
const http = require('http'), net = require('net');
const [addr, port, names] = process.argv.slice(1);
const map = JSON.parse(names);
const srv = http.createServer((q, s) => s.writeHead(405).end());
srv.on('connect', (q, sock, head) => {
  console.log('CONNECT ' + q.url + ' from ' + sock.remoteAddress);
  const i = q.url.lastIndexOf(':');
  const host = q.url.slice(0, i), p = Number(q.url.slice(i + 1));
  const up = net.connect(p, map[host] || host, () => {
    sock.write('HTTP/1.1 200 Connection established\\r\\n\\r\\n');
    if (head.length) up.write(head);
    up.pipe(sock); sock.pipe(up);
  });
  up.on('error', () => sock.end('HTTP/1.1 502 Bad Gateway\\r\\n\\r\\n'));
  sock.on('error', () => up.destroy());
});
srv.listen(Number(port), addr, () => console.log('listening'));
`;

describe.skipIf(skip)('lists by URL via an HTTP proxy and via a WireGuard tunnel’s DNS', () => {
  let t: PerAppTopology;
  let ce: AwgEnv;
  let d: Daemon | undefined;
  let lists: NsProcess | undefined;
  let proxy: NsProcess | undefined;
  let tunDns: NsProcess | undefined;
  let trap: NsProcess | undefined;
  let cfg = '';
  let resolvConf = '';

  const config = () => `version: 1
${clientTunnels(t.keys, { extra: `    dns: [${TUN_DNS}]\n` })}  h1: { type: http, server: ${ADDR.peer1}, port: ${PROXY_PORT} }
rules:
  - name: proxied
    to:
      lists:
        - {url: "${PROXIED}", refresh: 1h, via: h1}
    target: t2
  - name: tlsed
    to:
      lists:
        - {url: "${TLSED}", refresh: 1h, via: h1}
    target: t2
  - name: named
    to:
      lists:
        - {url: "${NAMEDURL}", refresh: 1h, via: t1}
    target: t2
default: direct
`;

  type Lists = { list: string; state: string; entries?: number; error?: string }[];
  const statusLists = async (): Promise<Lists> =>
    (await d!.cli(['status', '--json'])).json<{ lists?: Lists }>().lists ?? [];

  const fetchedByDaemon = (url: string) =>
    eventually(
      async () => (await statusLists()).find((l) => l.list === url)?.state === 'ok',
      `${url} fetched by the daemon`,
      90_000,
    ).catch(async (e: Error) => {
      throw new Error(
        `${e.message}\n${JSON.stringify(await statusLists())}\n--- lists\n${lists!.output()}\n--- proxy\n${proxy!.output()}\n--- t1's DNS\n${tunDns!.output()}\n--- trap\n${trap!.output()}`,
      );
    });

  /** the list server's GETs of `path` (port and path, as logged): the source of each */
  const getsFrom = (portPath: string): string[] =>
    lists!
      .output()
      .split('\n')
      .flatMap((l) => {
        const m = /^GET (\S+) inm=\S* from (\S+)$/.exec(l);
        return m && m[1] === portPath ? [m[2]!] : [];
      });
  const connects = (authority: string): string[] =>
    proxy!
      .output()
      .split('\n')
      .flatMap((l) => {
        const m = /^CONNECT (\S+) from (\S+)$/.exec(l);
        return m && m[1] === authority ? [m[2]!] : [];
      });

  /** the elements of an nft set of the client's table */
  const elems = async (name: string): Promise<string> =>
    (await nsExec(t.client, 'nft', ['list', 'set', 'inet', 'awg', name], { allowFail: true }))
      .stdout;

  beforeAll(async () => {
    await sweepStaleNetns();
    t = await createPerAppTopology();
    ce = makeAwgEnv();
    // a certificate for the https list's name; the daemon trusts it as an extra CA
    const cert = join(ce.dir, 'c.pem');
    const key = join(ce.dir, 'k.pem');
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
        `/CN=${TLS_NAME}`,
        '-addext',
        `subjectAltName=DNS:${TLS_NAME}`,
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    ce.env.NODE_EXTRA_CA_CERTS = cert;
    writeFileSync(join(ce.dir, 'proxied.txt'), '192.0.2.0/24\n');
    writeFileSync(join(ce.dir, 'tls.txt'), '198.51.100.0/24\n');
    writeFileSync(join(ce.dir, 'named.txt'), '203.0.113.0/24\n');
    lists = nsSpawn(t.server, process.execPath, ['-e', LISTS_JS, ADDR.server, ce.dir, cert, key]);
    await eventually(() => lists!.output().includes('listening'), 'the list server listens');
    // t1's resolver on peer1's loopback: the named list's host is the server
    await run('ip', ['-n', t.peer1, 'addr', 'add', `${TUN_DNS}/32`, 'dev', 'lo']);
    const zone = join(ce.dir, 'zone.json');
    writeFileSync(zone, JSON.stringify({ [NAMED]: ADDR.server }));
    tunDns = nsSpawn(t.peer1, process.execPath, ['-e', DNS_ZONE_SERVER, TUN_DNS, zone]);
    await eventually(() => tunDns!.output().includes('listening'), 't1’s DNS listens');
    // the trap: the daemon's /etc/resolv.conf names it; it knows no name and logs what it is asked
    const empty = join(ce.dir, 'empty-zone.json');
    writeFileSync(empty, '{}');
    trap = nsSpawn(t.router, process.execPath, ['-e', DNS_ZONE_SERVER, ADDR.routerClient, empty]);
    await eventually(() => trap!.output().includes('listening'), 'the trap DNS listens');
    resolvConf = join(ce.dir, 'resolv.private');
    writeFileSync(resolvConf, `nameserver ${ADDR.routerClient}\noptions timeout:1 attempts:1\n`, {
      mode: 0o644,
    });
    // the proxy on peer1, with its own resolver for the https list's name
    proxy = nsSpawn(t.peer1, process.execPath, [
      '-e',
      PROXY_JS,
      ADDR.peer1,
      String(PROXY_PORT),
      JSON.stringify({ [TLS_NAME]: ADDR.server }),
    ]);
    await eventually(() => proxy!.output().includes('listening'), 'the proxy listens');
    cfg = join(ce.dir, 'client.yaml');
    writeFileSync(cfg, config());
    d = await startDaemon(t.client, ce, cfg, [], { resolvConf });
  }, 240_000);

  afterAll(async () => {
    await d?.stop();
    if (t && ce)
      await awgd(t.client, ce, ['down', '--direct', '--state-dir', ce.stateDir]).catch(
        () => undefined,
      );
    for (const p of [lists, proxy, tunDns, trap]) await p?.kill(500);
    await t?.destroy();
    if (ce) cleanupAwgEnv(ce);
  }, 120_000);

  it('via h1 (HTTP CONNECT): fetched at start and on `awg lists update` through the proxy; the list server never sees the client', async () => {
    await fetchedByDaemon(PROXIED);
    const c0 = connects(`${ADDR.server}:9103`);
    expect(c0.length).toBeGreaterThan(0);
    expect(new Set(c0)).toEqual(new Set([ADDR.client]));
    const g0 = getsFrom('9103/proxied.txt');
    expect(new Set(g0)).toEqual(new Set([ADDR.peer1]));
    await eventually(
      async () => (await elems('d4_proxied')).includes('192.0.2.0/24'),
      'the proxied list applied',
    );
    const r = await d!.cli(['lists', 'update', '--list', PROXIED]);
    expect(r.code, showRun(r)).toBe(0);
    expect(r.stdout).toContain(`${PROXIED}: not modified`);
    expect(connects(`${ADDR.server}:9103`)).toEqual([...c0, ADDR.client]);
    expect(getsFrom('9103/proxied.txt')).toEqual([...g0, ADDR.peer1]);
  });

  it('an https URL via h1: TLS inside the CONNECT; the name goes to the proxy, never to a resolver', async () => {
    await fetchedByDaemon(TLSED);
    expect(new Set(connects(`${TLS_NAME}:9443`))).toEqual(new Set([ADDR.client]));
    expect(new Set(getsFrom('9443/tls.txt'))).toEqual(new Set([ADDR.peer1]));
    expect(dnsQueries(trap!.output(), TLS_NAME)).toEqual([]);
    expect(dnsQueries(tunDns!.output(), TLS_NAME)).toEqual([]);
    await eventually(
      async () => (await elems('d4_tlsed')).includes('198.51.100.0/24'),
      'the https list applied',
    );
  });

  it('a host name via t1: looked up with t1’s dns through the link, fetched through t1; the host’s resolver is never asked', async () => {
    await fetchedByDaemon(NAMEDURL);
    const asked = dnsQueries(tunDns!.output(), NAMED);
    expect(asked.length).toBeGreaterThan(0);
    expect(new Set(asked.map((q) => q.from))).toEqual(new Set([ADDR.tun1Client]));
    expect(new Set(getsFrom('9104/named.txt'))).toEqual(new Set([ADDR.tun1Client]));
    expect(dnsQueries(trap!.output(), NAMED)).toEqual([]);
    await eventually(
      async () => (await elems('d4_named')).includes('203.0.113.0/24'),
      'the named list applied',
    );
    // the trap is what the system resolver asks in the daemon's mount namespace
    const g = await run(
      'nsenter',
      [
        `--net=${netnsPath(t.client)}`,
        '--',
        ...inMountNs(['getent', 'ahostsv4', NAMED], resolvConf).flat(),
      ],
      { allowFail: true },
    );
    expect(g.code).not.toBe(0);
    await eventually(
      () => dnsQueries(trap!.output(), NAMED).length > 0,
      'the trap asked by the system resolver',
    );
  });

  it('awg lists update --direct: the same routes, built from the config (proxy, t1’s link and dns)', async () => {
    const before = {
      proxied: connects(`${ADDR.server}:9103`).length,
      tls: connects(`${TLS_NAME}:9443`).length,
      named: dnsQueries(tunDns!.output(), NAMED).length,
      namedGets: getsFrom('9104/named.txt').length,
      trap: dnsQueries(trap!.output()).length,
    };
    const [cmd, args] = inMountNs(
      [process.execPath, AWG_BIN, 'lists', 'update', '--direct'],
      resolvConf,
    );
    const r = await run(
      'nsenter',
      [`--net=${netnsPath(t.client)}`, '--', cmd, ...args, '-f', cfg, '--state-dir', ce.stateDir],
      { allowFail: true, env: ce.env, timeoutMs: 60_000 },
    );
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    for (const u of [PROXIED, TLSED, NAMEDURL]) expect(r.stdout).toContain(`${u}: not modified`);
    expect(connects(`${ADDR.server}:9103`).length).toBe(before.proxied + 1);
    expect(connects(`${TLS_NAME}:9443`).length).toBe(before.tls + 1);
    expect(getsFrom('9103/proxied.txt').every((a) => a === ADDR.peer1)).toBe(true);
    expect(getsFrom('9443/tls.txt').every((a) => a === ADDR.peer1)).toBe(true);
    const asked = dnsQueries(tunDns!.output(), NAMED);
    expect(asked.length).toBeGreaterThan(before.named);
    expect(asked.every((q) => q.from === ADDR.tun1Client)).toBe(true);
    const gets = getsFrom('9104/named.txt');
    expect(gets.length).toBe(before.namedGets + 1);
    expect(gets.every((a) => a === ADDR.tun1Client)).toBe(true);
    // no name of a list asked of the host's resolver
    expect(dnsQueries(trap!.output()).length).toBe(before.trap);
  });
});
