/**
 * Who may do what through the daemon's API, against the real kernel: a temporary system
 * user whose supplementary group is the daemon's `--socket-group` (created here, removed
 * after) runs a gRPC client under setpriv; the daemon (`awg daemon`, root) runs in a test
 * namespace and reads the caller from SO_PEERCRED/SO_PEERGROUPS.
 *
 * - the group member cannot make the daemon read a root-only file (control: root's Diff of
 *   the same file quotes it back, so the check is what stops it);
 * - cannot Apply its own config naming root's secret (control: root's Apply of it makes the
 *   daemon send the secret as the proxy password to a listener the caller runs);
 * - cannot Down, nor Confirm an apply it did not make; the CLI says so (exit 4);
 * - can Status, ListProcesses and Watch, and may Apply (and confirm) a root-owned config
 *   whose secrets root alone controls (control for the refusals above);
 * - uid 0 can do all of it.
 *
 * The HTTP API on the same socket (curl --unix-socket), with the same rules: someone outside
 * the group cannot connect (the socket's mode), and when it reaches the socket anyway (here:
 * the mode opened for a moment) gets 403 from every route; the group member reads state but
 * gets 403 on apply (of a root-only file), down and confirm; root may apply and down; the
 * daemon restarted with `--locked` refuses apply (not a dry run), down and confirm to root.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { ROUTES } from '../../src/daemon/http/routes.js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  awgArgv,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  REPO_ROOT,
  show,
  wgKeyPair,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import { eventually } from './daemon-support.js';

const skip = requireNetnsPrereqs([
  'nft',
  'setpriv',
  'useradd',
  'userdel',
  'groupadd',
  'groupdel',
  'curl',
]);
const TSX = `file://${join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')}`;
const CLIENT = `file://${join(REPO_ROOT, 'src/daemon/client.ts')}`;
const PROXY_PORT = 1081;

/** a raw API client (no CLI checks in front): prints {ok} or {err: {kind, message}} */
const CLIENT_SCRIPT = `
const [sock, method, arg] = process.argv.slice(2);
const { DaemonClient } = await import(${JSON.stringify(CLIENT)});
const c = await DaemonClient.open(sock);
try {
  let r;
  if (method === 'watch') { const un = await c.watch(() => {}); un(); r = 'live'; }
  else r = await c[method](arg ? JSON.parse(arg) : undefined);
  console.log(JSON.stringify({ ok: r }));
} catch (e) {
  console.log(JSON.stringify({ err: { kind: e.kind, message: e.message } }));
}
c.close();
process.exit(0);
`;

/** a SOCKS5 server that asks for user/password and prints what it is given */
const FAKE_PROXY = `
require('net').createServer((s) => {
  s.on('error', () => {});
  let st = 0;
  s.on('data', (d) => {
    if (st === 0) { st = 1; s.write(Buffer.from([5, 2])); return; }
    if (st === 1) { st = 2; const ul = d[1]; const pl = d[2 + ul]; console.log('password=' + d.subarray(3 + ul, 3 + ul + pl).toString()); s.end(Buffer.from([1, 1])); }
  });
}).listen(${PROXY_PORT}, '127.0.0.1', () => console.log('ready'));
`;

const run = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
};

describe.skipIf(skip)('API authorisation: socket group vs root (SO_PEERCRED, real users)', () => {
  const id = randomBytes(3).toString('hex');
  const group = `awgt-sg-${id}`;
  const user = `awgt-u-${id}`;
  let uid = -1;
  let ns: string;
  let e: AwgEnv;
  let dir: string;
  let daemon: NsProcess | undefined;
  let proxy: NsProcess | undefined;
  let socket: string;
  const marker = `TOPSECRET_${randomBytes(6).toString('hex')}`;
  const rootPassword = `root-only-${randomBytes(6).toString('hex')}`;
  const f: Record<string, string> = {};

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    run('groupadd', ['--system', group]);
    run('useradd', [
      '--system',
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      '--user-group',
      '--groups',
      group,
      user,
    ]);
    uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim());
    ns = await createNetns('authz');
    e = makeAwgEnv();
    // a directory only root controls (not under /tmp: world-writable directories are never trusted)
    dir = mkdtempSync('/run/awgt-authz-');
    chmodSync(dir, 0o755);
    socket = join(dir, 'awg.sock');
    const key = wgKeyPair();
    const peer = wgKeyPair();
    const write = (name: string, text: string, mode: number, owner?: number) => {
      const p = join(dir, name);
      writeFileSync(p, text, { mode });
      chmodSync(p, mode);
      if (owner !== undefined) chownSync(p, owner, owner);
      return p;
    };
    f.client = write('client.mjs', CLIENT_SCRIPT, 0o644);
    f.rootOnly = write(
      'root-only.yaml',
      `${marker}: the daemon must not quote this to the socket group\n`,
      0o600,
    );
    f.rootPass = write('proxy.pass', `${rootPassword}\n`, 0o600);
    f.goodKey = write('good.key', `${key.privateKey}\n`, 0o600);
    f.good = write(
      'good.yaml',
      `version: 1\ntunnels:\n  vpn:\n    type: wireguard\n    privateKey: {file: good.key}\n    addresses: [10.200.50.1/24]\n    peers:\n      - publicKey: "${peer.publicKey}"\n        endpoint: 10.200.9.2:51820\n        allowedIPs: [10.200.50.0/24]\n`,
      0o644,
    );
    // the caller's own directory and config, naming root's secret as a proxy password
    const home = join(dir, 'home');
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, uid, uid);
    f.evil = join(home, 'evil.yaml');
    writeFileSync(
      f.evil,
      `version: 1\ntunnels:\n  px: { type: socks5, server: 127.0.0.1, port: ${PROXY_PORT}, auth: { username: u, password: { file: ${f.rootPass} } } }\n`,
      { mode: 0o644 },
    );
    chownSync(f.evil, uid, uid);

    proxy = nsSpawn(ns, process.execPath, ['-e', FAKE_PROXY]);
    await eventually(async () => proxy!.output().includes('ready'), 'the fake proxy listens');
    const argv = awgArgv(
      ns,
      e,
      ['daemon', '--socket', socket, '--socket-group', group, '--state-dir', e.stateDir],
      { noStateDir: true },
    );
    daemon = nsSpawn(ns, argv[3]!, argv.slice(4), { env: e.env });
    await eventually(
      async () =>
        (await call('root', 'status').catch(() => ({}) as { ok?: unknown })).ok !== undefined,
      `the daemon answers root; its output:\n${daemon.output()}`,
      60_000,
    );
  }, 180_000);

  afterAll(async () => {
    if (ns && daemon)
      await awg(ns, e, ['down', '--socket', socket], { noStateDir: true }).catch(() => undefined);
    await daemon?.kill(5000);
    await proxy?.kill(1000);
    if (ns) await awg(ns, e, ['down', '--direct']).catch(() => undefined);
    if (ns) await destroyNetns(ns);
    cleanupAwgEnv(e);
    if (dir) rmSync(dir, { recursive: true, force: true });
    spawnSync('userdel', [user]);
    spawnSync('groupdel', [group]);
  }, 60_000);

  const AS_USER = () => ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--'];

  /** the raw client, as the group member or as root */
  async function call(
    who: 'user' | 'root',
    method: string,
    arg?: object,
  ): Promise<{ ok?: Record<string, unknown>; err?: { kind: string; message: string } }> {
    const cmd = [
      ...(who === 'user' ? AS_USER() : []),
      process.execPath,
      '--import',
      TSX,
      f.client!,
      socket,
      method,
      ...(arg ? [JSON.stringify(arg)] : []),
    ];
    const r = await nsExec(ns, cmd[0]!, cmd.slice(1), { allowFail: true });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as {
        ok?: Record<string, unknown>;
        err?: { kind: string; message: string };
      };
    } catch {
      throw new Error(`client printed no result (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
  }
  const cliAs = (who: 'user' | 'root', args: string[]) =>
    awg(ns, e, [...args, '--socket', socket], {
      noStateDir: true,
      ...(who === 'user' ? { wrap: AS_USER() } : {}),
    });

  /** someone outside the socket group: nobody */
  const AS_STRANGER = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'];

  /** curl on the HTTP API: the status and the JSON answer; exit 7 (no connection) as status 0 */
  async function http(
    who: 'user' | 'root' | 'stranger',
    method: string,
    path: string,
    body?: object,
  ): Promise<{ status: number; json: Record<string, unknown>; stderr: string }> {
    const cmd = [
      ...(who === 'user' ? AS_USER() : who === 'stranger' ? AS_STRANGER : []),
      'curl',
      '-sS',
      '--unix-socket',
      socket,
      '-X',
      method,
      ...(body ? ['-H', 'content-type: application/json', '-d', JSON.stringify(body)] : []),
      '-w',
      '\n%{http_code}',
      `http://awg${path}`,
    ];
    const r = await nsExec(ns, cmd[0]!, cmd.slice(1), { allowFail: true });
    if (r.code === 7) return { status: 0, json: {}, stderr: r.stderr };
    const lines = r.stdout.trimEnd().split('\n');
    const status = Number(lines.pop());
    const text = lines.join('\n');
    return {
      status,
      json: text ? (JSON.parse(text) as Record<string, unknown>) : {},
      stderr: r.stderr,
    };
  }
  const message = (r: { json: Record<string, unknown> }) =>
    (r.json.error as { message?: string } | undefined)?.message ?? JSON.stringify(r.json);

  it('the user really is a non-root member of the socket group through a supplementary group only', () => {
    expect(uid).toBeGreaterThan(0);
    const groups = spawnSync('id', ['-Gn', user], { encoding: 'utf8' }).stdout.trim().split(' ');
    expect(groups).toContain(group);
    expect(spawnSync('id', ['-gn', user], { encoding: 'utf8' }).stdout.trim()).toBe(user);
  });

  it('a group member cannot make the daemon read a root-only file (Apply, dry-run Apply or Diff); root can', async () => {
    for (const [method, arg] of [
      ['apply', { configPath: f.rootOnly }],
      ['apply', { configPath: f.rootOnly, dryRun: true }],
      ['diff', { configPath: f.rootOnly }],
    ] as const) {
      const r = await call('user', method, arg);
      expect(r.err, JSON.stringify(r)).toMatchObject({ kind: 'permission' });
      expect(r.err!.message).toContain(`uid ${uid} may not read ${f.rootOnly} itself`);
      expect(JSON.stringify(r)).not.toContain(marker);
    }
    // control: root's Diff of the same file makes the daemon parse it and quote it back
    const r = await call('root', 'diff', { configPath: f.rootOnly });
    expect(r.err, JSON.stringify(r)).toMatchObject({ kind: 'invalid-config' });
    expect(r.err!.message).toContain(marker);
  });

  it('a group member cannot Apply its own config naming root’s secret; root’s Apply of it shows what would leak', async () => {
    const r = await call('user', 'apply', { configPath: f.evil });
    expect(r.err, JSON.stringify(r)).toMatchObject({ kind: 'permission' });
    expect(r.err!.message).toContain(
      `config ${f.evil} is not trusted: directory ${join(dir, 'home')} is owned by uid ${uid}, not root`,
    );
    const st = await call('root', 'status');
    expect(st.ok?.tunnels).toEqual([]);
    expect(proxy!.output()).not.toContain('password=');
    // control: the same request from root (who may read the file anyway) makes the daemon send
    // the secret to the caller's listener: the attack the check above stops
    const ok = await call('root', 'apply', { configPath: f.evil });
    expect(ok.ok, JSON.stringify(ok)).toBeDefined();
    await eventually(
      async () => proxy!.output().includes(`password=${rootPassword}`),
      'the daemon sent the password to the listener',
      30_000,
    );
    const down = await cliAs('root', ['down']);
    expect(down.code, show(down)).toBe(0);
  });

  it('a group member can Status, ListProcesses and Watch; it cannot Down or Confirm (CLI: permission denied, exit 4)', async () => {
    // exit 2: the daemon follows no config (state down), not a refusal (4)
    const st = await cliAs('user', ['status']);
    expect(st.code, show(st)).toBe(2);
    expect(st.stdout).toContain('state: down');
    const ps = await cliAs('user', ['processes']);
    expect(ps.code, show(ps)).toBe(0);
    expect((await call('user', 'watch')).ok).toBe('live');
    const down = await cliAs('user', ['down']);
    expect(down.code, show(down)).toBe(4);
    expect(down.stderr).toContain(`permission denied: Down for uid ${uid}`);
    const confirm = await cliAs('user', ['confirm']);
    expect(confirm.code, show(confirm)).toBe(4);
    expect(confirm.stderr).toContain(`permission denied: Confirm for uid ${uid}`);
  });

  it('a group member may Apply a root-owned config with root-only secrets and confirm its own apply, but not root’s', async () => {
    const mine = await call('user', 'apply', { configPath: f.good, confirmTimeoutSec: 120 });
    expect(mine.ok, JSON.stringify(mine)).toMatchObject({ outcome: 'converged' });
    expect(mine.ok!.confirmDeadline).toBeTypeOf('string');
    expect((await call('user', 'confirm')).ok).toEqual({ confirmed: true });
    const diff = await call('user', 'diff', { configPath: f.good });
    expect(diff.ok, JSON.stringify(diff)).toMatchObject({ changes: false });
    // root's pending apply: the group member may not confirm it; root may
    const roots = await call('root', 'apply', { configPath: f.good, confirmTimeoutSec: 120 });
    expect(roots.ok!.confirmDeadline).toBeTypeOf('string');
    const denied = await call('user', 'confirm');
    expect(denied.err, JSON.stringify(denied)).toMatchObject({ kind: 'permission' });
    expect((await call('root', 'confirm')).ok).toEqual({ confirmed: true });
  });

  it('uid 0 may Down', async () => {
    const r = await call('root', 'down');
    expect(r.ok, JSON.stringify(r)).toBeDefined();
    expect(((await call('root', 'status')).ok as { state: string }).state).toBe('down');
  });

  it('HTTP: outside the socket group, nothing: no connection (the mode), and 403 from every route when it reaches the socket', async () => {
    const first = await http('stranger', 'GET', '/api/status');
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/Permission denied|Couldn't connect/);
    const body: Record<string, object> = {
      '/api/apply': { configPath: f.good! },
      '/api/diff': { configPath: f.good! },
      '/api/limit': { pid: 1, download: 1_000_000 },
    };
    // as if the caller had been passed a connection: only the per-route rule stands
    chmodSync(socket, 0o666);
    try {
      for (const r of ROUTES) {
        const res = await http('stranger', r.method, r.path, body[r.path]);
        expect(res.status, `${r.method} ${r.path}: ${message(res)}`).toBe(403);
        expect(message(res)).toContain(`permission denied: ${r.rpc} for uid 65534`);
      }
    } finally {
      chmodSync(socket, 0o660);
    }
  });

  it('HTTP: a group member reads state but cannot apply a root-only file, down or confirm; root can apply and down', async () => {
    for (const path of ['/api/status', '/api/processes', '/api/limits', '/api/traffic']) {
      const r = await http('user', 'GET', path);
      expect(r.status, `${path}: ${message(r)}`).toBe(200);
    }
    expect((await http('user', 'GET', '/api/status')).json).toMatchObject({
      source: 'daemon',
      state: 'down',
    });
    const ps = await http('user', 'GET', '/api/processes');
    // (no config: no rule routes a process, the list may be empty)
    expect(Array.isArray(ps.json.processes)).toBe(true);
    const apply = await http('user', 'POST', '/api/apply', { configPath: f.rootOnly! });
    expect(apply.status, message(apply)).toBe(403);
    expect(message(apply)).toContain(`uid ${uid} may not read ${f.rootOnly} itself`);
    expect(JSON.stringify(apply.json)).not.toContain(marker);
    for (const path of ['/api/down', '/api/confirm']) {
      const r = await http('user', 'POST', path);
      expect(r.status, `${path}: ${message(r)}`).toBe(403);
      expect(r.json.error).toMatchObject({ kind: 'permission' });
    }
    const ok = await http('root', 'POST', '/api/apply', { configPath: f.good! });
    expect(ok.status, message(ok)).toBe(200);
    expect(ok.json).toMatchObject({ outcome: 'converged' });
    const st = await http('user', 'GET', '/api/status');
    expect(st.json).toMatchObject({ state: 'converged', tunnels: [{ name: 'vpn' }] });
    const down = await http('root', 'POST', '/api/down');
    expect(down.status, message(down)).toBe(200);
    expect((down.json.removed as string[]).length).toBeGreaterThan(0);
    expect((await http('root', 'GET', '/api/status')).json).toMatchObject({ state: 'down' });
  });

  it('HTTP: `awg daemon --locked` refuses apply, down and confirm to root; a dry run and reads are served', async () => {
    await daemon!.kill(5000);
    const argv = awgArgv(
      ns,
      e,
      [
        'daemon',
        '--socket',
        socket,
        '--socket-group',
        group,
        '--state-dir',
        e.stateDir,
        '--locked',
      ],
      { noStateDir: true },
    );
    daemon = nsSpawn(ns, argv[3]!, argv.slice(4), { env: e.env });
    await eventually(
      async () => (await http('root', 'GET', '/api/status')).status === 200,
      `the locked daemon answers; its output:\n${daemon.output()}`,
      60_000,
    );
    for (const [path, body] of [
      ['/api/apply', { configPath: f.good! }],
      ['/api/down', undefined],
      ['/api/confirm', undefined],
    ] as const) {
      const r = await http('root', 'POST', path, body);
      expect(r.status, `${path}: ${message(r)}`).toBe(403);
      expect(message(r)).toContain('this daemon is locked to its config repository');
    }
    const dry = await http('root', 'POST', '/api/apply', { configPath: f.good!, dryRun: true });
    expect(dry.status, message(dry)).toBe(200);
    expect(dry.json).toMatchObject({ outcome: 'planned' });
    expect((await http('user', 'GET', '/api/status')).json).toMatchObject({ state: 'down' });
  });
});
