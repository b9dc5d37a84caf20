import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DNS_STATE_KEY } from '../../src/resources/dns/linux.js';
import { FileStateStore } from '../../src/util/state.js';
import { requireNetnsPrereqs, run } from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['unshare', 'mount']);

/**
 * The static manager against the real path /etc/resolv.conf, inside a private mount namespace
 * (`unshare -m`) where a temp file is bind-mounted over it: the host's file is never touched.
 * A bind-mounted resolv.conf (as in containers) cannot be renamed over, so this also covers the
 * in-place write fallback.
 */
describe.skipIf(skip)('dns static manager on /etc/resolv.conf in a private mount namespace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'awg-dns-mnt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'run.mts');
  const fake = join(dir, 'resolv.conf');
  const stateDir = join(dir, 'state');
  const original = Buffer.from(
    '# host-like resolv.conf\nnameserver 192.0.2.53\nsearch example.internal\n\n',
    'utf8',
  );
  writeFileSync(fake, original);
  writeFileSync(
    script,
    `import { createLinuxDnsDriver } from ${JSON.stringify(resolve('src/resources/dns/linux.ts'))};
import { ProcessExec } from ${JSON.stringify(resolve('src/util/exec.ts'))};
import { MemoryReporter } from ${JSON.stringify(resolve('src/util/reporter.ts'))};
import { FileStateStore } from ${JSON.stringify(resolve('src/util/state.ts'))};
import { readFileSync } from 'node:fs';
const action = process.argv[2];
const reporter = new MemoryReporter();
const exec = new ProcessExec(reporter);
const state = new FileStateStore(${JSON.stringify(stateDir)});
const claims = { linkPrefix: 'awg-' } as never;
const d = createLinuxDnsDriver({ exec, env: { ...process.env, AWG_DNS_MANAGER: 'static', AWG_RESOLV_CONF: '' } });
const spec = { scope: 'awg-t', servers: ['10.200.4.1'], domains: ['~.'] };
const r = await d.apply({ kind: 'dns', id: 'dns/awg-t', action, ...(action === 'delete' ? { before: spec } : { after: spec }), reason: '', cause: 'initial' } as never, { exec, reporter, state, dryRun: false, claims });
const o = await d.observe({ desired: { resources: [], warnings: [] }, claims, state });
console.log(JSON.stringify({ r, m: reporter.mutations.length, seen: readFileSync('/etc/resolv.conf', 'utf8'), observed: o.resources.map((x) => x.spec) }));
`,
  );
  const inMountNs = async (action: string) => {
    const tsx = resolve('node_modules/.bin/tsx');
    const r = await run('unshare', [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$1" /etc/resolv.conf && exec "$2" "$3" "$4"',
      'sh',
      fake,
      tsx,
      script,
      action,
    ]);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      r: string;
      m: number;
      seen: string;
      observed: unknown[];
    };
  };

  it('writes the marked file, second apply is a no-op, delete restores the bytes; the host file is untouched', async () => {
    const host = readFileSync('/etc/resolv.conf');
    const a = await inMountNs('create');
    expect(a.r).toBe('changed');
    expect(a.seen).toMatch(/^# managed by awg scope=awg-t\n/);
    expect(a.observed).toEqual([{ scope: 'awg-t', servers: ['10.200.4.1'], domains: ['~.'] }]);
    expect(readFileSync(fake, 'utf8')).toBe(a.seen);
    expect(new FileStateStore(stateDir).get(DNS_STATE_KEY)).toMatchObject({
      path: '/etc/resolv.conf',
      kind: 'file',
    });
    const b = await inMountNs('create');
    expect([b.r, b.m]).toEqual(['unchanged', 0]);
    const c = await inMountNs('delete');
    expect(c.r).toBe('changed');
    expect(c.observed).toEqual([]);
    expect(readFileSync(fake).equals(original)).toBe(true);
    expect(new FileStateStore(stateDir).get(DNS_STATE_KEY)).toBeUndefined();
    expect(readFileSync('/etc/resolv.conf').equals(host)).toBe(true);
  });
});
