import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/model/change.js';
import type { SysctlSpec } from '../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../src/resources/driver.js';
import {
  SYSCTL_STATE_KEY,
  createLinuxSysctlDriver,
  sysctlPath,
  type SysctlIo,
} from '../../src/resources/sysctl/linux.js';
import { ProcessExec } from '../../src/util/exec.js';
import { MemoryReporter } from '../../src/util/reporter.js';
import { FileStateStore, MemoryStateStore } from '../../src/util/state.js';
import { nsExec, requireNetnsPrereqs, useNetns } from '../helpers/netns.js';

const skip = requireNetnsPrereqs();
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
const mk = (action: 'create' | 'delete', s: SysctlSpec): Change<'sysctl'> => ({
  kind: 'sysctl',
  id: `sysctl/${s.key}`,
  action,
  ...(action === 'delete' ? { before: s } : { after: s }),
  reason: '',
  cause: 'initial',
});
const KEYS: SysctlSpec[] = [
  { key: 'net.ipv4.conf.all.src_valid_mark', value: '1' },
  { key: 'net.ipv4.conf.all.rp_filter', value: '2' },
  { key: 'net.ipv4.conf.lo.route_localnet', value: '1' },
];
const hostValue = (key: string) => readFileSync(join('/proc/sys', sysctlPath(key)), 'utf8').trim();

/** /proc/sys of the namespace, read and written by processes inside it */
function nsIo(ns: string): SysctlIo {
  return {
    async read(key) {
      const r = await nsExec(ns, 'cat', [join('/proc/sys', sysctlPath(key))], { allowFail: true });
      return r.code === 0 ? r.stdout.trim().split(/\s+/).join(' ') : undefined;
    },
    async write(key, value) {
      await nsExec(ns, 'sh', [
        '-c',
        'printf "%s\\n" "$1" > "$2"',
        'sh',
        value,
        join('/proc/sys', sysctlPath(key)),
      ]);
    },
  };
}

describe.skipIf(skip)('sysctl driver in a network namespace', () => {
  const ns = useNetns('sysctl');
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const ctx = (state: MemoryStateStore): ApplyContext => {
    const reporter = new MemoryReporter();
    return { exec: new ProcessExec(reporter), reporter, state, dryRun: false, claims };
  };

  it('changes the namespace only, second apply is a no-op, delete restores the originals', async () => {
    const io = nsIo(ns.name);
    const d = createLinuxSysctlDriver({ io });
    const state = new MemoryStateStore();
    const host = KEYS.map((k) => hostValue(k.key));
    const orig = await Promise.all(KEYS.map((k) => io.read(k.key)));
    const c1 = ctx(state);
    for (const k of KEYS) await d.apply(mk('create', k), c1);
    expect(c1.exec.mutations).toBe(KEYS.filter((k, i) => orig[i] !== k.value).length);
    expect(await Promise.all(KEYS.map((k) => io.read(k.key)))).toEqual(KEYS.map((k) => k.value));
    expect(KEYS.map((k) => hostValue(k.key))).toEqual(host);
    const c2 = ctx(state);
    for (const k of KEYS) expect(await d.apply(mk('create', k), c2)).toBe('unchanged');
    expect(c2.exec.mutations).toBe(0);
    const scope = { desired: { resources: [], warnings: [] }, claims, state };
    expect((await d.observe(scope)).resources.map((r) => r.spec)).toEqual(
      [...KEYS].sort((a, b) => (a.key < b.key ? -1 : 1)),
    );
    for (const k of KEYS) await d.apply(mk('delete', k), ctx(state));
    expect(await Promise.all(KEYS.map((k) => io.read(k.key)))).toEqual(orig);
    expect(state.get(SYSCTL_STATE_KEY)).toBeUndefined();
  });

  it('plain /proc/sys file I/O is right when awg itself runs inside the namespace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'awg-sysctl-ns-'));
    dirs.push(dir);
    const script = join(dir, 'run.mts');
    const driverUrl = resolve('src/resources/sysctl/linux.ts');
    writeFileSync(
      script,
      `import { createLinuxSysctlDriver } from ${JSON.stringify(driverUrl)};
import { ProcessExec } from ${JSON.stringify(resolve('src/util/exec.ts'))};
import { MemoryReporter } from ${JSON.stringify(resolve('src/util/reporter.ts'))};
import { FileStateStore } from ${JSON.stringify(resolve('src/util/state.ts'))};
const [action, key, value] = process.argv.slice(2);
const state = new FileStateStore(${JSON.stringify(join(dir, 'state'))});
const reporter = new MemoryReporter();
const ctx = { exec: new ProcessExec(reporter), reporter, state, dryRun: false, claims: {} as never };
const spec = { key, value };
const r = await createLinuxSysctlDriver().apply({ kind: 'sysctl', id: 'x', action, ...(action === 'delete' ? { before: spec } : { after: spec }), reason: '', cause: 'initial' } as never, ctx);
console.log(r, reporter.mutations.length);
`,
    );
    const key = 'net.ipv4.conf.all.src_valid_mark';
    const io = nsIo(ns.name);
    const orig = await io.read(key);
    const host = hostValue(key);
    const tsx = resolve('node_modules/.bin/tsx');
    const want = orig === '1' ? '0' : '1';
    expect((await nsExec(ns.name, tsx, [script, 'create', key, want])).stdout.trim()).toBe(
      'changed 1',
    );
    expect(await io.read(key)).toBe(want);
    expect(hostValue(key)).toBe(host);
    expect((await nsExec(ns.name, tsx, [script, 'create', key, want])).stdout.trim()).toBe(
      'unchanged 0',
    );
    expect(new FileStateStore(join(dir, 'state')).get(SYSCTL_STATE_KEY)).toEqual({ [key]: orig });
    expect((await nsExec(ns.name, tsx, [script, 'delete', key, want])).stdout.trim()).toBe(
      'changed 1',
    );
    expect(await io.read(key)).toBe(orig);
  });
});
