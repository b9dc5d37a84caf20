/**
 * The daemon API with root and the real kernel:
 * - socket permissions hold against a real unprivileged user (setpriv --reuid 65534): the
 *   0600 socket refuses nobody (the CLI says so, exit 4), the 0660 group socket lets the
 *   group in (control: the same command succeeds);
 * - `awg daemon --socket … --metrics …` in a namespace: the CLI drives it (status, apply,
 *   diff, events, down), GET /api/events streams its snapshot and events and resumes after a
 *   Last-Event-ID, and no secret (the private key) appears in status, events, the SSE
 *   stream, plans, the daemon's logs or the metrics.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../src/daemon/server.js';
import {
  awg,
  awgArgv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';
import { FakeCore } from '../unit/daemon/server-fake-core.js';
import { openSse } from '../helpers/sse.js';
import {
  PEER_ENDPOINT,
  PEER_UNDERLAY,
  clientConfig,
  eventually,
  newKeys,
  startPeer,
  type Keys,
  type Topology,
} from './daemon-support.js';

const skip = requireNetnsPrereqs(['nft', 'setpriv']);
const NOBODY = ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--'];
/**
 * the network namespace of this process, where the fake daemons of the permission tests
 * listen: a CLI uses a daemon of its own namespace only (from another one it acts directly)
 */
const SERVER_NS = `/proc/${process.pid}/ns/net`;

describe.skipIf(skip)('API socket permissions against an unprivileged user', () => {
  let ns: string;
  let e: AwgEnv;
  let dir: string;
  const servers: ApiServer[] = [];

  beforeAll(async () => {
    await sweepStaleNetns();
    ns = await createNetns('api-perm');
    e = makeAwgEnv();
    // the socket's directory is traversable by everyone: only the socket's mode decides
    dir = mkdtempSync(join(tmpdir(), 'awgt-api-'));
    chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    if (ns) await destroyNetns(ns);
    cleanupAwgEnv(e);
    rmSync(dir, { recursive: true, force: true });
  });

  const connectAs = (path: string) =>
    nsExec(
      ns,
      NOBODY[0]!,
      [
        ...NOBODY.slice(1),
        process.execPath,
        '-e',
        `require('net').connect(${JSON.stringify(path)}).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(1) })`,
      ],
      { allowFail: true },
    );

  it('0600 root socket: nobody cannot connect; `awg status` as nobody says so (exit 4)', async () => {
    const path = join(dir, 'root.sock');
    servers.push(await startApiServer(new FakeCore(), { socketPath: path }));
    const raw = await connectAs(path);
    expect(raw.stdout.trim()).toBe('EACCES');
    const r = await awg(ns, e, ['status', '--socket', path], { wrap: NOBODY, noStateDir: true });
    expect(r.code, show(r)).toBe(4);
    expect(r.stderr).toContain(`the awg daemon socket ${path} does not let this user in`);
    // control: root gets the status through the same socket
    const ok = await awg(SERVER_NS, e, ['status', '--socket', path], { noStateDir: true });
    expect(ok.code, show(ok)).toBe(0);
    expect(ok.stdout).toContain('state: converged');
  });

  it('0660 socket with group 65534: the group member gets in (control for the test above)', async () => {
    const path = join(dir, 'group.sock');
    servers.push(await startApiServer(new FakeCore(), { socketPath: path, group: 65534 }));
    expect((await connectAs(path)).stdout.trim()).toBe('connected');
    const r = await awg(SERVER_NS, e, ['status', '--socket', path], {
      wrap: NOBODY,
      noStateDir: true,
    });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('tunnel work (wireguard, awg-work): up');
  });
});

describe.skipIf(skip)('awg daemon API in a namespace (real core)', () => {
  let t: Topology;
  let ce: AwgEnv;
  let pe: AwgEnv;
  let k: Keys;
  let daemon: NsProcess | undefined;
  let socket: string;
  let cfg: string;
  const seen: string[] = [];

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    const client = await createNetns('api-c');
    const peer = await createNetns('api-p');
    const v = await vethPair(client, peer, {
      addrA: '10.200.9.1/24',
      addrB: `${PEER_UNDERLAY}/24`,
    });
    t = { client, peer, clientIf: v.ifA, peerIf: v.ifB };
    await run('ip', ['-n', peer, 'addr', 'add', `${PEER_ENDPOINT}/32`, 'dev', 'lo']);
    await run('ip', ['-n', client, 'route', 'add', 'default', 'via', PEER_UNDERLAY]);
    ce = makeAwgEnv();
    pe = makeAwgEnv();
    k = newKeys();
    await startPeer(t, pe, k);
    cfg = writeConfig(ce, 'client.yaml', clientConfig(k));
    socket = join(ce.dir, 'run', 'awg.sock');
  }, 60_000);

  afterAll(async () => {
    await daemon?.kill(5000);
    if (t) await awg(t.client, ce, ['down', '--direct']).catch(() => undefined);
    if (t) await awg(t.peer, pe, ['down']).catch(() => undefined);
    if (t) await destroyNetns(t.client);
    if (t) await destroyNetns(t.peer);
    cleanupAwgEnv(ce);
    cleanupAwgEnv(pe);
  });

  const cli = async (args: string[]) => {
    const r = await awg(t.client, ce, [...args, '--socket', socket], { noStateDir: true });
    seen.push(r.stdout, r.stderr);
    return r;
  };

  it('serves the CLI: status converges, apply/diff/events/down go through the daemon', async () => {
    const argv = awgArgv(
      t.client,
      ce,
      [
        'daemon',
        '--config',
        cfg,
        '--state-dir',
        ce.stateDir,
        '--socket',
        socket,
        '--metrics',
        '127.0.0.1:0',
      ],
      { noStateDir: true },
    );
    daemon = nsSpawn(t.client, argv[3]!, argv.slice(4), { env: ce.env });
    await eventually(
      async () => (await cli(['status', '--json'])).code === 0,
      'the daemon reports converged through the API',
      60_000,
    );
    const st = (await cli(['status', '--json'])).json<{
      state: string;
      config: string;
      tunnels: { name: string }[];
      objects: unknown[];
    }>();
    expect(st.state).toBe('converged');
    expect(st.config).toBe(cfg);
    expect(st.tunnels.map((x) => x.name)).toEqual(['vpn']);
    expect(st.objects.length).toBeGreaterThan(3);
    // the SSE stream of the real daemon: a snapshot with the same status first
    const sse = await openSse(socket, '/api/events');
    await sse.count('snapshot', 1);
    expect(sse.json<{ status: { state: string } }>('snapshot')[0]!.status.state).toBe('converged');

    // events follow an apply made through the API
    const evArgv = awgArgv(t.client, ce, ['events', '--json', '--socket', socket], {
      noStateDir: true,
    });
    const events = nsSpawn(t.client, evArgv[3]!, evArgv.slice(4), { env: ce.env });
    const cfg2 = writeConfig(
      ce,
      'client2.yaml',
      clientConfig(k, { extraAllowed: ['10.201.0.0/24'] }),
    );
    const d = await cli(['diff', '-f', cfg2]);
    expect(d.code, show(d)).toBe(2);
    expect(d.stdout).toContain('10.201.0.0/24');
    const a = await cli(['apply', '-f', cfg2]);
    expect(a.code, show(a)).toBe(0);
    expect(a.stdout).toMatch(/^Applied: \d+ change\(s\), \d+ mutation\(s\); verified\.$/m);
    expect((await cli(['diff', '-f', cfg2])).code).toBe(0);
    // direct mode sees what the daemon hosts (its in-process engine included): no drift
    const direct = await awg(t.client, ce, ['status', '--direct', '--json']);
    seen.push(direct.stdout, direct.stderr);
    expect(direct.code, show(direct)).toBe(0);
    expect(direct.json<{ state: string; drift: unknown[] }>()).toMatchObject({
      state: 'converged',
      drift: [],
    });
    // `awg events` may subscribe after that apply: no-op applies also run (and report) a reconcile
    await eventually(async () => {
      if (
        /"type":"reconcile-finished".*"reason":"api"|"reason":"api".*"type":"reconcile-finished"/.test(
          events.output(),
        )
      )
        return true;
      expect((await cli(['apply', '-f', cfg2])).code).toBe(0);
      return false;
    }, 'events saw a reconcile made through the API');
    await events.kill();
    seen.push(events.output());
    // the SSE client saw it too, with ids; one that resumes from the snapshot's id gets the same
    await sse.until(
      (c) => c.json<{ reason?: string }>('reconcile-finished').some((e) => e.reason === 'api'),
      'reconcile-finished (api) on the SSE stream',
    );
    const cursor = sse.events[0]!.lastEventId;
    expect(cursor).toMatch(/^[0-9a-f]{8}\.\d+$/);
    const upTo = sse.lastEventId;
    await sse.close();
    const again = await openSse(socket, '/api/events', { 'last-event-id': cursor });
    await again.until((c) => c.events.some((e) => e.lastEventId === upTo), 'the replay');
    await again.close();
    const ids = (c: typeof sse) => c.events.filter((e) => e.hasId).map((e) => e.lastEventId);
    expect(ids(again).slice(0, ids(sse).length - 1)).toEqual(ids(sse).slice(1));
    seen.push(...sse.events.map((e) => e.data), ...again.events.map((e) => e.data));
    const routes = (await nsExec(t.client, 'ip', ['-4', 'route', 'show', 'table', 'all'])).stdout;
    expect(routes).toContain('10.201.0.0/24');

    // metrics
    const m = /metrics on (http:\/\/[^\s"]+)/.exec(daemon.output());
    expect(m, daemon.output()).not.toBeNull();
    const scrape = await nsExec(t.client, process.execPath, [
      '-e',
      `fetch(${JSON.stringify(m![1])}).then(r => r.text()).then(t => process.stdout.write(t))`,
    ]);
    seen.push(scrape.stdout);
    expect(scrape.stdout).toMatch(/^awg_reconcile_total\{outcome="converged"\} [1-9]/m);
    expect(scrape.stdout).toMatch(/^awg_tunnel_up\{tunnel="vpn"\} [01]$/m);
    expect(scrape.stdout).toMatch(/^awg_state\{state="converged"\} 1$/m);

    // down through the daemon, then the daemon reports down
    const dn = await cli(['down']);
    expect(dn.code, show(dn)).toBe(0);
    expect(dn.stdout).toMatch(/^Removed \d+ object\(s\) owned by awg\.$/m);
    const after = await cli(['status', '--json']);
    expect(after.code).toBe(2);
    expect(after.json<{ state: string }>().state).toBe('down');
    expect(
      (await nsExec(t.client, 'ip', ['-4', 'route', 'show', 'table', 'all'])).stdout,
    ).not.toContain('10.201.0.0/24');

    await daemon.kill(10_000);
    seen.push(daemon.output());
    expect(() => readFileSync(socket)).toThrow(/ENOENT/);
  });

  it('no secret in status, events, plans, the daemon log or the metrics', () => {
    // the check can fail: the key is in the config the daemon read
    expect(readFileSync(cfg, 'utf8')).toContain(k.client.privateKey);
    const all = seen.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    expect(all).toContain(k.peer.publicKey);
    expect(all).not.toContain(k.client.privateKey);
    // nor any base64 piece long enough to be a slice of it
    expect(all).not.toContain(k.client.privateKey.slice(0, 16));
    writeFileSync(join(ce.dir, 'seen.txt'), all);
  });
});
