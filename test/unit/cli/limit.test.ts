/**
 * `awg limit` against a fake daemon: rates parsed as the config's `limit:` is, the request it
 * sends, what it prints; without a daemon a clear error (a limit must outlive the command);
 * `awg processes` and `awg status` show the limits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { limitRequest, renderLimits } from '../../../src/cli/commands/limit.js';
import { startApiServer } from '../../../src/daemon/server.js';
import { FakeCore, sampleStatus } from '../daemon/server-fake-core.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'awg-cli-limit-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function daemon(core = new FakeCore()): Promise<{ core: FakeCore; socket: string }> {
  const socket = join(tmp(), 'awg.sock');
  const server = await startApiServer(core, { socketPath: socket });
  cleanups.push(() => server.close());
  return { core, socket };
}

async function awg(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'awg', ...args], {
    out: (s) => (out += s),
    err: (s) => (err += s),
    colour: false,
  });
  return { code, out, err };
}

describe('awg limit', () => {
  it('sends the pid and the rates in bit/s (config units: Mbit, MB/s) and prints the limit', async () => {
    const { core, socket } = await daemon();
    const r = await awg(
      'limit',
      '4242',
      '--upload',
      '2Mbit',
      '--download',
      '1MB/s',
      '--socket',
      socket,
    );
    expect(r.code, r.err).toBe(0);
    expect(core.calls).toEqual([
      {
        method: 'limit',
        arg: {
          req: { pid: 4242, upload: 2_000_000, download: 8_000_000 },
          caller: { uid: process.geteuid?.() ?? 0, root: true },
        },
      },
    ]);
    expect(r.out).toBe(
      'process 4242 (curl) limited: upload 2Mbit, download 8Mbit; cgroup awg/_limit-4242, the children it starts from now on included\n',
    );
    const list = await awg('limit', '--list', '--socket', socket);
    expect(list.out).toMatch(
      /^PID\s+NAME\s+UPLOAD\s+DOWNLOAD\s+PROCESSES\s+SINCE\s+CGROUP\n4242\s+curl\s+2Mbit\s+8Mbit\s+1\s+/,
    );
    const json = await awg('limit', '--list', '--json', '--socket', socket);
    expect(JSON.parse(json.out)).toEqual(core.limits);
    const clear = await awg('limit', '4242', '--clear', '--socket', socket);
    expect(clear.out).toBe('limit of process 4242 cleared\n');
    expect((await awg('limit', '--list', '--socket', socket)).out).toBe('no runtime limits\n');
  });

  it('without a daemon: an error saying why it needs one (exit 3), nothing else tried', async () => {
    const r = await awg(
      'limit',
      '4242',
      '--download',
      '1Mbit',
      '--socket',
      join(tmp(), 'none.sock'),
    );
    expect(r.code).toBe(3);
    expect(r.err).toContain(
      'awg: error [unsupported]: awg limit (the daemon holds a limit until the process exits: it must outlive this command) needs the awg daemon: no awg daemon answers on',
    );
  });

  it('bad arguments are refused before any daemon is asked (exit 1)', async () => {
    const { core, socket } = await daemon();
    for (const [args, msg] of [
      [['4242', '--download', '1Mbit/s'], '--download: "1Mbit/s" is not a rate'],
      [
        ['4242', '--download', '1kbit'],
        '--download: 1kbit is 1kbit; a limit must be between 8kbit and 100Gbit',
      ],
      [['4242'], 'give --upload, --download (or both)'],
      [['4242', '--clear', '--upload', '1Mbit'], '--clear takes no --upload or --download'],
      [['--download', '1Mbit'], 'name a process'],
      [['0', '--download', '1Mbit'], '0 is not a process id'],
      [['12x', '--download', '1Mbit'], '12x is not a process id'],
      [['1', '--list'], '--list takes no pid'],
    ] as const) {
      const r = await awg('limit', ...args, '--socket', socket);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toContain(msg);
    }
    expect(core.calls).toEqual([]);
  });

  it('a refusal of the daemon is printed with its kind and exit code', async () => {
    const core = new FakeCore();
    const { AwgError } = await import('../../../src/errors.js');
    core.fail.limit = new AwgError(
      'permission',
      'process 1 belongs to uid 0; a socket-group member may limit only its own processes (uid 1000)',
    );
    const { socket } = await daemon(core);
    const r = await awg('limit', '1', '--download', '1Mbit', '--socket', socket);
    expect(r.code).toBe(4);
    expect(r.err).toContain('awg: error [permission]: process 1 belongs to uid 0');
  });

  it('parses into the request; renders a table', () => {
    expect(limitRequest('7', { upload: '500kbit' })).toEqual({ pid: 7, upload: 500_000 });
    expect(limitRequest(undefined, { list: true })).toBeUndefined();
    expect(renderLimits([])).toBe('no runtime limits\n');
  });
});

describe('the limits in awg processes and awg status', () => {
  it('processes: a LIMIT column with the rates, and whose limit an inherited one is', async () => {
    const { socket } = await daemon();
    const r = await awg('processes', '--socket', socket);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/RULE TX\/RX\s+LIMIT UP\/DOWN\s+EXECUTABLE$/);
    expect(lines.find((l) => l.startsWith('4242 '))).toMatch(
      /\s2Mbit\/1Mbit\s+\/usr\/lib\/firefox\/firefox$/,
    );
    expect(lines.find((l) => l.startsWith('4243 '))).toMatch(
      /\s-\/1Mbit \(of 4242\)\s+\/usr\/lib\/firefox\/firefox$/,
    );
    expect(lines.find((l) => l.startsWith('1 '))).toMatch(/\s-\s+\/usr\/lib\/systemd\/systemd$/);
  });

  it('processes: no LIMIT column while nothing is limited', async () => {
    const core = new FakeCore();
    core.processes = core.processes.map(({ limit: _l, ...p }) => p);
    const { socket } = await daemon(core);
    expect((await awg('processes', '--socket', socket)).out).not.toContain('LIMIT');
  });

  it('status: one line per limit', async () => {
    const { socket } = await daemon();
    const r = await awg('status', '--socket', socket);
    expect(r.out).toContain(
      'limit process 4242 (firefox): upload 2Mbit, download 1Mbit, 3 processes in awg/browsers/_limit-4242, since 2026-11-22T04:59:00.000Z\n',
    );
    expect(r.out).toContain('limit process 77 (rsync): download 8kbit, 1 process in awg/_limit-77');
    const j = JSON.parse((await awg('status', '--json', '--socket', socket)).out) as {
      limits: unknown;
    };
    expect(j.limits).toEqual(sampleStatus().limits);
  });
});
