import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../../src/config/load.js';
import { matches, type HostSelection } from '../../../src/config/overlay.js';
import {
  parseLabelList,
  parseLabelsFile,
  selectionFrom,
} from '../../../src/config/host-selection.js';
import { checkSecrets } from '../../../src/config/secrets.js';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { tempDir } from '../../helpers/tmp.js';

const KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY2 = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const INLINE = 'aGVsbG8gd29ybGQgdGhpcyBpcyAzMiBieXRlcyEhISE=';

const BASE = `version: 1
tunnels:
  work:
    type: wireguard
    privateKey: {file: keys/work.key}
    addresses: [10.9.0.2/32]
    mtu: 1400
    peers:
      - publicKey: ${KEY}
        endpoint: vpn.example.com:51820
        allowedIPs: [10.0.0.0/8]
rules:
  - name: browser
    match: { name: firefox-esr }
    target: work
  - name: ssh
    match: { name: ssh }
    target: work
killSwitch: off
overlays:
  - name: eu
    when: { hosts: ["laptop-*"], labels: { site: [eu, uk] } }
    file: hosts/eu.yaml
  - name: build
    when: { hosts: ["ci-*"], os: linux }
    config:
      rules:
        - name: ssh
          remove: true
  - when: { labels: { role: server } }
    file: hosts/server.yaml
`;

const EU = `# the EU laptops
tunnels:
  work:
    mtu: null
    peers:
      - publicKey: ${KEY2}
        endpoint: eu.example.com:51820
        allowedIPs: [0.0.0.0/0]
rules:
  - name: ssh
    match: { name: ssh }
    target: direct
  - name: chat
    match: { name: slack }
    target: work
    before: browser
  - name: mail
    match: { name: thunderbird }
    target: work
killSwitch: on
`;

function repo(files: Record<string, string> = {}): string {
  const dir = tempDir('awg-overlay-');
  mkdirSync(join(dir, 'hosts'));
  mkdirSync(join(dir, 'keys'));
  writeFileSync(join(dir, 'keys/work.key'), KEY + '\n', { mode: 0o600 });
  writeFileSync(join(dir, 'awg.yaml'), BASE);
  writeFileSync(join(dir, 'hosts/eu.yaml'), EU);
  writeFileSync(join(dir, 'hosts/server.yaml'), 'ipv6: block\n');
  for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, k), v);
  return dir;
}

const sel = (host: string, labels: Record<string, string> = {}, os = 'linux'): HostSelection => ({
  host,
  labels,
  os,
});

describe('overlay selectors', () => {
  it('hosts globs (any, case-insensitive), labels (value or one of a list), os: all must hold', () => {
    const when = {
      hosts: ['laptop-*', 'desk-[0-9]'],
      labels: { site: ['eu', 'uk'], team: 'ops' },
      os: 'linux' as const,
    };
    expect(matches(when, sel('LAPTOP-7.corp', { site: 'uk', team: 'ops' }))).toBe(true);
    expect(matches(when, sel('desk-3', { site: 'eu', team: 'ops' }))).toBe(true);
    expect(matches(when, sel('desk-x', { site: 'eu', team: 'ops' }))).toBe(false);
    expect(matches(when, sel('laptop-1', { site: 'us', team: 'ops' }))).toBe(false);
    expect(matches(when, sel('laptop-1', { site: 'eu' }))).toBe(false);
    expect(matches(when, sel('laptop-1', { site: 'eu', team: 'ops' }, 'darwin'))).toBe(false);
    expect(matches({}, sel('anything'))).toBe(true);
    // a label named like an Object.prototype member is not "set"
    expect(matches({ labels: { constructor: 'x' } }, sel('h'))).toBe(false);
  });
});

describe('merging overlays (docs/fleet.md)', () => {
  it('a host no overlay selects gets the base alone', async () => {
    const l = await loadConfigFile(join(repo(), 'awg.yaml'), { selection: sel('db-1') });
    expect(l.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(l.overlays).toEqual([]);
    expect(l.config!.tunnels.work!.type === 'wireguard' && l.config!.tunnels.work!.mtu).toBe(1400);
    expect(l.config!.rules.map((r) => r.name)).toEqual(['browser', 'ssh']);
    expect(l.raw).not.toHaveProperty('overlays');
  });

  it('maps merge, null removes, lists are replaced, rules merge by name (replace in place, before, append)', async () => {
    const dir = repo();
    const l = await loadConfigFile(join(dir, 'awg.yaml'), {
      selection: sel('laptop-2', { site: 'eu' }),
    });
    expect(l.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(l.overlays).toEqual([{ name: 'eu', file: join(dir, 'hosts/eu.yaml') }]);
    expect(l.sources).toEqual([join(dir, 'awg.yaml'), join(dir, 'hosts/eu.yaml')]);
    const work = l.config!.tunnels.work!;
    if (work.type !== 'wireguard') throw new Error('type');
    expect(work.addresses).toEqual(['10.9.0.2/32']); // kept from the base
    expect(work.mtu).toBeUndefined(); // null removed 1400: the default applies
    expect(work.peers.map((p) => p.endpoint)).toEqual(['eu.example.com:51820']); // list replaced
    expect(l.config!.rules.map((r) => `${r.name}:${r.target}`)).toEqual([
      'chat:work',
      'browser:work',
      'ssh:direct',
      'mail:work',
    ]);
    expect(l.config!.killSwitch).toBe('on');
  });

  it('overlays apply in order; an inline overlay removes a rule by name', async () => {
    const l = await loadConfigFile(join(repo(), 'awg.yaml'), {
      selection: sel('ci-1', { role: 'server' }),
    });
    expect(l.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(l.overlays.map((o) => o.name)).toEqual(['build', 'server']);
    expect(l.config!.rules.map((r) => r.name)).toEqual(['browser']);
    expect(l.config!.ipv6).toBe('block');
    // the same host on macOS: the build overlay is linux-only
    const d = await loadConfigFile(join(repo(), 'awg.yaml'), {
      selection: sel('ci-1', {}, 'darwin'),
    });
    expect(d.config!.rules.map((r) => r.name)).toEqual(['browser', 'ssh']);
  });

  it('an error the overlay causes points at the overlay file, line and field', async () => {
    const dir = repo({
      'hosts/eu.yaml': EU.replace('target: direct', 'target: nowhere').replace(
        'killSwitch: on',
        'killSwitch: maybe',
      ),
    });
    const l = await loadConfigFile(join(dir, 'awg.yaml'), {
      selection: sel('laptop-2', { site: 'eu' }),
    });
    const errors = l.issues.filter((i) => i.severity === 'error');
    // the schema error first (semantic checks run on a config that has the right shape)
    expect(errors.map((e) => `${e.file}:${e.line}:${e.path}`)).toEqual([
      `${join(dir, 'hosts/eu.yaml')}:20:killSwitch`,
    ]);
    expect(l.config).toBeUndefined();
    const t = await loadConfigFile(
      join(repo({ 'hosts/eu.yaml': EU.replace('target: direct', 'target: nowhere') }), 'awg.yaml'),
      { selection: sel('laptop-2', { site: 'eu' }) },
    );
    const te = t.issues.filter((i) => i.severity === 'error');
    expect(te.map((e) => `${e.file.replace(/^.*\/hosts/, 'hosts')}:${e.line}:${e.path}`)).toEqual([
      'hosts/eu.yaml:12:rules[2].target',
    ]);
  });

  it('an error left in the base still points at the base', async () => {
    const dir = repo({ 'awg.yaml': BASE.replace('mtu: 1400', 'mtu: 99999') });
    const l = await loadConfigFile(join(dir, 'awg.yaml'), { selection: sel('db-1') });
    const e = l.issues.find((i) => i.severity === 'error')!;
    expect([e.file, e.line, e.path]).toEqual([join(dir, 'awg.yaml'), 7, 'tunnels.work.mtu']);
    // ...and an overlay that removes the bad field fixes it for its hosts
    const eu = await loadConfigFile(join(dir, 'awg.yaml'), {
      selection: sel('laptop-1', { site: 'eu' }),
    });
    expect(eu.config).toBeDefined();
  });

  it('an unknown field in an inline overlay is located in the base file, under overlays', async () => {
    const dir = repo({
      'awg.yaml': BASE.replace('          remove: true', '          remove: true\n      bogus: 1'),
    });
    const l = await loadConfigFile(join(dir, 'awg.yaml'), { selection: sel('ci-1') });
    const e = l.issues.find((i) => i.severity === 'error')!;
    expect([e.file, e.line]).toEqual([join(dir, 'awg.yaml'), 30]);
    expect(e.message).toMatch(/bogus/);
  });

  it('refusals: a missing overlay file, an overlay naming overlays, removing an unknown rule, bad selectors', async () => {
    const dir = repo({ 'hosts/server.yaml': 'overlays: []\n' });
    const a = await loadConfigFile(join(dir, 'awg.yaml'), {
      selection: sel('x', { role: 'server' }),
    });
    expect(a.issues.find((i) => i.severity === 'error')).toMatchObject({
      file: join(dir, 'hosts/server.yaml'),
      line: 1,
      message: expect.stringMatching(/cannot name overlays/),
    });

    const b = await loadConfigFile(join(dir, 'awg.yaml'), {
      selection: sel('laptop-1', { site: 'eu' }),
      readFile: () => {
        throw Object.assign(new Error('gone'), { code: 'ENOENT' });
      },
    });
    expect(b.issues.find((i) => i.severity === 'error')).toMatchObject({
      file: join(dir, 'awg.yaml'),
      line: 23,
      path: 'overlays[0].file',
      message: expect.stringMatching(/overlay "eu" .*file not found/),
    });

    const c = repo({ 'hosts/eu.yaml': 'rules:\n  - name: nope\n    remove: true\n' });
    const cl = await loadConfigFile(join(c, 'awg.yaml'), {
      selection: sel('laptop-1', { site: 'eu' }),
    });
    expect(cl.issues.find((i) => i.severity === 'error')).toMatchObject({
      file: join(c, 'hosts/eu.yaml'),
      line: 2,
      message: expect.stringMatching(/no rule named "nope" to remove/),
    });

    const d = repo({
      'awg.yaml': BASE.replace('os: linux', 'os: windows').replace(
        'labels: { site: [eu, uk] }',
        'labels: { "bad key": x }',
      ),
    });
    const dl = await loadConfigFile(join(d, 'awg.yaml'), { selection: sel('x') });
    expect(
      dl.issues
        .filter((i) => i.severity === 'error')
        .map((i) => i.path)
        .sort(),
    ).toEqual(['overlays[0].when.labels.bad key', 'overlays[1].when.os']);
    expect(dl.issues.every((i) => i.file === join(d, 'awg.yaml') && i.line !== undefined)).toBe(
      true,
    );
  });

  it('a relative secret file in an overlay is relative to the overlay file', async () => {
    const dir = repo({
      'hosts/server.yaml': 'tunnels:\n  work:\n    privateKey: {file: server.key}\n',
    });
    writeFileSync(join(dir, 'hosts/server.key'), KEY2 + '\n', { mode: 0o600 });
    const l = await loadConfigFile(join(dir, 'awg.yaml'), {
      selection: sel('x', { role: 'server' }),
    });
    const s = checkSecrets(l.config!, { configFile: join(dir, 'awg.yaml'), env: {} }, l.positions);
    expect(s.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(s.values.get('tunnels.work.privateKey')).toBe(KEY2);
    // and a missing one is reported at the overlay's line
    const m = repo({
      'hosts/server.yaml': 'tunnels:\n  work:\n    privateKey: {file: missing.key}\n',
    });
    const ml = await loadConfigFile(join(m, 'awg.yaml'), {
      selection: sel('x', { role: 'server' }),
    });
    const ms = checkSecrets(ml.config!, { configFile: join(m, 'awg.yaml'), env: {} }, ml.positions);
    expect(ms.issues[0]).toMatchObject({
      file: join(m, 'hosts/server.yaml'),
      line: 3,
      message: expect.stringMatching(/secret file not found/),
    });
  });
});

describe('values replaced whole', () => {
  it('a secret and a tunnel whose type changes are not merged key by key', async () => {
    const dir = repo({
      'hosts/server.yaml':
        'tunnels:\n  work:\n    privateKey: {env: WORK_KEY}\n  proxy:\n    type: socks5\n    server: 10.1.1.1\n',
    });
    const l = await loadConfigFile(join(dir, 'awg.yaml'), {
      selection: sel('x', { role: 'server' }),
    });
    expect(l.issues.filter((i) => i.severity === 'error')).toEqual([]);
    const w = l.config!.tunnels.work!;
    expect(w.type === 'wireguard' && w.privateKey).toEqual({ env: 'WORK_KEY' });
    const t = repo({
      'hosts/server.yaml': 'tunnels:\n  work:\n    type: socks5\n    server: 10.1.1.1\n',
    });
    const tl = await loadConfigFile(join(t, 'awg.yaml'), {
      selection: sel('x', { role: 'server' }),
    });
    expect(tl.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(tl.config!.tunnels.work).toMatchObject({ type: 'socks5', server: '10.1.1.1' });
    expect(tl.config!.tunnels.work).not.toHaveProperty('peers');
  });
});

describe('labels', () => {
  it('--labels and the labels file; refusals name the source', () => {
    expect(parseLabelList('site=eu, role=web,')).toEqual({ site: 'eu', role: 'web' });
    expect(() => parseLabelList('site')).toThrow(/not name=value/);
    expect(() => parseLabelList('si te=eu')).toThrow(/label name/);
    expect(parseLabelsFile('site: eu\nrack: 12\n', 'l.yaml')).toEqual({ site: 'eu', rack: '12' });
    expect(() => parseLabelsFile('- a\n', 'l.yaml')).toThrow(/l.yaml: labels must be a mapping/);
    expect(() => parseLabelsFile('site: [a, b]\n', 'l.yaml')).toThrow(/single value/);
    expect(() => selectionFrom({ labelsFile: '/nonexistent/labels.yaml' })).toThrow(
      /labels file .* not found/,
    );
    expect(() => selectionFrom({ host: 'a b' })).toThrow(/not a host name/);
    expect(selectionFrom({ host: 'h', labels: 'a=b', os: 'darwin' })).toEqual({
      host: 'h',
      labels: { a: 'b' },
      os: 'darwin',
    });
  });
});

async function awg(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
  const code = await main(['node', 'awg', ...args], io);
  return { code, out, err };
}

describe('awg render / validate with a host selection', () => {
  it('render prints the effective config of the host named, with what was applied', async () => {
    const dir = repo({
      'hosts/server.yaml': 'tunnels:\n  work:\n    privateKey: ' + INLINE + '\n',
    });
    const r = await awg(
      'render',
      '-f',
      join(dir, 'awg.yaml'),
      '--host',
      'laptop-9',
      '--labels',
      'site=uk,role=server',
    );
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^# awg render .*: host laptop-9, os linux, labels site=uk,role=server\n# overlays applied: eu \(.*hosts\/eu\.yaml\), server \(.*hosts\/server\.yaml\)\n# 1 inline secret value\(s\) shown as "\(sensitive\)"\n/,
    );
    expect(r.out).not.toContain(INLINE.slice(0, 20)); // the inline secret is not printed
    expect(r.out).toContain('privateKey: (sensitive)');
    expect(r.out).not.toContain('overlays:');
    const j = await awg(
      'render',
      '-f',
      join(dir, 'awg.yaml'),
      '--host',
      'db-1',
      '--labels',
      '',
      '--json',
    );
    expect(j.code).toBe(0);
    const doc = JSON.parse(j.out) as {
      host: string;
      overlays: unknown[];
      config: { rules: { name: string }[] };
    };
    expect(doc.host).toBe('db-1');
    expect(doc.overlays).toEqual([]);
    expect(doc.config.rules.map((x) => x.name)).toEqual(['browser', 'ssh']);
  });

  it('render and validate fail with the overlay location; bad flags are refused', async () => {
    const dir = repo({ 'hosts/eu.yaml': EU.replace('target: direct', 'target: nowhere') });
    const r = await awg(
      'render',
      '-f',
      join(dir, 'awg.yaml'),
      '--host',
      'laptop-1',
      '--labels',
      'site=eu',
    );
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${join(dir, 'hosts/eu.yaml')}:12:`);
    const v = await awg(
      'validate',
      '-f',
      join(dir, 'awg.yaml'),
      '--host',
      'laptop-1',
      '--labels',
      'site=eu',
    );
    expect(v.code).toBe(1);
    expect(v.err).toContain(`${join(dir, 'hosts/eu.yaml')}:12:`);
    expect(
      (await awg('validate', '-f', join(dir, 'awg.yaml'), '--host', 'db-1', '--labels', 'site=us'))
        .code,
    ).toBe(0);
    const bad = await awg('render', '-f', join(dir, 'awg.yaml'), '--labels', 'nolabel');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/--labels: "nolabel" is not name=value/);
  });
});
