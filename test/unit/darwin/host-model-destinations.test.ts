/**
 * Destination rules (`to:`) on macOS, end to end on the host model: the real Daemon reads a
 * config whose rules name addresses (inline and from a list file), domains, and a program
 * with addresses; the loader's destinations reach its flow router (pipeline/prepare.ts →
 * daemon → FlowRouterHost), which decides per connection by owner and original destination,
 * and by the TLS SNI or HTTP Host the app sends first. The router runs on this host's
 * loopback with fake system calls, as in host-model-perapp-rig.ts; DIOCNATLOOK answers each
 * app's own destination, and the destinations are loopback addresses (127.0.0.2-4: Linux
 * answers all of 127/8), each a server that says which address it is. Where a flow went is
 * what the pinned socket records: utun0 (the tunnel) or en0 (direct). Verified on the model
 * only (docs/platform-macos.md#destination-rules).
 */
import { connect, createServer, type Server } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AF_INET, SOCK_CLOEXEC, SOCK_STREAM, socket } from '../../../src/native/libc.js';
import { darwinPlatform } from '../../../src/resources/platform/darwin.js';
import { createInprocEngineHost } from '../../../src/resources/engine/inproc.js';
import type { DarwinFlowNatives } from '../../../src/resources/flow/flow-router-darwin.js';
import { FileStateStore } from '../../../src/util/state.js';
import { modelEngineIo } from '../../helpers/macos-host/engine.js';
import { MacHost } from '../../helpers/macos-host/model.js';
import { pfPath } from '../../helpers/macos-host/pf-eval.js';
import { macConfig, WEB } from '../../helpers/macos-host/scenario.js';
import { freePort } from '../../helpers/route-servers.js';
import { modelDaemon } from '../../helpers/macos-host/daemon.js';
import { cat, inpcb, rest, socket as xsocket, xinpgen } from '../../helpers/pcblist-bytes.js';
import { clientHello } from '../../helpers/tls-hello.js';

const CURL = 601;
const NOTES = 603;
const PATHS: Record<number, string> = {
  [CURL]: '/usr/bin/curl',
  [NOTES]: '/Applications/Notes.app/Contents/MacOS/Notes',
};

const RULES = `rules:
  - name: office
    to: { lists: [office.txt] }
    target: home
  - name: web
    to: { domains: [tunnelled.example] }
    target: home
  - name: curl-db
    match: { name: curl }
    to: { cidrs: [127.0.0.4/32] }
    target: home
`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** a destination at `addr`:`port`: greets with `addr>` on connect, answers `:<bytes it got>` */
async function destination(addr: string, port: number): Promise<Server> {
  const server = createServer((s) => {
    s.write(`${addr}>`);
    let n = 0;
    s.on('data', (d) => {
      n += d.length;
      s.end(`:${n}`);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(port, addr, r));
  return server;
}

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'awg-machost-dest-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const dport = await freePort();
  writeFileSync(join(dir, 'office.txt'), '# the office network\n127.0.0.2/32\n203.0.113.0/24\n');
  const file = join(dir, 'awg.yaml');
  writeFileSync(
    file,
    macConfig({ killSwitch: false })
      .replace('default: home', 'default: direct')
      .replace('system: default-tunnel', 'system: keep') +
      RULES +
      `routing: { proxyPortBase: ${port} }\n`,
    { mode: 0o600 },
  );
  for (const a of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
    const s = await destination(a, dport);
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  }
  const host = MacHost.laptop();
  // the app's local port → its pid and where it connected (what DIOCNATLOOK answers)
  // (gen: the socket's generation, unique per socket as inp_gencnt is, ports reused or not)
  const apps = new Map<number, { pid: number; dst: string; gen: bigint }>();
  let gen = 0n;
  const pinned: string[] = [];
  const natives: DarwinFlowNatives = {
    sysctl: () => {
      const recs = [...apps].flatMap(([p, a]) => [
        inpcb(false, [127, 0, 0, 1], p, a.dst.split('.').map(Number), dport, a.gen),
        xsocket(501, a.pid, 0),
        ...rest(4),
      ]);
      return cat([xinpgen(apps.size), ...recs, xinpgen(apps.size)]);
    },
    pidPath: (pid) => PATHS[pid],
    originalDst: (_local, app) => ({ address: apps.get(app.port)?.dst ?? '', port: dport }),
    boundTcpFd: (ifname) => {
      pinned.push(ifname);
      const fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) throw new Error(`socket: ${-fd}`);
      return fd;
    },
  };
  const { io } = await modelEngineIo(host);
  const { d, events, finished } = modelDaemon({
    configPath: file,
    platform: darwinPlatform,
    exec: host,
    state: new FileStateStore(join(dir, 'state')),
    engines: createInprocEngineHost({ io, uapi: false }),
    flowRouter: { natives: async () => natives, subnets: () => ['192.168.1.0/24'] },
  });
  cleanups.push(async () => {
    await d.stop();
  });
  /**
   * `pid` connects to `dst` as PF would redirect it (to the router's port) and sends `first`
   * (nothing: it waits for the server to speak first, then sends one byte); resolves with
   * what came back (`<addr>>:<n>`) and the interface the router's socket was pinned to.
   */
  const app = async (pid: number, dst: string, first?: Buffer | string) => {
    const local = await freePort();
    apps.set(local, { pid, dst, gen: ++gen });
    const before = pinned.length;
    const got = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort: local });
      let out = '';
      s.on('connect', () => {
        if (first !== undefined) s.write(first);
      });
      s.on('data', (b) => {
        out += b.toString();
        if (first === undefined && out.endsWith('>')) s.write('x');
      });
      s.on('error', () => resolve('reset'));
      s.on('close', () => resolve(out || 'reset'));
    });
    return { got, via: pinned.slice(before).join(',') };
  };
  return { d, events, finished, host, port, app, dir, file };
}

describe('macOS host model: destination rules through the daemon and its flow router', () => {
  it('cidrs (from a list file) route only their addresses to the tunnel; domains by TLS SNI and by HTTP Host; program+cidrs only for that program; the rest takes the default (direct)', async () => {
    const t = await setup();
    await t.d.start();
    const run = await t.finished(1);
    expect(run, JSON.stringify(t.events.filter((e) => e.type === 'error'))).toMatchObject({
      outcome: 'converged',
    });

    // office: 127.0.0.2 (listed in office.txt) into the tunnel, whoever connects
    expect(await t.app(NOTES, '127.0.0.2', 'hello')).toEqual({ got: '127.0.0.2>:5', via: 'utun0' });
    expect(await t.app(CURL, '127.0.0.2', 'hello')).toEqual({ got: '127.0.0.2>:5', via: 'utun0' });
    expect(await t.app(NOTES, '127.0.0.3', 'hello')).toEqual({ got: '127.0.0.3>:5', via: 'en0' });

    // web: by the name the app asks for; the bytes read for it reach the destination whole
    const hello = await clientHello('www.tunnelled.example');
    expect(await t.app(NOTES, '127.0.0.3', hello)).toEqual({
      got: `127.0.0.3>:${hello.length}`,
      via: 'utun0',
    });
    const other = await clientHello('www.other.example');
    expect(await t.app(NOTES, '127.0.0.3', other)).toEqual({
      got: `127.0.0.3>:${other.length}`,
      via: 'en0',
    });
    const get = (host: string) => `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
    expect(await t.app(NOTES, '127.0.0.3', get('TUNNELLED.example:80'))).toMatchObject({
      via: 'utun0',
    });
    expect(await t.app(NOTES, '127.0.0.3', get('tunnelled.example.org'))).toMatchObject({
      via: 'en0',
    });
    // a protocol where the server speaks first: no name comes; after the wait, by address
    expect(await t.app(NOTES, '127.0.0.3')).toEqual({ got: '127.0.0.3>:1', via: 'en0' });
    expect(await t.app(NOTES, '127.0.0.2')).toEqual({ got: '127.0.0.2>:1', via: 'utun0' });

    // curl-db: 127.0.0.4 into the tunnel for curl only
    expect(await t.app(CURL, '127.0.0.4', 'q')).toEqual({ got: '127.0.0.4>:1', via: 'utun0' });
    expect(await t.app(NOTES, '127.0.0.4', 'q')).toEqual({ got: '127.0.0.4>:1', via: 'en0' });
    expect(await t.app(CURL, '127.0.0.3', 'q')).toEqual({ got: '127.0.0.3>:1', via: 'en0' });

    // per-rule counters: connections each rule decided
    const byRule = Object.fromEntries(
      ((await t.d.status()).rules ?? []).map((r) => [r.name, r.connections]),
    );
    expect(byRule).toEqual({ office: 3, web: 2, 'curl-db': 1 });

    // user processes' UDP goes to the router too, whatever its destination (its rules are
    // decided there by address: host-model-udp.test.ts)
    const user = { ...WEB, uid: 501 };
    const router = { redirect: '127.0.0.1', port: t.port };
    expect(pfPath(t.host, { ...user, proto: 'udp', dst: '203.0.113.9', dport: 443 })).toEqual(
      router,
    );
    expect(pfPath(t.host, { ...user, proto: 'udp', dport: 443 })).toEqual(router);
    expect(pfPath(t.host, user)).toEqual(router);

    // an edit of the list (and the config, so the daemon reloads): the next connection is
    // judged by the new entries, by the same router
    writeFileSync(join(t.dir, 'office.txt'), '127.0.0.3/32\n');
    writeFileSync(t.file, readFileSync(t.file, 'utf8') + '# edited\n', { mode: 0o600 });
    t.d.wake('config');
    expect(await t.finished(2)).toMatchObject({ outcome: 'unchanged' });
    expect(await t.app(NOTES, '127.0.0.2', 'hello')).toEqual({ got: '127.0.0.2>:5', via: 'en0' });
    expect(await t.app(NOTES, '127.0.0.3', 'hello')).toEqual({ got: '127.0.0.3>:5', via: 'utun0' });
    expect((await t.d.status()).placement?.reason).toMatch(
      /connections so far: direct \d+, home \d+$/,
    );
  });
});
