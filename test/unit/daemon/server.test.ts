import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DaemonClient, connectDaemon } from '../../../src/daemon/client.js';
import type { DaemonEvent } from '../../../src/daemon/core.js';
import { resolveGroup, startApiServer, type ApiServer } from '../../../src/daemon/server.js';
import { socketAnswers } from '../../../src/daemon/socket.js';
import { AwgError, ERROR_KINDS, type ErrorKind } from '../../../src/errors.js';
import {
  ALL_EVENTS,
  FakeCore,
  sampleObservation,
  samplePlan,
  sampleStatus,
} from './server-fake-core.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'awg-api-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function serve(
  core = new FakeCore(),
  opts: Parameters<typeof startApiServer>[1] = {},
): Promise<{ core: FakeCore; server: ApiServer; client: DaemonClient; path: string }> {
  const path = opts.socketPath ?? join(dir(), 'awg.sock');
  const server = await startApiServer(core, { ...opts, socketPath: path });
  const client = await DaemonClient.open(path);
  cleanups.push(async () => {
    client.close();
    await server.close();
  });
  return { core, server, client, path };
}

/** what a crashed daemon leaves: a socket file nobody listens on (SIGKILL skips the unlink) */
function staleSocket(path: string): void {
  spawnSync(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  expect(lstatSync(path).isSocket()).toBe(true);
}

function listenRaw(path: string): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer(() => {});
    s.listen(path, () => resolve(s));
  });
}

describe('API server and client over a Unix socket', () => {
  it('every unary RPC reaches the core and returns its answer unchanged', async () => {
    const { core, client } = await serve();
    expect(await client.status()).toEqual(sampleStatus());
    expect(await client.apply({ configPath: '/etc/awg/awg.yaml' })).toEqual({
      outcome: 'converged',
      plan: samplePlan(),
      mutations: 4,
    });
    const dry = await client.apply({
      configPath: '/etc/awg/awg.yaml',
      dryRun: true,
      confirmTimeoutSec: 30,
    });
    expect(dry.outcome).toBe('planned');
    expect(dry.confirmDeadline).toBe('2026-11-22T05:00:30.000Z');
    expect(await client.diff({ configPath: '/a.yaml' })).toEqual({
      plan: samplePlan(),
      changes: true,
    });
    expect(await client.down()).toEqual(core.downValue);
    expect(await client.confirm()).toEqual({ confirmed: true });
    core.confirmValue = { confirmed: false };
    expect(await client.confirm()).toEqual({ confirmed: false });
    expect(await client.listProcesses()).toEqual(core.processes);
    expect(core.calls).toEqual([
      { method: 'status' },
      { method: 'apply', arg: { configPath: '/etc/awg/awg.yaml' } },
      {
        method: 'apply',
        arg: { configPath: '/etc/awg/awg.yaml', dryRun: true, confirmTimeoutSec: 30 },
      },
      { method: 'diff', arg: { configPath: '/a.yaml' } },
      { method: 'down' },
      { method: 'confirm' },
      { method: 'confirm' },
      { method: 'listProcesses' },
    ]);
  });

  it('Observation: the record arrives as the core made it (specs and facts as JSON objects), checked', async () => {
    const { core, client } = await serve();
    expect(await client.observation()).toEqual(sampleObservation());
    const { lastApplied: _l, facts: _f, claims: _c, ...bare } = sampleObservation();
    core.observationValue = bare;
    expect(await client.observation()).toEqual(bare);
    // a record that is not one is a malformed answer, not a file written anyway
    core.observationValue = {
      ...bare,
      observed: { resources: [{ kind: 'nonsense' }], foreign: [] },
    } as unknown as typeof bare;
    await expect(client.observation()).rejects.toMatchObject({
      kind: 'bug',
      message: expect.stringMatching(
        /malformed API message: Observation: not an observation record: observed\.resources\.0\.kind/,
      ),
    });
  });

  it('Limit and ListLimits: the request reaches the core with the caller from the socket (we are root here); clear and rates never mix', async () => {
    const { core, client } = await serve();
    const r = await client.limit({ pid: 4242, upload: 2_000_000, download: 1_000_000 });
    expect(r).toEqual({ limit: core.limits[0], changed: true });
    expect(await client.listLimits()).toEqual(core.limits);
    expect(await client.limit({ pid: 4242, clear: true })).toEqual({ changed: true });
    expect(await client.listLimits()).toEqual([]);
    const uid = process.geteuid?.() ?? 0;
    expect(core.calls).toEqual([
      {
        method: 'limit',
        arg: {
          req: { pid: 4242, upload: 2_000_000, download: 1_000_000 },
          caller: { uid, root: true },
        },
      },
      { method: 'listLimits' },
      { method: 'limit', arg: { req: { pid: 4242, clear: true }, caller: { uid, root: true } } },
      { method: 'listLimits' },
    ]);
    // a client that sends both (not ours): refused before the core
    const both = await client.limit({ pid: 1, clear: true, download: 8000 }).then(
      () => undefined,
      (e: unknown) => e as AwgError,
    );
    expect(both).toMatchObject({ kind: 'invalid-config', message: 'Limit: clear takes no rates' });
    expect(core.calls).toHaveLength(4);
  });

  it('--locked: Apply (not a dry run), Down and Confirm are refused, even to root; Diff, Status, a dry run and Limit are served', async () => {
    const { core, client } = await serve(new FakeCore(), { locked: true });
    for (const call of [
      () => client.apply({ configPath: '/etc/awg/awg.yaml' }),
      () => client.down(),
      () => client.confirm(),
    ]) {
      const e = await call().then(
        () => undefined,
        (x: unknown) => x as AwgError,
      );
      expect(e?.kind).toBe('permission');
      expect(e?.message).toMatch(/locked to its config repository/);
    }
    expect((await client.apply({ configPath: '/etc/awg/awg.yaml', dryRun: true })).outcome).toBe(
      'planned',
    );
    expect(await client.diff({ configPath: '/a.yaml' })).toEqual({
      plan: samplePlan(),
      changes: true,
    });
    expect(await client.status()).toEqual(sampleStatus());
    // a runtime limit is not configuration: --locked leaves it alone
    expect((await client.limit({ pid: 4242, download: 1_000_000 })).changed).toBe(true);
    expect(core.calls.map((c) => c.method)).toEqual(['apply', 'diff', 'status', 'limit']);
  });

  it('maps every error kind to its gRPC code and back to the same AwgError (issues, hint)', async () => {
    const { core, client } = await serve();
    for (const kind of Object.keys(ERROR_KINDS) as ErrorKind[]) {
      core.fail.diff = new AwgError(kind, `diff failed: ${kind} – ü`, {
        hint: 'h',
        issues: [{ file: '/a.yaml', line: 1, col: 2, path: 'x', message: 'm', severity: 'error' }],
      });
      const e = await client.diff({ configPath: '/a.yaml' }).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(AwgError);
      expect(e).toMatchObject({ kind, message: `diff failed: ${kind} – ü`, hint: 'h' });
      expect((e as AwgError).issues).toHaveLength(1);
    }
  });

  it('a non-AwgError thrown by the core is a bug (INTERNAL), not a crash of the server', async () => {
    const { core, client } = await serve();
    core.fail.status = new TypeError('undefined is not a function');
    await expect(client.status()).rejects.toMatchObject({
      kind: 'bug',
      message: 'undefined is not a function',
    });
    expect(await client.status()).toEqual(sampleStatus());
  });

  it('an Apply without a config path is refused as invalid-config before reaching the core', async () => {
    const { core, client } = await serve();
    await expect(client.apply({ configPath: '' })).rejects.toMatchObject({
      kind: 'invalid-config',
    });
    expect(core.calls).toEqual([]);
  });

  it('Watch streams every event type in order; unsubscribing frees the core listener', async () => {
    const { core, client } = await serve();
    const got: DaemonEvent[] = [];
    let resolveAll: () => void;
    const all = new Promise<void>((r) => (resolveAll = r));
    const unsub = await client.watch((e) => {
      got.push(e);
      if (got.length === ALL_EVENTS.length) resolveAll();
    });
    expect(core.subscribers).toBe(1);
    for (const e of ALL_EVENTS) core.emit(e);
    await all;
    expect(got).toEqual(ALL_EVENTS);
    unsub();
    await expect.poll(() => core.subscribers).toBe(0);
  });

  it('two watchers each get every event', async () => {
    const { core, client, path } = await serve();
    const other = await DaemonClient.open(path);
    cleanups.push(() => other.close());
    const a: DaemonEvent[] = [];
    const b: DaemonEvent[] = [];
    const ua = await client.watch((e) => a.push(e));
    const ub = await other.watch((e) => b.push(e));
    core.emit(ALL_EVENTS[0]!);
    core.emit(ALL_EVENTS[3]!);
    await expect.poll(() => a.length + b.length).toBe(4);
    expect(a).toEqual(b);
    ua();
    ub();
  });

  it("Exec: the pid registered is the caller's own, from the socket (SO_PEERCRED), with the choice; cancel ends it; a registration the daemon ends reaches the client with its reason", async () => {
    const { core, client } = await serve();
    const ends: AwgError[] = [];
    const s = await client.execSession({ tunnel: 'work' }, (e) => ends.push(e));
    expect(s.pid).toBe(process.pid);
    expect(core.calls).toEqual([
      { method: 'routeExec', arg: { pid: process.pid, choice: { tunnel: 'work' } } },
    ]);
    s.cancel();
    await expect.poll(() => core.execs.size).toBe(0);
    expect(core.calls.at(-1)).toEqual({ method: 'exec-ended', arg: { pid: process.pid } });
    expect(ends).toEqual([]);

    for (const choice of [{ direct: true as const }, { rule: 'browsers' }]) {
      const t = await client.execSession(choice, (e) => ends.push(e));
      expect(core.execs.get(t.pid)?.choice).toEqual(choice);
      core.execs.get(t.pid)!.end('the flow router stopped');
      await expect.poll(() => ends.length).toBeGreaterThan(0);
      expect(ends.splice(0)).toEqual([new AwgError('driver', 'the flow router stopped')]);
    }
  });

  it('Exec: a refusal of the core rejects the session (its kind kept); a core without routeExec is unsupported; closing the server ends a live registration', async () => {
    const { core, client } = await serve();
    core.fail.routeExec = new AwgError('invalid-config', 'awg exec --tunnel nope: unknown tunnel');
    await expect(client.execSession({ tunnel: 'nope' }, () => {})).rejects.toMatchObject({
      kind: 'invalid-config',
      message: 'awg exec --tunnel nope: unknown tunnel',
    });
    const bare = new FakeCore() as FakeCore & { routeExec?: unknown };
    Object.defineProperty(bare, 'routeExec', { value: undefined });
    const other = await serve(bare);
    await expect(other.client.execSession({ direct: true }, () => {})).rejects.toMatchObject({
      kind: 'unsupported',
      message: expect.stringMatching(/does not route awg exec/),
    });

    const path = join(dir(), 'awg.sock');
    const server = await startApiServer(core, { socketPath: path });
    const c = await DaemonClient.open(path);
    let ended: AwgError | undefined;
    await c.execSession({ direct: true }, (e) => (ended = e));
    await server.close();
    await expect
      .poll(() => ended)
      .toEqual(
        new AwgError('driver', 'the awg daemon is stopping: the awg exec registration ends'),
      );
    expect(core.execs.size).toBe(0);
    c.close();
  });

  it('closing the server ends Watch streams (onEnd called) and removes the socket', async () => {
    const core = new FakeCore();
    const path = join(dir(), 'awg.sock');
    const server = await startApiServer(core, { socketPath: path });
    const client = await DaemonClient.open(path);
    let ended = false;
    await client.watch(
      () => {},
      () => (ended = true),
    );
    await server.close();
    await expect.poll(() => ended).toBe(true);
    expect(() => lstatSync(path)).toThrow(/ENOENT/);
    client.close();
  });

  it('a client of a socket nobody serves fails with a driver error, not a hang', async () => {
    const path = join(dir(), 'none.sock');
    const c = await connectDaemon(path);
    expect(c.client).toBeUndefined();
    expect(c.code).toBe('ENOENT');
    const raw = await DaemonClient.open(path, { quickTimeoutMs: 3000 });
    await expect(raw.status()).rejects.toMatchObject({ kind: 'driver' });
    raw.close();
  });
});

describe('socket permissions', () => {
  it('creates the socket 0600 owned by us; 0660 with the configured group', async () => {
    const { path } = await serve();
    const st = statSync(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(process.geteuid!());

    const g = await serve(new FakeCore(), { group: 65534 });
    const sg = statSync(g.path);
    expect(sg.mode & 0o777).toBe(0o660);
    expect(sg.gid).toBe(65534);
    expect(await g.client.status()).toEqual(sampleStatus());
  });

  it('resolves a group by name from the group file; an unknown group is refused', () => {
    const d = dir();
    const f = join(d, 'group');
    writeFileSync(f, 'root:x:0:\nawg:x:977:alice,bob\n');
    expect(resolveGroup('awg', f)).toBe(977);
    expect(resolveGroup('42', f)).toBe(42);
    expect(() => resolveGroup('wheel', f)).toThrow(/unknown group wheel/);
  });

  it('creates a missing socket directory 0755', async () => {
    const path = join(dir(), 'run', 'awg', 'awg.sock');
    await serve(new FakeCore(), { socketPath: path });
    expect(statSync(join(path, '..')).mode & 0o777).toBe(0o755);
  });

  it('refuses a symlink at the path (and leaves it alone)', async () => {
    const d = dir();
    const target = join(d, 'elsewhere');
    writeFileSync(target, 'x');
    const path = join(d, 'awg.sock');
    symlinkSync(target, path);
    await expect(startApiServer(new FakeCore(), { socketPath: path })).rejects.toMatchObject({
      kind: 'permission',
      message: /symbolic link/,
    });
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
  });

  it('refuses a regular file at the path', async () => {
    const path = join(dir(), 'awg.sock');
    writeFileSync(path, '');
    await expect(startApiServer(new FakeCore(), { socketPath: path })).rejects.toMatchObject({
      kind: 'permission',
      message: /not a socket/,
    });
  });

  it('refuses a live socket owned by someone else', async () => {
    const path = join(dir(), 'awg.sock');
    const s = await listenRaw(path);
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
    chownSync(path, 65534, 65534);
    await expect(startApiServer(new FakeCore(), { socketPath: path })).rejects.toMatchObject({
      kind: 'permission',
      message: /owned by uid 65534/,
    });
    expect(lstatSync(path).uid).toBe(65534);
  });

  it('refuses a stale socket owned by someone else too (it is not ours to remove)', async () => {
    const path = join(dir(), 'awg.sock');
    staleSocket(path);
    chownSync(path, 65534, 65534);
    await expect(startApiServer(new FakeCore(), { socketPath: path })).rejects.toMatchObject({
      kind: 'permission',
      message: /owned by uid 65534/,
    });
    expect(lstatSync(path).isSocket()).toBe(true);
  });

  it('refuses a socket of ours whose mode grants more than 0600 (0666)', async () => {
    const path = join(dir(), 'awg.sock');
    const s = await listenRaw(path);
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
    chmodSync(path, 0o666);
    await expect(startApiServer(new FakeCore(), { socketPath: path })).rejects.toMatchObject({
      kind: 'permission',
      message: /mode 666/,
    });
  });

  it('refuses when another server is live on our socket', async () => {
    const { path } = await serve();
    await expect(startApiServer(new FakeCore(), { socketPath: path })).rejects.toMatchObject({
      kind: 'permission',
      message: /listening/,
    });
  });

  it('replaces a stale socket of ours', async () => {
    const path = join(dir(), 'awg.sock');
    staleSocket(path);
    chmodSync(path, 0o600);
    expect((await socketAnswers(path)).ok).toBe(false);
    const { client } = await serve(new FakeCore(), { socketPath: path });
    expect((await client.status()).state).toBe('converged');
  });

  it('refuses a socket directory writable by others', async () => {
    const d = join(dir(), 'open');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(d);
    chmodSync(d, 0o777);
    await expect(
      startApiServer(new FakeCore(), { socketPath: join(d, 'awg.sock') }),
    ).rejects.toMatchObject({ kind: 'permission', message: /writable by others/ });
  });

  it('refuses a socket directory owned by another user', async () => {
    const d = join(dir(), 'theirs');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(d, { mode: 0o755 });
    chownSync(d, 65534, 65534);
    await expect(
      startApiServer(new FakeCore(), { socketPath: join(d, 'awg.sock') }),
    ).rejects.toMatchObject({ kind: 'permission', message: /owned by uid 65534/ });
  });
});
