import { existsSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/change.js';
import type { ApplyContext, Claims } from '../../src/resources/driver.js';
import { createLinuxCgroupDriver } from '../../src/resources/cgroup/linux.js';
import type { CgroupFacts } from '../../src/resources/cgroup/parse.js';
import { ProcessExec } from '../../src/util/exec.js';
import { MemoryReporter } from '../../src/util/reporter.js';
import { MemoryStateStore } from '../../src/util/state.js';
import { nsSpawn, requireNetnsPrereqs, useNetns, type NsProcess } from '../helpers/netns.js';

const skip = requireNetnsPrereqs();
// a private subtree name so a real `awg/` tree on the host is never touched
const ROOT = `awgt-cg-${process.pid}`;
const claims: Claims = {
  routeProtocol: 167,
  tableBase: 52000,
  bandSize: 100,
  rulePriority: 5200,
  fwmarkMask: 0x0f000000,
  nftTable: 'awg',
  linkPrefix: 'awg-',
  cgroupRoot: ROOT,
};
const mk = (action: 'create' | 'delete', path: string): Change<'cgroup'> => ({
  kind: 'cgroup',
  id: `cgroup/${path}`,
  action,
  ...(action === 'delete' ? { before: { path } } : { after: { path } }),
  reason: '',
  cause: 'initial',
});
const ctx = (): ApplyContext => {
  const reporter = new MemoryReporter();
  return {
    exec: new ProcessExec(reporter),
    reporter,
    state: new MemoryStateStore(),
    dryRun: false,
    claims,
  };
};
const scope = { desired: { resources: [], warnings: [] }, claims, state: new MemoryStateStore() };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip)('cgroup driver on the real cgroup v2 hierarchy', () => {
  const ns = useNetns('cgroup');
  const d = createLinuxCgroupDriver();
  let mountPoint = '';
  let sleeper: NsProcess | undefined;
  afterAll(async () => {
    await sleeper?.kill(500);
    for (const p of [`${ROOT}/a`, `${ROOT}/b`, ROOT]) {
      try {
        rmdirSync(join(mountPoint, p));
      } catch {
        /* gone */
      }
    }
  });

  it('creates, is idempotent, reports inodes; a recreated directory has a new inode', async () => {
    mountPoint = (await d.mount()).mountPoint;
    const listing = readdirSync(mountPoint).sort();
    const c1 = ctx();
    expect(await d.apply(mk('create', `${ROOT}/a`), c1)).toBe('changed');
    expect(await d.apply(mk('create', `${ROOT}/b`), c1)).toBe('changed');
    expect(c1.exec.mutations).toBe(3);
    const c2 = ctx();
    expect(await d.apply(mk('create', `${ROOT}/a`), c2)).toBe('unchanged');
    expect(c2.exec.mutations).toBe(0);
    const o = await d.observe(scope);
    expect(o.resources.map((r) => r.id)).toEqual([
      `cgroup/${ROOT}`,
      `cgroup/${ROOT}/a`,
      `cgroup/${ROOT}/b`,
    ]);
    const inodes = (o.facts!.cgroup as CgroupFacts).inodes;
    expect(inodes[`${ROOT}/a`]).toBe(statSync(join(mountPoint, ROOT, 'a')).ino);
    await d.apply(mk('delete', `${ROOT}/b`), ctx());
    await d.apply(mk('create', `${ROOT}/b`), ctx());
    const again = ((await d.observe(scope)).facts!.cgroup as CgroupFacts).inodes;
    expect(again[`${ROOT}/b`]).not.toBe(inodes[`${ROOT}/b`]);
    expect(readdirSync(mountPoint).sort()).toEqual([...listing, ROOT].sort());
  });

  it('delete moves processes left inside to the parent, refuses a parent with children, leaves the hierarchy as it was', async () => {
    const dirA = join(mountPoint, ROOT, 'a');
    sleeper = nsSpawn(ns.name, 'sh', ['-c', `echo $$ > ${dirA}/cgroup.procs && exec sleep 60`]);
    for (let i = 0; i < 100 && !readFileSync(join(dirA, 'cgroup.procs'), 'utf8').trim(); i++)
      await sleep(20);
    expect(readFileSync(join(dirA, 'cgroup.procs'), 'utf8').trim()).toBe(String(sleeper.pid));
    await expect(d.apply(mk('delete', ROOT), ctx())).rejects.toMatchObject({ kind: 'driver' });
    expect(await d.apply(mk('delete', `${ROOT}/a`), ctx())).toBe('changed');
    expect(existsSync(dirA)).toBe(false);
    expect(readFileSync(`/proc/${sleeper.pid}/cgroup`, 'utf8')).toContain(`::/${ROOT}\n`);
    await sleeper.kill(500);
    sleeper = undefined;
    await d.apply(mk('delete', `${ROOT}/b`), ctx());
    expect(await d.apply(mk('delete', ROOT), ctx())).toBe('changed');
    expect(await d.apply(mk('delete', ROOT), ctx())).toBe('unchanged');
    expect(existsSync(join(mountPoint, ROOT))).toBe(false);
    expect((await d.observe(scope)).resources).toEqual([]);
  });
});
