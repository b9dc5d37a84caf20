import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { ApplyContext, Claims } from '../../../../src/resources/driver.js';
import { FakeCgroupDriver } from '../../../../src/resources/cgroup/driver.fake.js';
import { createLinuxCgroupDriver } from '../../../../src/resources/cgroup/linux.js';
import {
  isOwnedPath,
  nftCgroupRef,
  parseCgroup2Mount,
  type CgroupFacts,
} from '../../../../src/resources/cgroup/parse.js';
import { ProcessExec } from '../../../../src/util/exec.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';

const fx = (f: string) =>
  readFileSync(new URL(`../../../fixtures/linux/cgroup/${f}`, import.meta.url), 'utf8');
const claims: Claims = {
  routeProtocol: 167,
  tableBase: 52000,
  bandSize: 100,
  rulePriority: 5200,
  fwmarkMask: 0x0f000000,
  nftTable: 'awg',
  linkPrefix: 'awg-',
  cgroupRoot: 'awg',
};

describe('parseCgroup2Mount', () => {
  it('hybrid host (captured): unified/ prefix', () => {
    const m = parseCgroup2Mount(fx('mountinfo-hybrid.txt'))!;
    expect(m).toEqual({ mountPoint: '/sys/fs/cgroup/unified', root: '/', nftPrefix: 'unified' });
    expect(nftCgroupRef(m, 'awg/work')).toEqual({ path: 'unified/awg/work', level: 2 });
    expect(nftCgroupRef(m, 'awg')).toEqual({ path: 'unified/awg', level: 1 });
  });
  it('pure v2: no prefix', () => {
    const m = parseCgroup2Mount(fx('mountinfo-pure-v2.txt'))!;
    expect(m.nftPrefix).toBe('');
    expect(nftCgroupRef(m, 'awg/work')).toEqual({ path: 'awg/work', level: 2 });
  });
  it('container without cgroupns: level counts the hidden ancestors', () => {
    const m = parseCgroup2Mount(fx('mountinfo-container-no-cgroupns.txt'))!;
    expect(m.root).toBe('/system.slice/docker-0f1e.scope');
    expect(nftCgroupRef(m, 'awg/work')).toEqual({ path: 'awg/work', level: 4 });
  });
  it('v1 only: none; outside /sys/fs/cgroup: unsupported for nft; escapes decoded', () => {
    expect(parseCgroup2Mount(fx('mountinfo-v1-only.txt'))).toBeUndefined();
    const m = parseCgroup2Mount(fx('mountinfo-escaped.txt'))!;
    expect(m.mountPoint).toBe('/mnt/cg 2');
    expect(m.nftPrefix).toBeUndefined();
    expect(() => nftCgroupRef(m, 'awg/x')).toThrow(/outside/);
  });
  it('isOwnedPath', () => {
    expect(isOwnedPath('awg', 'awg')).toBe(true);
    expect(isOwnedPath('awg/x/y', 'awg')).toBe(true);
    expect(isOwnedPath('awgx', 'awg')).toBe(false);
    expect(isOwnedPath('awg/../x', 'awg')).toBe(false);
    expect(isOwnedPath('awg//x', 'awg')).toBe(false);
  });
});

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'awg-cg-'));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));
function ctx(dryRun = false): ApplyContext {
  const reporter = new MemoryReporter();
  return {
    exec: new ProcessExec(reporter, dryRun),
    reporter,
    state: new MemoryStateStore(),
    dryRun,
    claims,
  };
}
const ch = (action: 'create' | 'delete', path: string): Change<'cgroup'> => ({
  kind: 'cgroup',
  id: `cgroup/${path}`,
  action,
  ...(action === 'delete' ? { before: { path } } : { after: { path } }),
  reason: '',
  cause: 'initial',
});
const scope = { desired: { resources: [], warnings: [] }, claims, state: new MemoryStateStore() };

describe('Linux cgroup driver on a plain directory', () => {
  it('creates parents, is idempotent, reports inodes, deletes bottom-up', async () => {
    const d = createLinuxCgroupDriver({
      mount: { mountPoint: base, root: '/', nftPrefix: 'unified' },
    });
    const c = ctx();
    expect(await d.apply(ch('create', 'awg/work'), c)).toBe('changed');
    expect(c.exec.mutations).toBe(2);
    expect(await d.apply(ch('create', 'awg/work'), c)).toBe('unchanged');
    expect(c.exec.mutations).toBe(2);
    const o = await d.observe(scope);
    expect(o.resources.map((r) => r.spec.path)).toEqual(['awg', 'awg/work']);
    const facts = o.facts!.cgroup as CgroupFacts;
    expect(facts.inodes['awg/work']).toBe(statSync(join(base, 'awg/work')).ino);
    expect(o.resources.map((r) => r.deps)).toEqual([[], ['cgroup/awg']]);
    await expect(d.apply(ch('delete', 'awg'), c)).rejects.toMatchObject({ kind: 'driver' });
    expect(existsSync(join(base, 'awg/work'))).toBe(true);
    expect(await d.apply(ch('delete', 'awg/work'), c)).toBe('changed');
    expect(await d.apply(ch('delete', 'awg'), c)).toBe('changed');
    expect(existsSync(join(base, 'awg'))).toBe(false);
    expect(await d.apply(ch('delete', 'awg'), c)).toBe('unchanged');
  });
  it('refuses paths outside the claimed subtree', async () => {
    const d = createLinuxCgroupDriver({ mount: { mountPoint: base, root: '/', nftPrefix: '' } });
    await expect(d.apply(ch('create', 'system.slice/x'), ctx())).rejects.toMatchObject({
      kind: 'bug',
    });
  });
  it('dry-run creates nothing', async () => {
    const d = createLinuxCgroupDriver({ mount: { mountPoint: base, root: '/', nftPrefix: '' } });
    expect(await d.apply(ch('create', 'awg/x'), ctx(true))).toBe('changed');
    expect(existsSync(join(base, 'awg'))).toBe(false);
  });
  it('dry-run deletes bottom-up without an error for the children it did not remove', async () => {
    const d = createLinuxCgroupDriver({ mount: { mountPoint: base, root: '/', nftPrefix: '' } });
    expect(await d.apply(ch('create', 'awg/x'), ctx())).toBe('changed');
    const c = ctx(true);
    expect(await d.apply(ch('delete', 'awg/x'), c)).toBe('changed');
    expect(await d.apply(ch('delete', 'awg'), c)).toBe('changed');
    expect(existsSync(join(base, 'awg/x'))).toBe(true);
  });
});

describe('FakeCgroupDriver', () => {
  it('a recreated path has a new inode', async () => {
    const d = new FakeCgroupDriver();
    const c = ctx();
    await d.apply(ch('create', 'awg/x'), c);
    const i1 = ((await d.observe(scope)).facts!.cgroup as CgroupFacts).inodes['awg/x'];
    await d.apply(ch('delete', 'awg/x'), c);
    expect(((await d.observe(scope)).facts!.cgroup as CgroupFacts).inodes['awg/x']).toBeUndefined();
    await d.apply(ch('create', 'awg/x'), c);
    const i2 = ((await d.observe(scope)).facts!.cgroup as CgroupFacts).inodes['awg/x'];
    expect(i1).toBeDefined();
    expect(i2).not.toBe(i1);
  });
});
