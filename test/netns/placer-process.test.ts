/**
 * `awg placer` for real: the child process (from the sources, through tsx) with a proc
 * connector socket opened in the initial network namespace, placing processes that run in a
 * test namespace into a private cgroup subtree `awgt-<random>`.
 * - it reports SCHED_FIFO in `ready`, and its main thread really is SCHED_FIFO;
 * - a matching process is moved into its rule cgroup after exec;
 * - a rule change re-places it; `down` of a failover rule's tunnel moves it to the next match
 *   and back;
 * - a child killed outright is restarted and places again;
 * - a socket from a non-initial namespace: fatal `unsupported`, no restarts;
 * - stdin EOF: the child exits 0 after a final stats line; a parent killed with SIGKILL takes
 *   its placer with it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rule } from '../../src/config/schema.js';
import { close } from '../../src/native/libc.js';
import { openConnectorSocket } from '../../src/procs/connector.js';
import { spawnPlacerProcess, type PlacerHandle } from '../../src/procs/placer-process.js';
import { encode, parseFromPlacer, type FromPlacer } from '../../src/procs/placer-protocol.js';
import { REPO_ROOT } from '../helpers/awg.js';
import { cgroupOf, removeCgroupTree, runProgram, waitFor } from '../helpers/procs.js';

/** the matched program, named for this run (runProgram) */
const SLEEP = runProgram('awgt-sleep');
import {
  cgroup2Mount,
  netnsPath,
  nsSpawn,
  requireNetnsPrereqs,
  useNetns,
  type NsProcess,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs();
const ROOT = `awgt-${randomBytes(4).toString('hex')}`;
const TSX = `file://${join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')}`;
const COMMAND = [
  process.execPath,
  '--import',
  TSX,
  join(REPO_ROOT, 'test/helpers/awg-cli.ts'),
  'placer',
];
/** the processes under test are our descendants, which a placer never moves: claim a pid that does not exist */
const NOT_US = 0x3ffffff0;

/** gone, or a zombie nobody reaped yet */
const dead = (pid: number): boolean => {
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
};

describe.skipIf(skip)('awg placer child process (real kernel)', () => {
  const ns = useNetns('placer');
  let mount = '';
  let tmp = '';
  let apps = '';
  const handles: PlacerHandle[] = [];
  const procs: NsProcess[] = [];
  const others: ChildProcess[] = [];
  const errors: string[] = [];
  const logs: string[] = [];
  const ready = (h: PlacerHandle) =>
    waitFor(
      `ready (state ${h.state}; errors ${errors.join('; ')}; child output ${logs.join(' | ')})`,
      () => h.state === 'ready',
    );

  const rules = (...rs: Record<string, unknown>[]) => rs.map((r) => Rule.parse(r));
  const start = (rs: Rule[], extra: Partial<Parameters<typeof spawnPlacerProcess>[0]> = {}) => {
    const h = spawnPlacerProcess({
      rules: rs,
      cgroupRoot: ROOT,
      mount: { mountPoint: mount, root: '/' },
      ownPid: NOT_US,
      command: COMMAND,
      env: { ...process.env, AWG_PROC_CONNECTOR_FD: '' },
      onError: (e, fatal) => errors.push(`${fatal ? 'fatal' : 'error'}: ${e.message}`),
      onLog: (l) => logs.push(l),
      ...extra,
    });
    handles.push(h);
    return h;
  };
  const sleeper = (secs: string) => {
    const p = nsSpawn(ns.name, join(apps, SLEEP), [secs]);
    procs.push(p);
    return p;
  };

  beforeAll(() => {
    mount = cgroup2Mount()!;
    for (const p of [ROOT, `${ROOT}/a`, `${ROOT}/b`]) mkdirSync(join(mount, p));
    tmp = mkdtempSync(join(tmpdir(), 'awgt-placer-'));
    apps = join(tmp, 'apps');
    mkdirSync(apps);
    copyFileSync('/bin/sleep', join(apps, SLEEP));
  });
  afterAll(async () => {
    for (const h of handles) await h.close();
    for (const p of procs) await p.kill(500);
    for (const c of others) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    if (mount) removeCgroupTree(mount, ROOT);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('runs at SCHED_FIFO, places a matching process, re-places on rule changes and on failover', async () => {
    const h = start(
      rules({ name: 'a', match: { dir: apps }, target: 'vpn1', fallback: 'failover' }),
    );
    await ready(h);
    expect(h.info).toMatchObject({ fifo: true, priority: 10 });
    const policy = readFileSync(`/proc/${h.info!.pid}/sched`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('policy'));
    expect(policy).toMatch(/:\s+1$/);

    const p = sleeper('300');
    await waitFor('placement into a', () => cgroupOf(p.pid) === `/${ROOT}/a`);
    expect((await h.flush()).placed).toBeGreaterThanOrEqual(1);

    h.setRules(
      rules(
        { name: 'b', match: { name: SLEEP }, target: 'vpn2' },
        { name: 'a', match: { dir: apps }, target: 'vpn1', fallback: 'failover' },
      ),
    );
    await h.flush();
    expect(cgroupOf(p.pid)).toBe(`/${ROOT}/b`);

    h.setRules(
      rules(
        { name: 'a', match: { dir: apps }, target: 'vpn1', fallback: 'failover' },
        { name: 'b', match: { name: SLEEP }, target: 'vpn2' },
      ),
    );
    await h.flush();
    expect(cgroupOf(p.pid)).toBe(`/${ROOT}/a`);
    h.setDown(new Set(['vpn1']));
    await h.flush();
    expect(cgroupOf(p.pid)).toBe(`/${ROOT}/b`);
    h.setDown(new Set());
    await h.flush();
    expect(cgroupOf(p.pid)).toBe(`/${ROOT}/a`);

    h.setRules([]);
    await h.flush();
    expect(cgroupOf(p.pid)).not.toMatch(new RegExp(`^/${ROOT}/`));
    expect(h.stats.errors + h.stats.missingCgroup).toBe(0);
    expect(errors).toEqual([]);
    await h.close();
    expect(dead(h.info!.pid)).toBe(true);
  });

  it('a child killed outright is restarted with the same state and places again', async () => {
    const h = start(rules({ name: 'a', match: { dir: apps }, target: 'vpn1' }));
    await ready(h);
    const first = h.info!.pid;
    const before = (await h.flush()).placed;
    process.kill(first, 'SIGKILL');
    await waitFor('restart', () => h.state === 'ready' && h.info!.pid !== first);
    expect(h.restarts).toBe(1);
    expect(errors.at(-1)).toMatch(/killed by SIGKILL; restarting/);
    const p = sleeper('301');
    await waitFor('placement by the new child', () => cgroupOf(p.pid) === `/${ROOT}/a`);
    expect((await h.flush()).placed).toBeGreaterThan(before);
    await h.close();
  });

  it('a socket from a non-initial network namespace: fatal unsupported, no restart', async () => {
    const fd = openConnectorSocket(netnsPath(ns.name));
    try {
      const h = start([], { connectorFd: fd });
      await waitFor('failed', () => h.state === 'failed');
      expect(errors.at(-1)).toMatch(
        /^fatal: placer process: .*ECONNREFUSED.*initial network namespace/,
      );
      expect(h.restarts).toBe(0);
      await h.close();
    } finally {
      close(fd);
    }
  });

  it('exits 0 on stdin EOF (after a final stats line), and dies with a parent killed by SIGKILL', async () => {
    const fd = openConnectorSocket();
    const c = spawn(COMMAND[0]!, COMMAND.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe', fd],
      env: { ...process.env, AWG_PROC_CONNECTOR_FD: '3' },
    });
    others.push(c);
    close(fd);
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => c.on('exit', (code) => r(code)));
    const msgs = () =>
      out
        .split('\n')
        .map(parseFromPlacer)
        .filter((m): m is FromPlacer => m !== undefined);
    await waitFor('ready', () => msgs().some((m) => m.type === 'ready'));
    c.stdin!.write(
      encode({
        type: 'config',
        rules: [],
        cgroupRoot: ROOT,
        mount: { mountPoint: mount, root: '/' },
        down: [],
        ownPid: NOT_US,
      }),
    );
    c.stdin!.end();
    expect(await exited).toBe(0);
    expect(msgs().at(-1)).toMatchObject({ type: 'stats', id: 0, rescans: 1 });

    // a parent (holding the handle) killed outright: stdin EOF and PR_SET_PDEATHSIG end the child
    const code = `
      import { spawnPlacerProcess } from ${JSON.stringify(join(REPO_ROOT, 'src/procs/placer-process.ts'))};
      spawnPlacerProcess({ rules: [], cgroupRoot: ${JSON.stringify(ROOT)}, mount: { mountPoint: ${JSON.stringify(mount)}, root: '/' },
        command: ${JSON.stringify(COMMAND)}, onReady: (r) => console.log('placer=' + r.pid) });
      setInterval(() => {}, 1000);
    `;
    const parent = spawn(process.execPath, ['--import', TSX, '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    others.push(parent);
    let pout = '';
    parent.stdout!.on('data', (d: Buffer) => (pout += d.toString()));
    const child = Number(await waitFor('placer pid', () => /placer=(\d+)/.exec(pout)?.[1]));
    expect(dead(child)).toBe(false);
    parent.kill('SIGKILL');
    await waitFor('the placer to die with its parent', () => dead(child));
  });
});
