/**
 * The process placer against the real kernel: proc connector events, /proc and cgroup v2.
 * Processes run inside a test network namespace (the connector sees every process; its
 * socket lives in the initial namespace, where this test process runs).
 * - a copy of /bin/sleep under a matching directory is moved into its rule cgroup after exec;
 * - a child forked after the placement inherits it (its own exe matches no rule);
 * - a rule change re-places the running process; dropping the rule sends it to the awg root;
 * - inside a non-initial network namespace LISTEN is refused (ECONNREFUSED → 'unsupported'),
 *   and a socket opened in the initial namespace and inherited as fd 3 works there.
 * Private cgroup subtree `awgt-<random>`; leftovers moved to the parent and removed.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rule } from '../../src/config/schema.js';
import { compileRules } from '../../src/model/match.js';
import { close } from '../../src/native/libc.js';
import { ProcConnector, openConnectorSocket } from '../../src/procs/connector.js';
import { ProcessPlacer } from '../../src/procs/placer.js';
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
const rules = (...rs: Record<string, unknown>[]) => compileRules(rs.map((r) => Rule.parse(r)));

describe.skipIf(skip)('process placer (proc connector → cgroup.procs)', () => {
  const ns = useNetns('procs');
  let mount = '';
  let tmp = '';
  let conn: ProcConnector | undefined;
  let placer: ProcessPlacer | undefined;
  const procs: NsProcess[] = [];

  beforeAll(() => {
    mount = cgroup2Mount()!;
    for (const p of [ROOT, `${ROOT}/a`, `${ROOT}/b`]) mkdirSync(join(mount, p));
    tmp = mkdtempSync(join(tmpdir(), 'awgt-procs-'));
    mkdirSync(join(tmp, 'apps'));
    copyFileSync('/bin/sleep', join(tmp, 'apps', SLEEP));
    copyFileSync('/bin/sh', join(tmp, 'apps', 'awgt-sh'));
    for (const f of [SLEEP, 'awgt-sh']) spawnSyncChmod(join(tmp, 'apps', f));
    conn = ProcConnector.open();
    placer = new ProcessPlacer({
      matcher: rules({ name: 'a', match: { dir: join(tmp, 'apps') }, target: 'vpn' }),
      cgroupRoot: ROOT,
      mount: { mountPoint: mount, root: '/' },
      // the processes under test are this process's descendants, which a placer never
      // moves; pretend to be a process that does not exist
      selfPid: 0x3ffffff0,
    });
    placer.attach(conn);
    placer.rescan();
  });
  afterAll(async () => {
    for (const p of procs) await p.kill(500);
    conn?.close();
    placer?.close();
    if (mount) removeCgroupTree(mount, ROOT);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('moves a process whose executable matches into its rule cgroup after exec; a later child inherits it', async () => {
    const sleeper = nsSpawn(ns.name, join(tmp, 'apps', SLEEP), ['300']);
    procs.push(sleeper);
    await waitFor('placement of the sleeper', () => cgroupOf(sleeper.pid) === `/${ROOT}/a`);
    expect(placer!.stats.placed).toBeGreaterThanOrEqual(1);

    // the matching shell waits until it has been placed, then forks a plain /bin/sleep
    const script = `until grep -qx '0::/${ROOT}/a' /proc/self/cgroup; do :; done; /bin/sleep 300 & echo child=$!; wait`;
    const sh = nsSpawn(ns.name, join(tmp, 'apps', 'awgt-sh'), ['-c', script]);
    procs.push(sh);
    const child = Number(await waitFor('child pid', () => /child=(\d+)/.exec(sh.output())?.[1]));
    // the pid is known at fork; the child is /bin/sleep once it has exec'd (its cmdline is the
    // shell's, or empty while the exec replaces it, until then)
    await waitFor("the child's exec of /bin/sleep", () =>
      readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('/bin/sleep'),
    );
    expect(placer!.rules.match('/usr/bin/sleep')).toBeUndefined();
    expect(cgroupOf(child)).toBe(`/${ROOT}/a`);
    expect(placer!.stats.errors).toBe(0);
  });

  it('re-places running processes when the rules change', async () => {
    const sleeper = nsSpawn(ns.name, join(tmp, 'apps', SLEEP), ['301']);
    procs.push(sleeper);
    await waitFor('placement', () => cgroupOf(sleeper.pid) === `/${ROOT}/a`);
    placer!.setRules(
      rules(
        { name: 'b', match: { name: SLEEP }, target: 'vpn2' },
        { name: 'a', match: { dir: join(tmp, 'apps') }, target: 'vpn' },
      ),
    );
    expect(cgroupOf(sleeper.pid)).toBe(`/${ROOT}/b`);
    // the inherited /bin/sleep child of the first test stays in `a` (rule a still exists)
    placer!.setRules(
      rules({ name: 'other', match: { name: 'nothing-matches-this' }, target: 'vpn' }),
    );
    expect(cgroupOf(sleeper.pid)).toBe(`/${ROOT}`);
  });

  it('never moves its own descendants (tracked from FORK events)', async () => {
    const c2 = ProcConnector.open();
    const own = new ProcessPlacer({
      matcher: rules({ name: 'b', match: { dir: join(tmp, 'apps') }, target: 'vpn' }),
      cgroupRoot: ROOT,
      mount: { mountPoint: mount, root: '/' },
    });
    try {
      own.attach(c2);
      own.rescan();
      const before = own.stats.ownTree;
      const p = nsSpawn(ns.name, join(tmp, 'apps', SLEEP), ['302']);
      procs.push(p);
      // nsenter's exec and the sleeper's exec, both seen and skipped
      await waitFor('own-tree execs', () => own.stats.ownTree >= before + 2);
      expect(own.stats.placed).toBe(0);
      expect(cgroupOf(p.pid)).not.toBe(`/${ROOT}/b`);
    } finally {
      c2.close();
      own.close();
    }
  });

  it('outside the initial network namespace LISTEN is refused; an inherited socket from the initial namespace works', async () => {
    const fd = openConnectorSocket();
    const sleepCopy = join(tmp, 'apps', SLEEP);
    const code = `
      import { ProcConnector } from ${JSON.stringify(join(REPO_ROOT, 'src/procs/connector.ts'))};
      import { spawn } from 'node:child_process';
      let own = 'opened';
      try { ProcConnector.open().close(); } catch (e) { own = e.kind + ': ' + e.message; }
      const c = ProcConnector.open({ fd: 3 });
      const child = spawn(${JSON.stringify(sleepCopy)}, ['0.2']);
      c.listen((evs) => {
        if (evs.some((e) => e.type === 'exec' && e.tgid === child.pid)) {
          console.log(JSON.stringify({ own, sawExec: true }));
          c.close();
          process.exit(0);
        }
      });
      setTimeout(() => { console.log(JSON.stringify({ own, sawExec: false })); process.exit(1); }, 10000);
    `;
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(
        'nsenter',
        [
          `--net=${netnsPath(ns.name)}`,
          '--',
          process.execPath,
          '--import',
          `file://${join(REPO_ROOT, 'node_modules/tsx/dist/loader.mjs')}`,
          '--input-type=module',
          '-e',
          code,
        ],
        { stdio: ['ignore', 'pipe', 'pipe', fd] },
      );
      let stdout = '';
      let stderr = '';
      p.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('close', (c) => resolve({ code: c ?? 1, stdout, stderr }));
    });
    close(fd);
    expect(out.code, out.stderr).toBe(0);
    const r = JSON.parse(out.stdout.trim().split('\n').pop()!) as { own: string; sawExec: boolean };
    expect(r.own).toMatch(/^unsupported: .*ECONNREFUSED.*initial network namespace/);
    expect(r.sawExec).toBe(true);
  });
});

function spawnSyncChmod(p: string): void {
  // copyFileSync keeps the mode on Linux; make sure it is executable anyway
  writeFileSync(p, readFileSync(p), { mode: 0o755 });
}
