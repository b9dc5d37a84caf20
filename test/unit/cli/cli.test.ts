import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { PlanDocument } from '../../../src/model/plan-document.js';
import { tempDir } from '../../helpers/tmp.js';

const KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

async function awg(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
  const code = await main(['node', 'awg', ...args], io);
  return { code, out, err };
}

function tmp(): string {
  return tempDir('awg-cli-');
}

const VALID = `version: 1
tunnels:
  work:
    type: wireguard
    privateKey: {file: work.key}
    addresses: [10.9.0.2/32]
    peers:
      - publicKey: ${KEY}
        endpoint: vpn.example.com:51820
        allowedIPs: [0.0.0.0/0]
default: work
`;

function project(yaml = VALID): { dir: string; file: string } {
  const dir = tmp();
  writeFileSync(join(dir, 'work.key'), KEY + '\n', { mode: 0o600 });
  const file = join(dir, 'awg.yaml');
  writeFileSync(file, yaml);
  return { dir, file };
}

const EMPTY_OBS = () => {
  const f = join(tmp(), 'observed.json');
  writeFileSync(f, JSON.stringify({ resources: [], foreign: [] }));
  return f;
};

describe('awg validate', () => {
  it('exits 0 on a valid config', async () => {
    const { file } = project();
    const r = await awg('validate', '-f', file);
    expect(r.code).toBe(0);
    expect(r.out).toContain('valid');
  });
  it('exits 1 and prints every located error at once', async () => {
    const { file } = project(
      VALID.replace('10.9.0.2/32', '10.9.0.300/32').replace('default: work', 'default: nope'),
    );
    const r = await awg('validate', '-f', file);
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `${file}:6:17: tunnels.work.addresses[0]: must be an IPv4/IPv6 address or CIDR`,
    );
    const r2 = await awg(
      'validate',
      '-f',
      project(VALID.replace('default: work', 'default: nope')).file,
    );
    expect(r2.err).toMatch(/:11:10: default: unknown tunnel "nope"/);
  });
  it('a missing secret file is a located error; --skip-secrets skips it', async () => {
    const { file } = project(VALID.replace('work.key', 'missing.key'));
    const r = await awg('validate', '-f', file);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /awg\.yaml:5:17: tunnels\.work\.privateKey: secret file not found \(file missing\.key\)/,
    );
    expect((await awg('validate', '-f', file, '--skip-secrets')).code).toBe(0);
  });
  it('never prints secret values', async () => {
    const { file } = project(VALID.replace('{file: work.key}', `"${KEY.replace('D', 'E')}"`));
    const r = await awg('validate', '-f', file, '--json');
    expect(r.out + r.err).not.toContain(KEY.replace('D', 'E'));
  });
  it('a missing file is an error, not a crash', async () => {
    const r = await awg('validate', '-f', '/nonexistent/awg.yaml');
    expect(r.code).toBe(1);
    expect(r.err).toContain('/nonexistent/awg.yaml: file not found');
  });
});

describe('awg diff', () => {
  it('exits 2 when there are changes and emits a schema-valid plan document', async () => {
    const { file, dir } = project();
    const r = await awg(
      'diff',
      '-f',
      file,
      '--observed',
      EMPTY_OBS(),
      '--json',
      '--state-dir',
      join(dir, 'state'),
    );
    expect(r.code).toBe(2);
    const doc = PlanDocument.parse(JSON.parse(r.out));
    expect(doc.summary.create).toBeGreaterThan(0);
    expect(doc.changes.every((c) => c.cause === 'initial')).toBe(true);
    expect(r.out).not.toContain(KEY.slice(0, 20) + 'x');
    // the private key never appears, only its fingerprint
    const engine = doc.changes.find((c) => c.id === 'engine/work')!;
    expect(JSON.stringify(engine)).toMatch(/hmac:[0-9a-f]{12}/);
  });
  it('exits 0 when the observation matches', async () => {
    const { file, dir } = project();
    const plan = await awg(
      'diff',
      '-f',
      file,
      '--observed',
      EMPTY_OBS(),
      '--json',
      '--state-dir',
      join(dir, 'state'),
    );
    const doc = PlanDocument.parse(JSON.parse(plan.out));
    const obs = join(dir, 'obs.json');
    writeFileSync(
      obs,
      JSON.stringify({
        resources: doc.changes.map((c) => ({ kind: c.kind, id: c.id, spec: c.after, deps: [] })),
        foreign: [],
      }),
    );
    const r = await awg('diff', '-f', file, '--observed', obs, '--state-dir', join(dir, 'state'));
    expect(r.code).toBe(0);
    expect(r.out).toContain('No changes');
  });
  it('exits 1 on an invalid config', async () => {
    const { file } = project('version: 2\n');
    expect((await awg('diff', '-f', file, '--observed', EMPTY_OBS())).code).toBe(1);
  });
  it('renders a human plan without colour when not a TTY', async () => {
    const { file, dir } = project();
    const r = await awg(
      'diff',
      '-f',
      file,
      '--observed',
      EMPTY_OBS(),
      '--state-dir',
      join(dir, 'state'),
    );
    expect(r.out).toContain('+ link/awg-work');
    expect(r.out).toMatch(/Plan: \d+ to create, 0 to update, 0 to replace, 0 to delete\./);
    expect(r.out).not.toContain('\x1b[');
  });
});

describe('awg import', () => {
  it('converts a wg-quick file to YAML that validates', async () => {
    const dir = tmp();
    const conf = join(dir, 'wg0.conf');
    writeFileSync(
      conf,
      `[Interface]\nPrivateKey = ${KEY}\nAddress = 10.7.0.2/32\nDNS = 10.7.0.1\n\n[Peer]\nPublicKey = ${KEY}\nEndpoint = 203.0.113.5:51820\nAllowedIPs = 0.0.0.0/0\n`,
    );
    const out = join(dir, 'wg0.yaml');
    const r = await awg('import', conf, '-o', out, '--key-file');
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, 'wg0.key'))).toBe(true);
    expect(readFileSync(out, 'utf8')).not.toContain(KEY.slice(0, 30) + '\n');
    expect((await awg('validate', '-f', out)).code).toBe(0);
  });
  it('rejects unknown keys with a location', async () => {
    const dir = tmp();
    const conf = join(dir, 'wg1.conf');
    writeFileSync(conf, `[Interface]\nPrivateKey = ${KEY}\nAddress = 10.7.0.2/32\nBogus = 1\n`);
    const r = await awg('import', conf);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/wg1\.conf:4:1: .*Bogus/);
  });
});

describe('awg --help', () => {
  it('lists the commands', async () => {
    const r = await awg('--help');
    expect(r.code).toBe(0);
    for (const c of ['validate', 'diff', 'apply', 'down', 'status', 'import'])
      expect(r.out).toContain(c);
  });
});
