/**
 * Lists by URL against the real kernel, through the daemon (`awg daemon` from dist/), in the
 * topology of perapp-topology.ts:
 * - first start offline (the list server not running): the apply converges, the list is
 *   pending, its rule inactive (no set), and status, diff and validate say so;
 * - the server up, `awg lists update` fetches the list; the daemon applies it: the rule's
 *   set holds the list's prefixes and a listed address goes through t1;
 * - the served list edited: after `awg lists update` only the difference is applied (the
 *   set keeps its kernel handle: changed in place, not made again);
 * - the server stopped: `awg lists update` fails, the last good copy stays (the set, the
 *   route), and the warning is in `awg status`, the HTTP API's status (the UI's) and /metrics;
 * - a list with `via: t1` whose server is reachable only through peer1 (an address on the
 *   peer's loopback) is fetched through the tunnel;
 * - a list with `via: s1` (a SOCKS5 tunnel: microsocks in peer1) whose server is on another
 *   address of peer1's loopback is fetched through the proxy (the server sees the proxy's
 *   connection, not the client or its tunnel address).
 */
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, type AwgEnv } from '../helpers/awg.js';
import {
  netnsPath,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import {
  ADDR,
  awgd,
  clientTunnels,
  createPerAppTopology,
  eventually,
  pathOf,
  showRun,
  startDaemon,
  type Daemon,
  type PerAppTopology,
} from './perapp-topology.js';

const skip = requireNetnsPrereqs(['nft', 'microsocks']);

const LIST_PORT = 9100;
const VIA_ADDR = '10.200.91.1';
const VIA_PORT = 9101;
const LISTED = `http://${ADDR.server}:${LIST_PORT}/list.txt`;
const VIAED = `http://${VIA_ADDR}:${VIA_PORT}/via.txt`;
const NEVER = `http://${ADDR.server}:9199/never.txt`;
const SOCKS_ADDR = '10.200.92.1';
const SOCKS_LIST_PORT = 9102;
const SOCKSED = `http://${SOCKS_ADDR}:${SOCKS_LIST_PORT}/socks.txt`;

/** a list server: the file's content with an ETag (its length and mtime), 304 on a match */
const LIST_JS = `
const http = require('http'), fs = require('fs');
const [addr, port, file] = process.argv.slice(1);
http.createServer((q, s) => {
  let body;
  try { body = fs.readFileSync(file); } catch { s.writeHead(404).end(); return; }
  const etag = '"' + require('crypto').createHash('sha256').update(body).digest('hex').slice(0, 16) + '"';
  console.log('GET ' + q.url + ' inm=' + (q.headers['if-none-match'] || '') + ' from ' + q.socket.remoteAddress);
  if (q.headers['if-none-match'] === etag) { s.writeHead(304, { etag }).end(); return; }
  s.writeHead(200, { etag, 'content-type': 'text/plain' }).end(body);
}).listen(Number(port), addr, () => console.log('listening'));
`;

const FETCH_JS = `
const http = require('http');
const q = http.get({ host: process.argv[1], port: Number(process.argv[2]), path: '/', timeout: 4000, agent: false }, (r) => {
  let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(b));
});
q.on('timeout', () => { q.destroy(); console.log(JSON.stringify({ err: 'ETIMEDOUT' })); });
q.on('error', (e) => console.log(JSON.stringify({ err: e.code })));
`;

describe.skipIf(skip)(
  'lists by URL: fetched, applied as a difference, kept when the server goes',
  () => {
    let t: PerAppTopology;
    let ce: AwgEnv;
    let d: Daemon | undefined;
    let listSrv: NsProcess | undefined;
    let viaSrv: NsProcess | undefined;
    let socksSrv: NsProcess | undefined;
    let microsocks: NsProcess | undefined;
    let cfg = '';
    let listFile = '';
    let viaFile = '';

    const config = () => `version: 1
${clientTunnels(t.keys)}  s1: { type: socks5, server: ${ADDR.peer1}, port: 1080 }
rules:
  - name: listed
    to:
      lists:
        - {url: "${LISTED}", refresh: 1m}
    target: t1
  - name: viaed
    to:
      lists:
        - {url: "${VIAED}", refresh: 1m, via: t1}
    target: t2
  - name: offline
    to:
      lists:
        - {url: "${NEVER}", refresh: 1m}
    target: t1
  - name: socksed
    to:
      lists:
        - {url: "${SOCKSED}", refresh: 1m, via: s1}
    target: t2
default: direct
`;

    const startListServer = async () => {
      listSrv = nsSpawn(t.server, process.execPath, [
        '-e',
        LIST_JS,
        ADDR.server,
        String(LIST_PORT),
        listFile,
      ]);
      await eventually(() => listSrv!.output().includes('listening'), 'the list server listens');
    };

    /** the elements of an nft set of the client's table, and its kernel handle */
    const set = async (name: string): Promise<{ handle: number; elems: string[] } | undefined> => {
      const r = await nsExec(t.client, 'nft', ['-a', '-j', 'list', 'set', 'inet', 'awg', name], {
        allowFail: true,
      });
      if (r.code !== 0) return undefined;
      type Elem = string | { prefix: { addr: string; len: number } } | { range: [string, string] };
      const doc = JSON.parse(r.stdout) as {
        nftables: { set?: { handle: number; elem?: Elem[] } }[];
      };
      const s = doc.nftables.find((x) => x.set)!.set!;
      const show = (e: Elem) =>
        typeof e === 'string'
          ? e
          : 'prefix' in e
            ? `${e.prefix.addr}/${e.prefix.len}`
            : `${e.range[0]}-${e.range[1]}`;
      return { handle: s.handle, elems: (s.elem ?? []).map(show).sort() };
    };

    /** the path a plain program's connection to the server's echo takes */
    const fetchPath = async (addr: string): Promise<string> => {
      const r = await run(
        'nsenter',
        [
          `--net=${netnsPath(t.client)}`,
          '--',
          process.execPath,
          '-e',
          FETCH_JS,
          addr,
          String(t.ports[0]),
        ],
        { allowFail: true },
      );
      const o = JSON.parse(r.stdout.trim() || '{}') as { from?: string; err?: string };
      return o.from ? pathOf(o.from) : `error:${o.err ?? r.stderr}`;
    };

    /** the daemon's HTTP API (what `awg ui` shows), over its socket */
    const api = (path: string): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const q = request({ socketPath: d!.socket, path, headers: { host: 'awg' } }, (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => resolve(JSON.parse(b)));
        });
        q.on('error', reject);
        q.end();
      });

    const metrics = async (): Promise<string> => {
      const m = /metrics on (http:\/\/[^\s"]+)/.exec(d!.proc.output());
      if (!m) throw new Error(`no metrics address in the daemon's output:\n${d!.proc.output()}`);
      const r = await nsExec(t.client, process.execPath, [
        '-e',
        `fetch(${JSON.stringify(m[1])}).then(r => r.text()).then(t => process.stdout.write(t))`,
      ]);
      return r.stdout;
    };

    type Lists = {
      list: string;
      state: string;
      entries?: number;
      error?: string;
      rules: string[];
    }[];
    const statusLists = async (): Promise<Lists> => {
      const st = await d!.cli(['status', '--json']);
      return st.json<{ lists?: Lists }>().lists ?? [];
    };

    beforeAll(async () => {
      await sweepStaleNetns();
      t = await createPerAppTopology();
      ce = makeAwgEnv();
      listFile = join(ce.dir, 'list.txt');
      viaFile = join(ce.dir, 'via.txt');
      writeFileSync(listFile, `# through t1\n${ADDR.server}\n198.51.100.0/24\n`);
      writeFileSync(viaFile, '192.0.2.0/24\n');
      // the via list's server: an address on peer1's loopback, which only the tunnel reaches
      await run('ip', ['-n', t.peer1, 'addr', 'add', `${VIA_ADDR}/32`, 'dev', 'lo']);
      viaSrv = nsSpawn(t.peer1, process.execPath, [
        '-e',
        LIST_JS,
        VIA_ADDR,
        String(VIA_PORT),
        viaFile,
      ]);
      await eventually(() => viaSrv!.output().includes('listening'), 'the via list server listens');
      // the SOCKS5 list's server: another address of peer1's loopback, reached by microsocks there
      const socksFile = join(ce.dir, 'socks.txt');
      writeFileSync(socksFile, '198.18.0.0/15\n');
      await run('ip', ['-n', t.peer1, 'addr', 'add', `${SOCKS_ADDR}/32`, 'dev', 'lo']);
      socksSrv = nsSpawn(t.peer1, process.execPath, [
        '-e',
        LIST_JS,
        SOCKS_ADDR,
        String(SOCKS_LIST_PORT),
        socksFile,
      ]);
      await eventually(
        () => socksSrv!.output().includes('listening'),
        'the socks list server listens',
      );
      microsocks = nsSpawn(t.peer1, 'microsocks', ['-i', ADDR.peer1, '-p', '1080']);
      cfg = join(ce.dir, 'client.yaml');
      writeFileSync(cfg, config());
      d = await startDaemon(t.client, ce, cfg, ['--metrics', '127.0.0.1:0']);
    }, 240_000);

    afterAll(async () => {
      await d?.stop();
      if (t && ce)
        await awgd(t.client, ce, ['down', '--direct', '--state-dir', ce.stateDir]).catch(
          () => undefined,
        );
      await listSrv?.kill(500);
      await viaSrv?.kill(500);
      await socksSrv?.kill(500);
      await microsocks?.kill(500);
      await t?.destroy();
      if (ce) cleanupAwgEnv(ce);
    }, 120_000);

    it('first start offline: converged, the list pending and its rule inactive; status, diff and validate say so', async () => {
      const lists = await statusLists();
      expect(lists.find((l) => l.list === LISTED)).toMatchObject({
        state: 'pending',
        rules: ['listed'],
      });
      expect(lists.find((l) => l.list === NEVER)).toMatchObject({ state: 'pending' });
      expect(await set('d4_listed')).toBeUndefined();
      expect(await fetchPath(ADDR.server)).toBe('direct');
      const text = await d!.cli(['status']);
      expect(text.stdout).toContain(`list ${LISTED} (listed): pending — not fetched yet`);
      const diff = await d!.cli(['diff', '-f', cfg]);
      expect(diff.stdout, showRun(diff)).toMatch(
        new RegExp(`listed → list ${LISTED.replace(/[.]/g, '\\.')} \\(not fetched yet`),
      );
      const v = await awgd(t.client, { ...ce, env: { ...ce.env, AWG_STATE_DIR: ce.stateDir } }, [
        'validate',
        '-f',
        cfg,
      ]);
      expect(v.code, showRun(v)).toBe(0);
      expect(v.stderr).toContain(
        `list ${NEVER}: not fetched yet: run \`awg lists update\` or start the daemon`,
      );
      expect(v.stderr).toContain(
        'rule offline is inactive (matches no destination) until its lists are fetched',
      );
    });

    it('via t1: the list whose server only the tunnel reaches is fetched through it', async () => {
      // directly, the address is not reachable from the client
      const direct = await nsExec(t.client, 'curl', ['-sS', '-m', '3', VIAED], { allowFail: true });
      expect(direct.code).not.toBe(0);
      await eventually(
        async () => (await statusLists()).find((l) => l.list === VIAED)?.state === 'ok',
        'the via list fetched by the daemon',
        90_000,
      ).catch(async (e: Error) => {
        throw new Error(
          `${e.message}\n${JSON.stringify(await statusLists())}\n${viaSrv!.output()}`,
        );
      });
      expect(viaSrv!.output()).toMatch(
        new RegExp(`GET /via.txt inm= from ${ADDR.tun1Client.replace(/\./g, '\\.')}`),
      );
      await eventually(
        async () => (await set('d4_viaed'))?.elems.includes('192.0.2.0/24') === true,
        'the via list applied',
      );
    });

    it('via s1 (SOCKS5): the list is fetched through the proxy', async () => {
      const direct = await nsExec(t.client, 'curl', ['-sS', '-m', '3', SOCKSED], {
        allowFail: true,
      });
      expect(direct.code).not.toBe(0);
      await eventually(
        async () => (await statusLists()).find((l) => l.list === SOCKSED)?.state === 'ok',
        'the socks list fetched by the daemon',
        90_000,
      ).catch(async (e: Error) => {
        throw new Error(
          `${e.message}\n${JSON.stringify(await statusLists())}\n${socksSrv!.output()}\n${microsocks!.output()}`,
        );
      });
      // microsocks connected from peer1 itself (to its own loopback address)
      expect(socksSrv!.output()).toMatch(
        new RegExp(`GET /socks.txt inm= from ${SOCKS_ADDR.replace(/\./g, '\\.')}`),
      );
      await eventually(
        async () => (await set('d4_socksed'))?.elems.includes('198.18.0.0/15') === true,
        'the socks list applied',
      );
    });

    it('the server up: awg lists update fetches it; the rule’s set holds the prefixes; a listed address goes through t1', async () => {
      await startListServer();
      const r = await d!.cli(['lists', 'update', '--list', LISTED]);
      expect(r.code, showRun(r)).toBe(0);
      expect(r.stdout).toContain(`${LISTED}: fetched, 2 entries`);
      await eventually(async () => (await set('d4_listed')) !== undefined, 'the list applied');
      expect((await set('d4_listed'))!.elems).toEqual([ADDR.server, '198.51.100.0/24'].sort());
      expect(await fetchPath(ADDR.server)).toBe('t1');
      expect((await statusLists()).find((l) => l.list === LISTED)).toMatchObject({
        state: 'ok',
        entries: 2,
      });
      // again: the server says 304, nothing changes
      const again = await d!.cli(['lists', 'update', '--list', LISTED]);
      expect(again.stdout).toContain(`${LISTED}: not modified, 2 entries`);
      expect(listSrv!.output()).toMatch(/GET \/list\.txt inm="[0-9a-f]{16}"/);
    });

    it('the list edited: only the difference is applied (the set keeps its handle)', async () => {
      const before = (await set('d4_listed'))!;
      writeFileSync(listFile, `${ADDR.server}\n203.0.113.0/24\n`);
      const r = await d!.cli(['lists', 'update']);
      expect(r.stdout, showRun(r)).toContain(`${LISTED}: fetched, 2 entries`);
      await eventually(
        async () => (await set('d4_listed'))?.elems.includes('203.0.113.0/24') === true,
        'the edited list applied',
      );
      const after = (await set('d4_listed'))!;
      expect(after.elems).toEqual([ADDR.server, '203.0.113.0/24'].sort());
      // changed in place: the same kernel object; a set made again has a new handle
      expect(after.handle).toBe(before.handle);
      // the kernel's comment still names the first content; the record the one it holds
      const listing = (await nsExec(t.client, 'nft', ['list', 'set', 'inet', 'awg', 'd4_listed']))
        .stdout;
      expect(listing).toMatch(/comment "awg n=2 sha256=[0-9a-f]+"/);
      expect(await fetchPath(ADDR.server)).toBe('t1');
      const events = await d!.cli(['status']);
      expect(events.code, showRun(events)).toBe(0);
    });

    it('the server stopped: the update fails, the last good copy stays and routes; status, the API and metrics warn', async () => {
      await listSrv!.kill(500);
      listSrv = undefined;
      const r = await d!.cli(['lists', 'update', '--list', LISTED]);
      expect(r.code, showRun(r)).toBe(2);
      expect(r.stdout).toMatch(
        new RegExp(`${LISTED.replace(/[.]/g, '\\.')}: failed: .*ECONNREFUSED`),
      );
      expect(r.stdout).toContain('the last good copy stays: 2 entries');
      expect((await set('d4_listed'))!.elems).toEqual([ADDR.server, '203.0.113.0/24'].sort());
      expect(await fetchPath(ADDR.server)).toBe('t1');
      const text = await d!.cli(['status']);
      expect(text.stdout).toMatch(
        new RegExp(
          `list ${LISTED.replace(/[.]/g, '\\.')} \\(listed\\): STALE — the last fetch failed: .*ECONNREFUSED.*the last good copy stays in use \\(plain, 2 entries`,
        ),
      );
      const doc = (await api('/api/status')) as { lists?: Lists };
      expect(doc.lists?.find((l) => l.list === LISTED)).toMatchObject({
        state: 'stale',
        entries: 2,
        error: expect.stringMatching(/ECONNREFUSED/),
      });
      const m = await metrics();
      expect(m).toContain(`awg_list_state{list="${LISTED}",state="stale"} 1`);
      expect(m).toContain(`awg_list_entries{list="${LISTED}"} 2`);
      expect(m).toMatch(
        new RegExp(
          `^awg_list_fetch_failures_total\\{list="${LISTED.replace(/[.]/g, '\\.')}"\\} [1-9]`,
          'm',
        ),
      );
      expect(m).toContain(`awg_list_state{list="${NEVER}",state="pending"} 1`);
    });
  },
);
