/**
 * Step 8 — hostile files cannot stall root. A config, secret or INI path that names a FIFO,
 * /dev/zero or a huge file gives an error naming the file instead of a hang (a FIFO with no
 * writer blocks open() and read() forever) or gigabytes of memory (/dev/zero never ends).
 *
 * The reads that could hang or grow run in a child `awg` process with a generous outer
 * timeout and a memory guard, so a regression fails the assertion (killed child: no such
 * message) instead of blocking the test worker; the time itself is never asserted.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile, loadConfigText } from '../../../src/config/load.js';
import { REPO_ROOT } from '../../helpers/awg.js';

const PRIV = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const K1 = 'r9v/6l1H5duSPqnRR3gV3HtWENhtm84YqdUcuFngeTw=';

let dir: string;
let fifo: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'awg-hostile-'));
  fifo = join(dir, 'fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * `awg args` from the sources in a child. Guarded both ways, so a regression fails the
 * assertion instead of hanging the worker or eating the machine: killed after 60 s, and
 * killed as soon as it holds more than 512 MiB (reading /dev/zero to the end grows without
 * bound).
 */
function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO_ROOT, 'test/helpers/awg-cli.ts'), ...args],
      { cwd: REPO_ROOT, env: { ...process.env, NO_COLOR: '1' } },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const kill = (why: string) => {
      err += `\n[test: killed: ${why}]`;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill('still running after 60 s'), 60_000);
    const watch = setInterval(() => {
      let status = '';
      try {
        status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      } catch {
        return; // gone
      }
      const m = /VmRSS:\s+(\d+) kB/.exec(status);
      if (m && Number(m[1]) > 512 * 1024) kill(`RSS ${m[1]} kB`);
    }, 100);
    child.on('close', (code) => {
      clearTimeout(timer);
      clearInterval(watch);
      resolve({ code, out, err });
    });
  });
}

const withSecret = (file: string) => `version: 1
tunnels:
  work:
    type: wireguard
    privateKey: { file: ${file} }
    addresses: [10.0.0.2/32]
    peers:
      - publicKey: ${K1}
        allowedIPs: [10.9.0.0/16]
`;

describe('config and secret files: regular files only, size-capped', () => {
  it('a FIFO secret gives an error naming the file, not a hang', { timeout: 90_000 }, async () => {
    const cfg = join(dir, 'fifo-secret.yaml');
    writeFileSync(cfg, withSecret(fifo));
    const r = await cli('validate', '-f', cfg);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain(
      `${cfg}:5:17: tunnels.work.privateKey: cannot read secret (file ${fifo}): ${fifo} is a FIFO, not a regular file`,
    );
  });

  it(
    '/dev/zero as the config gives an error naming the file, not 2 GiB of memory',
    { timeout: 90_000 },
    async () => {
      const r = await cli('validate', '-f', '/dev/zero');
      expect(r.code, r.err).toBe(1);
      expect(r.err).toContain(
        '/dev/zero: not read: the file is a character device, not a regular file',
      );
    },
  );

  it(
    'a FIFO as the config and as the INI of `awg import` are refused',
    { timeout: 150_000 },
    async () => {
      const v = await cli('validate', '-f', fifo);
      expect(v.err).toContain(`${fifo}: not read: the file is a FIFO, not a regular file`);
      const i = await cli('import', fifo);
      expect(i.code).toBe(1);
      expect(i.err).toContain(`${fifo}: cannot read: ${fifo} is a FIFO, not a regular file`);
    },
  );

  it('/dev/zero as a secret is refused', { timeout: 90_000 }, async () => {
    const cfg = join(dir, 'zero-secret.yaml');
    writeFileSync(cfg, withSecret('/dev/zero'));
    const r = await cli('validate', '-f', cfg);
    expect(r.code, r.err).toBe(1);
    expect(r.err).toContain(
      `${cfg}:5:17: tunnels.work.privateKey: cannot read secret (file /dev/zero): /dev/zero is a character device, not a regular file`,
    );
  });

  it('a directory as a secret is refused as not a regular file', async () => {
    const cfg = join(dir, 'dir-secret.yaml');
    const { checkSecrets } = await import('../../../src/config/secrets.js');
    const l = loadConfigText(withSecret(dir), cfg);
    const s = checkSecrets(l.config!, { configFile: cfg, env: {} }, l.positions);
    expect(s.issues.map((i) => i.message)).toEqual([
      `cannot read secret (file ${dir}): ${dir} is a directory, not a regular file`,
    ]);
  });

  it('a file over the cap is refused by size (sparse: no disk used), under it is read', async () => {
    const big = join(dir, 'big.yaml');
    writeFileSync(big, 'version: 1\n');
    truncateSync(big, 4 * 1024 * 1024 + 1);
    const r = await loadConfigFile(big);
    expect(r.issues.map((i) => `${i.file}: ${i.message}`)).toEqual([
      `${big}: not read: the file is larger than the 4 MiB limit`,
    ]);
    const key = join(dir, 'big.key');
    writeFileSync(key, PRIV);
    chmodSync(key, 0o600);
    truncateSync(key, 64 * 1024 + 1);
    const { readSecret } = await import('../../../src/config/secrets.js');
    expect(() => readSecret({ file: key }, { configFile: join(dir, 'x.yaml'), env: {} })).toThrow(
      `${key} is larger than the 64 KiB limit`,
    );
  });

  it('a symlink to a regular config is still followed (configs live behind links)', async () => {
    const real = join(dir, 'real.yaml');
    writeFileSync(real, 'version: 1\n');
    const link = join(dir, 'link.yaml');
    symlinkSync(real, link);
    const r = await loadConfigFile(link);
    expect(r.issues).toEqual([]);
    expect(r.config).toBeDefined();
  });
});

describe('source positions with many keys', () => {
  it('20,000 unknown keys are each located on their own line (indexed once: bench/positions.bench.ts)', () => {
    const n = 20_000;
    const lines = ['version: 1'];
    for (let i = 0; i < n; i++) lines.push(`k${i}: ${i}`);
    const r = loadConfigText(lines.join('\n') + '\n', 'many.yaml');
    expect(r.issues).toHaveLength(n);
    r.issues.forEach((iss, i) => {
      expect(iss.line).toBe(i + 2);
      expect(iss.path).toBe(`k${i}`);
    });
  });

  it('duplicate keys are still refused, in block and flow mappings, at the second key', () => {
    const r = loadConfigText(
      'version: 1\nrouting: {tableBase: 1, tableBase: 2}\nkillSwitch: on\nkillSwitch: off\n',
      'dup.yaml',
    );
    expect(r.issues.map((i) => `${i.line}:${i.col} ${i.message}`)).toEqual([
      '2:25 YAML: Map keys must be unique',
      '4:1 YAML: Map keys must be unique',
    ]);
    expect(r.config).toBeUndefined();
  });

  it('keys that differ in type are not duplicates (as yaml itself decides)', () => {
    const r = loadConfigText('version: 1\nx:\n  1: a\n  "1": b\n', 'types.yaml');
    expect(r.issues.map((i) => i.message)).not.toContain('YAML: Map keys must be unique');
  });
});
