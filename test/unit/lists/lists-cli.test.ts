/**
 * `awg lists update|status`: through a fake daemon (UpdateLists, the status's lists) and
 * directly (the cache of a state directory, a loopback list server); `awg diff` of a config
 * with a list by URL ends with the list's line.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listsCommand } from '../../../src/cli/commands/lists.js';
import type { Io } from '../../../src/cli/output.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { ListCache } from '../../../src/util/list-cache.js';
import { FakeCore, sampleStatus } from '../daemon/server-fake-core.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'awg-lists-cli-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
};
function capture(): { io: Io; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { out: (s) => (out += s), err: (s) => (err += s), colour: false },
    out: () => out,
    err: () => err,
  };
}

let body = 'a.example\n192.0.2.0/24\n';
let server: Server;
let url = '';
beforeAll(async () => {
  server = createServer((_q, s) => s.end(body));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/l.txt`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

const config = () =>
  `version: 1
tunnels:
  px:
    type: socks5
    server: 127.0.0.1
    port: 1080
    udp: true
rules:
  - name: blocked
    to:
      lists:
        - {url: "${url}"}
    target: px
`;

describe('awg lists', () => {
  it('through the daemon: update prints each fetch and the lists after; status the lists; exit 2 on a failure', async () => {
    const core = new FakeCore();
    const now = new Date().toISOString();
    core.updateListsValue = {
      results: [
        { type: 'list', at: 'x', list: 'https://l.example/a', result: 'fetched', entries: 41_203 },
        {
          type: 'list',
          at: 'x',
          list: 'https://l.example/b',
          result: 'failed',
          error: 'HTTP 503',
          entries: 7,
        },
      ],
      lists: [
        {
          list: 'https://l.example/a',
          rules: ['blocked'],
          state: 'ok',
          format: 'plain',
          entries: 41_203,
          fetchedAt: now,
          checkedAt: now,
          failures: 0,
          failuresTotal: 0,
          refresh: '6h',
        },
        {
          list: 'https://l.example/b',
          rules: ['other'],
          state: 'stale',
          format: 'plain',
          entries: 7,
          error: 'HTTP 503',
          failures: 1,
          failuresTotal: 1,
          refresh: '6h',
        },
      ],
    };
    core.statusValue = { ...sampleStatus(), lists: core.updateListsValue.lists };
    const socket = join(tmp(), 'awg.sock');
    const srv = await startApiServer(core, { socketPath: socket });
    cleanups.push(() => srv.close());
    const c = capture();
    expect(await listsCommand(c.io, 'update', { socket })).toBe(2);
    expect(c.out()).toContain('https://l.example/a: fetched, 41,203 entries\n');
    expect(c.out()).toContain(
      'https://l.example/b: failed: HTTP 503 (the last good copy stays: 7 entries)\n',
    );
    expect(c.out()).toContain(
      'list https://l.example/b (other): STALE — the last fetch failed: HTTP 503; the last good copy stays in use (plain, 7 entries)',
    );
    expect(core.calls.at(-1)).toEqual({ method: 'updateLists', arg: { list: undefined } });
    const s = capture();
    expect(await listsCommand(s.io, 'status', { socket, list: 'https://l.example/a' })).toBe(0);
    expect(s.out()).toMatch(
      // fetched "now" when the fake was made: 0s ago, or more on a loaded machine
      /^list https:\/\/l\.example\/a \(blocked\): ok \(plain, 41,203 entries, fetched \d+[smh] ago\)\n$/,
    );
  });

  it('directly: update fetches into the cache; status reads it; a failure keeps the copy (exit 2)', async () => {
    const d = tmp();
    const cfg = join(d, 'awg.yaml');
    writeFileSync(cfg, config());
    const stateDir = join(d, 'state');
    const c = capture();
    expect(await listsCommand(c.io, 'status', { file: cfg, stateDir, direct: true })).toBe(2);
    expect(c.out()).toContain(`list ${url} (blocked): pending — not fetched yet`);
    const u = capture();
    expect(await listsCommand(u.io, 'update', { file: cfg, stateDir, direct: true }), u.err()).toBe(
      0,
    );
    expect(u.out()).toContain(`${url}: fetched, 2 entries`);
    expect(new ListCache(stateDir).read(url)!.bytes.toString()).toBe(body);
    body = 'not an entry!\n';
    const bad = capture();
    expect(
      await listsCommand(bad.io, 'update', { file: cfg, stateDir, direct: true, json: true }),
    ).toBe(2);
    const j = JSON.parse(bad.out()) as {
      results: { result: string; refused?: boolean }[];
      lists: { state: string; entries: number }[];
    };
    expect(j.results[0]).toMatchObject({ result: 'failed', refused: true });
    expect(j.lists[0]).toMatchObject({ state: 'stale', entries: 2 });
    body = 'a.example\n192.0.2.0/24\n';
  });
});
