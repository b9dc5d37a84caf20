import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { SysctlSpec } from '../../../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../../../src/resources/driver.js';
import {
  SYSCTL_STATE_KEY,
  createLinuxSysctlDriver,
  procSysIo,
  sysctlPath,
} from '../../../../src/resources/sysctl/linux.js';
import { ProcessExec } from '../../../../src/util/exec.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';

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
const KEY = 'net.ipv4.conf.all.src_valid_mark';
let root: string;
let state: MemoryStateStore;
const file = (k: string) => join(root, sysctlPath(k));
function ctx(dryRun = false): ApplyContext {
  const reporter = new MemoryReporter();
  return { exec: new ProcessExec(reporter, dryRun), reporter, state, dryRun, claims };
}
const create = (spec: SysctlSpec): Change<'sysctl'> => ({
  kind: 'sysctl',
  id: `sysctl/${spec.key}`,
  action: 'create',
  after: spec,
  reason: '',
  cause: 'initial',
});
const del = (spec: SysctlSpec): Change<'sysctl'> => ({
  kind: 'sysctl',
  id: `sysctl/${spec.key}`,
  action: 'delete',
  before: spec,
  reason: '',
  cause: 'config',
});

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'awg-sysctl-'));
  mkdirSync(join(root, 'net/ipv4/conf/all'), { recursive: true });
  mkdirSync(join(root, 'net/ipv4'), { recursive: true });
  writeFileSync(file(KEY), '0\n');
  writeFileSync(join(root, 'net/ipv4/ip_local_port_range'), '32768\t60999\n');
  state = new MemoryStateStore();
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('sysctl driver (file I/O on a temp /proc/sys)', () => {
  it('saves the original, is idempotent, restores on delete', async () => {
    const d = createLinuxSysctlDriver({ io: procSysIo(root) });
    const scope = { desired: { resources: [], warnings: [] }, claims, state };
    expect((await d.observe(scope)).resources).toEqual([]);
    const c = ctx();
    expect(await d.apply(create({ key: KEY, value: '1' }), c)).toBe('changed');
    expect(readFileSync(file(KEY), 'utf8')).toBe('1\n');
    expect(state.get(SYSCTL_STATE_KEY)).toEqual({ [KEY]: '0' });
    expect(await d.apply(create({ key: KEY, value: '1' }), c)).toBe('unchanged');
    expect(c.exec.mutations).toBe(1);
    expect((await d.observe(scope)).resources.map((r) => r.spec)).toEqual([
      { key: KEY, value: '1' },
    ]);
    // someone else changes it: the original stays the first one we saw
    writeFileSync(file(KEY), '2\n');
    expect(await d.apply({ ...create({ key: KEY, value: '1' }), action: 'update' }, c)).toBe(
      'changed',
    );
    expect(state.get(SYSCTL_STATE_KEY)).toEqual({ [KEY]: '0' });
    expect(await d.apply(del({ key: KEY, value: '1' }), c)).toBe('changed');
    expect(readFileSync(file(KEY), 'utf8')).toBe('0\n');
    expect(state.get(SYSCTL_STATE_KEY)).toBeUndefined();
    expect(await d.apply(del({ key: KEY, value: '1' }), c)).toBe('unchanged');
    expect((await d.observe(scope)).resources).toEqual([]);
  });

  it('records a key already at the wanted value without writing it', async () => {
    const d = createLinuxSysctlDriver({ io: procSysIo(root) });
    const c = ctx();
    expect(await d.apply(create({ key: KEY, value: '0' }), c)).toBe('unchanged');
    expect(c.exec.mutations).toBe(0);
    expect(state.get(SYSCTL_STATE_KEY)).toEqual({ [KEY]: '0' });
  });

  it('normalises multi-value sysctls', async () => {
    const d = createLinuxSysctlDriver({ io: procSysIo(root) });
    const c = ctx();
    expect(
      await d.apply(create({ key: 'net.ipv4.ip_local_port_range', value: '32768  60999' }), c),
    ).toBe('unchanged');
  });

  it('dry-run writes nothing and saves nothing', async () => {
    const d = createLinuxSysctlDriver({ io: procSysIo(root) });
    const c = ctx(true);
    expect(await d.apply(create({ key: KEY, value: '1' }), c)).toBe('changed');
    expect(c.exec.mutations).toBe(1);
    expect(readFileSync(file(KEY), 'utf8')).toBe('0\n');
    expect(state.get(SYSCTL_STATE_KEY)).toBeUndefined();
  });

  it('a missing key is a driver error; bad keys are rejected', async () => {
    const d = createLinuxSysctlDriver({ io: procSysIo(root) });
    await expect(
      d.apply(create({ key: 'net.ipv4.conf.awg-x.rp_filter', value: '2' }), ctx()),
    ).rejects.toMatchObject({ kind: 'driver' });
    expect(() => sysctlPath('../etc/passwd')).toThrow();
    expect(sysctlPath('net/ipv4/conf/eth0.100/rp_filter')).toBe('net/ipv4/conf/eth0.100/rp_filter');
  });
});
