import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Change } from '../../../../src/model/change.js';
import type { DnsSpec } from '../../../../src/model/resources.js';
import type { ApplyContext, Claims } from '../../../../src/resources/driver.js';
import { DNS_STATE_KEY, createLinuxDnsDriver } from '../../../../src/resources/dns/linux.js';
import {
  detectDnsManager,
  parseManagedResolvConf,
  parseResolvectlLinks,
  renderResolvConf,
} from '../../../../src/resources/dns/parse.js';
import { ProcessExec } from '../../../../src/util/exec.js';
import { MemoryReporter } from '../../../../src/util/reporter.js';
import { MemoryStateStore } from '../../../../src/util/state.js';

const fxDir = fileURLToPath(new URL('../../../fixtures/linux/dns/', import.meta.url));
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

describe('dns parse', () => {
  it('detects the manager', () => {
    const none = { hasResolvectl: false, hasResolvconf: false };
    expect(detectDnsManager(none)).toBe('static');
    expect(detectDnsManager({ ...none, hasResolvconf: true })).toBe('resolvconf');
    expect(
      detectDnsManager({
        hasResolvectl: true,
        hasResolvconf: true,
        resolvConfLink: '../run/systemd/resolve/stub-resolv.conf',
      }),
    ).toBe('resolved');
    expect(
      detectDnsManager({
        hasResolvectl: true,
        hasResolvconf: false,
        resolvConfText: 'nameserver 127.0.0.53\noptions edns0\n',
      }),
    ).toBe('resolved');
    // resolvectl installed but resolv.conf not pointing at the stub: resolved is not in charge
    expect(
      detectDnsManager({
        hasResolvectl: true,
        hasResolvconf: false,
        resolvConfText: 'nameserver 1.1.1.1\n',
      }),
    ).toBe('static');
    expect(detectDnsManager({ ...none, override: 'resolved' })).toBe('resolved');
    expect(() => detectDnsManager({ ...none, override: 'dnsmasq' })).toThrow(/AWG_DNS_MANAGER/);
  });
  it('resolv.conf round-trips, routing domains included; foreign files are not ours', () => {
    const spec: DnsSpec = {
      scope: 'awg-work',
      servers: ['10.64.0.1', 'fd00::1'],
      domains: ['~.', 'corp.example'],
    };
    const text = renderResolvConf(spec);
    expect(text.split('\n')[0]).toBe('# managed by awg scope=awg-work');
    expect(parseManagedResolvConf(text)).toEqual(spec);
    expect(parseManagedResolvConf('nameserver 1.1.1.1\n')).toBeUndefined();
    expect(parseManagedResolvConf('# managed by someone\nnameserver 1.1.1.1\n')).toBeUndefined();
  });
  it('parses resolvectl per-link output (format of systemd 252; synthetic sample)', () => {
    expect(parseResolvectlLinks(readFileSync(join(fxDir, 'resolvectl-dns.txt'), 'utf8'))).toEqual(
      new Map([
        ['eth0', ['192.168.1.1', 'fe80::1%2']],
        ['awg-work', ['10.64.0.1', 'fd00::1']],
        ['awg-idle', []],
      ]),
    );
    expect(
      parseResolvectlLinks(readFileSync(join(fxDir, 'resolvectl-domain.txt'), 'utf8')).get(
        'awg-work',
      ),
    ).toEqual(['~.', 'corp.example']);
  });
});

let dir: string;
let state: MemoryStateStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'awg-dns-'));
  state = new MemoryStateStore();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
function ctx(dryRun = false): ApplyContext {
  const reporter = new MemoryReporter();
  return { exec: new ProcessExec(reporter, dryRun), reporter, state, dryRun, claims };
}
const change = (action: 'create' | 'update' | 'delete', spec: DnsSpec): Change<'dns'> => ({
  kind: 'dns',
  id: `dns/${spec.scope}`,
  action,
  ...(action === 'delete' ? { before: spec } : { after: spec }),
  reason: '',
  cause: 'initial',
});
const spec: DnsSpec = { scope: 'awg-work', servers: ['10.64.0.1'], domains: ['~.'] };
const scope = () => ({ desired: { resources: [], warnings: [] }, claims, state });

describe('static manager on a temp resolv.conf (AWG_RESOLV_CONF)', () => {
  const original = Buffer.from(
    '# written by hand\r\nnameserver 192.0.2.53\noptions  rotate\t\n\u00e9',
    'utf8',
  );
  it('writes a marked file, is idempotent, restores bytes and mode', async () => {
    const path = join(dir, 'resolv.conf');
    writeFileSync(path, original);
    chmodSync(path, 0o640);
    const d = createLinuxDnsDriver({
      exec: new ProcessExec(new MemoryReporter()),
      env: { AWG_DNS_MANAGER: 'static', AWG_RESOLV_CONF: path },
    });
    expect((await d.observe(scope())).resources).toEqual([]);
    const c = ctx();
    expect(await d.apply(change('create', spec), c)).toBe('changed');
    expect(readFileSync(path, 'utf8')).toMatch(/^# managed by awg scope=awg-work\n/);
    expect(await d.apply(change('create', spec), c)).toBe('unchanged');
    expect(c.exec.mutations).toBe(1);
    const o = await d.observe(scope());
    expect(o.resources.map((r) => r.spec)).toEqual([spec]);
    expect(o.facts).toEqual({ dns: { manager: 'static', resolvConf: path } });
    expect(await d.apply(change('update', { ...spec, servers: ['10.64.0.2'] }), c)).toBe('changed');
    expect(await d.apply(change('delete', spec), c)).toBe('changed');
    expect(readFileSync(path).equals(original)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o640);
    expect(state.get(DNS_STATE_KEY)).toBeUndefined();
    expect(await d.apply(change('delete', spec), c)).toBe('unchanged');
  });

  it('restores a symlink as a symlink, and an absent file as absent', async () => {
    const path = join(dir, 'resolv.conf');
    symlinkSync('../run/systemd/resolve/stub-resolv.conf', path);
    const d = createLinuxDnsDriver({
      exec: new ProcessExec(new MemoryReporter()),
      env: { AWG_DNS_MANAGER: 'static', AWG_RESOLV_CONF: path },
    });
    await d.apply(change('create', spec), ctx());
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
    await d.apply(change('delete', spec), ctx());
    expect(readlinkSync(path)).toBe('../run/systemd/resolve/stub-resolv.conf');

    const p2 = join(dir, 'none.conf');
    const d2 = createLinuxDnsDriver({
      exec: new ProcessExec(new MemoryReporter()),
      env: { AWG_DNS_MANAGER: 'static', AWG_RESOLV_CONF: p2 },
    });
    await d2.apply(change('create', spec), ctx());
    expect(existsSync(p2)).toBe(true);
    await d2.apply(change('delete', spec), ctx());
    expect(existsSync(p2)).toBe(false);
  });

  it('leaves a file alone that someone rewrote without our marker', async () => {
    const path = join(dir, 'resolv.conf');
    writeFileSync(path, original);
    const d = createLinuxDnsDriver({
      exec: new ProcessExec(new MemoryReporter()),
      env: { AWG_DNS_MANAGER: 'static', AWG_RESOLV_CONF: path },
    });
    await d.apply(change('create', spec), ctx());
    writeFileSync(path, 'nameserver 203.0.113.1\n');
    expect(await d.apply(change('delete', spec), ctx())).toBe('unchanged');
    expect(readFileSync(path, 'utf8')).toBe('nameserver 203.0.113.1\n');
  });

  it('dry-run writes and saves nothing', async () => {
    const path = join(dir, 'resolv.conf');
    writeFileSync(path, original);
    const d = createLinuxDnsDriver({
      exec: new ProcessExec(new MemoryReporter()),
      env: { AWG_DNS_MANAGER: 'static', AWG_RESOLV_CONF: path },
    });
    const c = ctx(true);
    expect(await d.apply(change('create', spec), c)).toBe('changed');
    expect(readFileSync(path).equals(original)).toBe(true);
    expect(state.keys()).toEqual([]);
  });
});

describe('resolved and resolvconf managers against test doubles of their CLIs', () => {
  const savedPath = process.env.PATH;
  const savedFake = process.env.FAKE_DNS_DIR;
  beforeEach(() => {
    process.env.PATH = `${join(fxDir, 'bin')}:${savedPath ?? ''}`;
    process.env.FAKE_DNS_DIR = dir;
    mkdirSync(join(dir, 'links'));
    for (const l of ['eth0', 'awg-work']) writeFileSync(join(dir, 'links', l), '');
    writeFileSync(join(dir, 'dns.eth0'), '192.168.1.1\n');
  });
  afterEach(() => {
    process.env.PATH = savedPath;
    if (savedFake === undefined) delete process.env.FAKE_DNS_DIR;
    else process.env.FAKE_DNS_DIR = savedFake;
  });

  it('resolved through resolvectl (no busctl): per-link servers, domains and default-route, idempotent, revert on delete, foreign links untouched', async () => {
    const exec = new ProcessExec(new MemoryReporter());
    const d = createLinuxDnsDriver({
      exec,
      env: { ...process.env, AWG_DNS_MANAGER: 'resolved', AWG_RESOLV_CONF: join(dir, 'x') },
      resolvedClient: 'resolvectl',
      links: async () => new Map([['awg-work', 3]]),
    });
    const c = ctx();
    const spec: DnsSpec = {
      scope: 'awg-work',
      servers: ['10.64.0.1'],
      domains: [],
      defaultRoute: false,
    };
    expect(await d.apply(change('create', spec), c)).toBe('changed');
    expect(c.exec.mutations).toBe(2);
    expect(await d.apply(change('create', spec), c)).toBe('unchanged');
    expect(c.exec.mutations).toBe(2);
    expect((await d.observe(scope())).resources.map((r) => r.spec)).toEqual([spec]);
    expect(await d.apply(change('delete', spec), c)).toBe('changed');
    expect((await d.observe(scope())).resources).toEqual([]);
    expect(readFileSync(join(dir, 'dns.eth0'), 'utf8')).toBe('192.168.1.1\n');
    await expect(d.apply(change('create', { ...spec, scope: 'system' }), c)).rejects.toMatchObject({
      kind: 'unsupported',
    });
  });

  it('resolvconf: -a with the file on stdin, -d on delete', async () => {
    const exec = new ProcessExec(new MemoryReporter());
    const d = createLinuxDnsDriver({
      exec,
      env: { ...process.env, AWG_DNS_MANAGER: 'resolvconf', AWG_RESOLV_CONF: join(dir, 'x') },
      resolvconfDir: join(dir, 'interface'),
    });
    const c = ctx();
    const s2 = { ...spec, domains: ['~.', 'corp.example'] };
    expect(await d.apply(change('create', s2), c)).toBe('changed');
    expect(readFileSync(join(dir, 'interface', 'awg-work'), 'utf8')).toBe(
      '# awg routing-domains: ~.\nnameserver 10.64.0.1\nsearch corp.example\n',
    );
    expect(await d.apply(change('create', s2), c)).toBe('unchanged');
    expect((await d.observe(scope())).resources.map((r) => r.spec)).toEqual([s2]);
    expect(await d.apply(change('delete', s2), c)).toBe('changed');
    expect((await d.observe(scope())).resources).toEqual([]);
    expect(c.exec.mutations).toBe(2);
  });
});
