/**
 * The per-host fingerprint key (util/host-key.ts): created on first use, owner-only, crash-
 * and race-safe, never used when someone else could have read or written it; and `awg diff`
 * fingerprints secrets with it (the same on one host, different on another).
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { AwgError } from '../../../src/errors.js';
import {
  FINGERPRINT_KEY_FILE,
  fingerprintKeyIn,
  fingerprintKeyOf,
} from '../../../src/util/host-key.js';
import { MemoryStateStore } from '../../../src/util/state.js';
import { tempDir } from '../../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const tmp = () => tempDir('awg-hostkey-');
const isRoot = process.geteuid?.() === 0;

describe('fingerprintKeyIn', () => {
  it('creates 32 random bytes, mode 0600, in a 0700 directory on first use; reads the same key after', () => {
    const dir = join(tmp(), 'state');
    const k = fingerprintKeyIn(dir);
    expect(k.length).toBe(32);
    const st = lstatSync(join(dir, FINGERPRINT_KEY_FILE));
    expect(st.mode & 0o777).toBe(0o600);
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dir, FINGERPRINT_KEY_FILE))).toEqual(k);
    expect(fingerprintKeyIn(dir)).toEqual(k);
    // no temp file is left behind
    expect(readdirSync(dir)).toEqual([FINGERPRINT_KEY_FILE]);
    expect(fingerprintKeyIn(join(tmp(), 'other'))).not.toEqual(k);
  });

  it('a temp file left by a crash before the link is ignored', () => {
    const dir = tmp();
    writeFileSync(join(dir, `${FINGERPRINT_KEY_FILE}.4242.deadbeef.tmp`), Buffer.alloc(7));
    expect(fingerprintKeyIn(dir).length).toBe(32);
  });

  const unfit: [string, (path: string) => void][] = [
    ['group/other-readable', (p) => (writeFileSync(p, Buffer.alloc(32, 1)), chmodSync(p, 0o644))],
    [
      'the wrong size (torn or foreign)',
      (p) => writeFileSync(p, Buffer.alloc(31, 1), { mode: 0o600 }),
    ],
    [
      'a symbolic link',
      (p) => (
        writeFileSync(`${p}.target`, Buffer.alloc(32, 1), { mode: 0o600 }),
        symlinkSync(`${p}.target`, p)
      ),
    ],
    ['a directory', (p) => mkdirSync(p)],
  ];
  if (isRoot)
    unfit.push([
      'owned by another user',
      (p) => (writeFileSync(p, Buffer.alloc(32, 1), { mode: 0o600 }), chownSync(p, 65534, 65534)),
    ]);
  for (const [what, make] of unfit)
    it(`a key file that is ${what} is moved aside and replaced, with a warning`, () => {
      const dir = tmp();
      const path = join(dir, FINGERPRINT_KEY_FILE);
      make(path);
      const why: string[] = [];
      const k = fingerprintKeyIn(dir, { onReplaced: (w) => why.push(w) });
      expect(k).not.toEqual(Buffer.alloc(32, 1));
      expect(why).toHaveLength(1);
      expect(why[0]).toContain('moved aside');
      const st = lstatSync(path);
      expect(st.isFile() && (st.mode & 0o777) === 0o600).toBe(true);
      expect(readdirSync(dir).some((f) => f.startsWith(`${FINGERPRINT_KEY_FILE}.rejected-`))).toBe(
        true,
      );
    });

  it('a directory it cannot create is a permission/driver error, not a crash', () => {
    const file = join(tmp(), 'plain-file');
    writeFileSync(file, 'x');
    expect(() => fingerprintKeyIn(join(file, 'state'))).toThrow(AwgError);
  });

  it('processes creating it at once all end up with the same key', async () => {
    const dir = join(tmp(), 'race');
    const script = `import { fingerprintKeyIn } from ${JSON.stringify(join(ROOT, 'src/util/host-key.ts'))}; process.stdout.write(fingerprintKeyIn(${JSON.stringify(dir)}).toString('hex'));`;
    const run = () =>
      new Promise<string>((resolve, reject) => {
        const c = spawn(
          process.execPath,
          ['--import', 'tsx', '--input-type=module', '-e', script],
          { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        let err = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(err))));
      });
    const keys = await Promise.all([run(), run(), run(), run()]);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toBe(readFileSync(join(dir, FINGERPRINT_KEY_FILE)).toString('hex'));
    expect(readdirSync(dir)).toEqual([FINGERPRINT_KEY_FILE]);
  }, 60_000);

  it('a memory state store has a key of its own for its lifetime', () => {
    const a = new MemoryStateStore();
    expect(fingerprintKeyOf(a)).toEqual(fingerprintKeyOf(a));
    expect(fingerprintKeyOf(new MemoryStateStore())).not.toEqual(fingerprintKeyOf(a));
  });
});

describe('awg diff fingerprints secrets with the host key', () => {
  const KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
  async function diffFingerprint(stateDir: string): Promise<string> {
    const dir = tmp();
    writeFileSync(join(dir, 'work.key'), `${KEY}\n`, { mode: 0o600 });
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      `version: 1\ntunnels:\n  work:\n    type: wireguard\n    privateKey: {file: work.key}\n    addresses: [10.9.0.2/32]\n    peers:\n      - publicKey: "${KEY}"\n        endpoint: vpn.example.com:51820\n        allowedIPs: [0.0.0.0/0]\ndefault: work\n`,
    );
    const obs = join(dir, 'observed.json');
    writeFileSync(obs, JSON.stringify({ resources: [], foreign: [] }));
    let out = '';
    const io: Io = { out: (s) => (out += s), err: () => {}, colour: false };
    expect(
      await main(
        ['node', 'awg', 'diff', '-f', file, '--observed', obs, '--json', '--state-dir', stateDir],
        io,
      ),
    ).toBe(2);
    const m = /"privateKey":\s*"(hmac:[0-9a-f]{12})"/.exec(out);
    expect(m, out).not.toBeNull();
    return m![1]!;
  }
  it('the same on one host (state directory), another on another; the key file is created there', async () => {
    const a = join(tmp(), 'state');
    const first = await diffFingerprint(a);
    expect(existsSync(join(a, FINGERPRINT_KEY_FILE))).toBe(true);
    expect(await diffFingerprint(a)).toBe(first);
    expect(await diffFingerprint(join(tmp(), 'state'))).not.toBe(first);
  });
});
