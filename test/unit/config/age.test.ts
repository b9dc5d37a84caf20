import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { prepare } from '../../../src/pipeline/prepare.js';
import { tempDir } from '../../helpers/tmp.js';

const KEY = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const PEER = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';

async function awg(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => (out += s), err: (s) => (err += s), colour: false };
  const code = await main(['node', 'awg', ...args], io);
  return { code, out, err };
}

const ageCli = spawnSync('age', ['--version']).status === 0;
// scripts/setup.sh installs age; under CI its absence is a failure, not a skip
if (!ageCli && process.env.CI)
  throw new Error(
    'the age CLI is missing (apt-get install age; scripts/setup.sh does): CI is set, so this is a failure',
  );

async function host(dir: string, name: string): Promise<{ identity: string; recipient: string }> {
  const identity = join(dir, `${name}.txt`);
  const r = await awg(['secret', 'keygen', '-o', identity]);
  expect(r.code).toBe(0);
  return { identity, recipient: r.out.trim() };
}

describe('awg secret', () => {
  it('keygen writes a root-only identity and prints its recipient; recipient reads it back', async () => {
    const dir = tempDir('awg-age-');
    const a = await host(dir, 'a');
    expect(a.recipient).toMatch(/^age1[0-9a-z]{58}$/);
    expect(statSync(a.identity).mode & 0o777).toBe(0o600);
    expect(readFileSync(a.identity, 'utf8')).toMatch(
      /^# created: .*\n# public key: age1.*\nAGE-SECRET-KEY-1[0-9A-Z]+\n$/,
    );
    expect((await awg(['secret', 'recipient', '-i', a.identity])).out.trim()).toBe(a.recipient);
    expect((await awg(['secret', 'keygen', '-o', a.identity])).err).toMatch(/exists; add --force/);
  });

  it('encrypt to several recipients: each decrypts, a third is refused clearly; armoured and binary', async () => {
    const dir = tempDir('awg-age-');
    const [a, b, c] = [await host(dir, 'a'), await host(dir, 'b'), await host(dir, 'c')];
    writeFileSync(join(dir, 'plain'), KEY + '\n');
    for (const armor of [false, true]) {
      const out = join(dir, armor ? 'k.age.txt' : 'k.age');
      expect(
        (
          await awg([
            'secret',
            'encrypt',
            '-r',
            a.recipient,
            '-r',
            b.recipient,
            ...(armor ? ['-a'] : []),
            '-o',
            out,
            join(dir, 'plain'),
          ])
        ).code,
      ).toBe(0);
      if (armor) expect(readFileSync(out, 'utf8')).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----/);
      for (const h of [a, b])
        expect((await awg(['secret', 'decrypt', '-i', h.identity, out])).out).toBe(KEY + '\n');
      const refused = await awg(['secret', 'decrypt', '-i', c.identity, out]);
      expect(refused.code).toBe(4);
      expect(refused.err).toMatch(/is not encrypted to the identity in .*c\.txt/);
    }
    expect((await awg(['secret', 'encrypt', '-r', 'age1nope', join(dir, 'plain')])).err).toMatch(
      /not an age X25519 recipient/,
    );
    expect(
      (await awg(['secret', 'encrypt', join(dir, 'plain'), '-o', join(dir, 'x')])).err,
    ).toMatch(/no recipient/);
  });

  it('an identity group or others can read is refused', async () => {
    const dir = tempDir('awg-age-');
    const a = await host(dir, 'a');
    chmodSync(a.identity, 0o640);
    const r = await awg(['secret', 'recipient', '-i', a.identity]);
    expect(r.code).toBe(4);
    expect(r.err).toMatch(/accessible to group or others \(mode 640\); chmod 600 it/);
  });

  describe.skipIf(!ageCli)('interoperates with the age CLI', () => {
    it('age decrypts what awg encrypts, awg decrypts what age encrypts (binary and armoured)', async () => {
      const dir = tempDir('awg-age-');
      const a = await host(dir, 'a');
      writeFileSync(join(dir, 'plain'), 'hunter2\n');
      await awg([
        'secret',
        'encrypt',
        '-r',
        a.recipient,
        '-o',
        join(dir, 'ours.age'),
        join(dir, 'plain'),
      ]);
      const d = spawnSync('age', ['-d', '-i', a.identity, join(dir, 'ours.age')], {
        encoding: 'utf8',
      });
      expect([d.status, d.stdout]).toEqual([0, 'hunter2\n']);
      for (const armor of [[], ['-a']]) {
        const e = spawnSync(
          'age',
          ['-r', a.recipient, ...armor, '-o', join(dir, 'theirs.age'), join(dir, 'plain')],
          { encoding: 'utf8' },
        );
        expect(e.status).toBe(0);
        expect(
          (await awg(['secret', 'decrypt', '-i', a.identity, join(dir, 'theirs.age')])).out,
        ).toBe('hunter2\n');
      }
      // and an identity made by age-keygen serves awg
      const k = spawnSync('age-keygen', ['-o', join(dir, 'kg.txt')], { encoding: 'utf8' });
      expect(k.status).toBe(0);
      const rec = /age1[0-9a-z]{58}/.exec(k.stderr + readFileSync(join(dir, 'kg.txt'), 'utf8'))![0];
      expect((await awg(['secret', 'recipient', '-i', join(dir, 'kg.txt')])).out.trim()).toBe(rec);
    });
  });
});

describe('{age:} secrets in a config', () => {
  async function project(): Promise<{
    dir: string;
    file: string;
    a: { identity: string; recipient: string };
    b: { identity: string; recipient: string };
  }> {
    const dir = tempDir('awg-age-');
    const a = await host(dir, 'host-a');
    const b = await host(dir, 'host-b');
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'plain'), KEY + '\n');
    expect(
      (
        await awg([
          'secret',
          'encrypt',
          '-r',
          a.recipient,
          '-a',
          '-o',
          join(dir, 'secrets/work.age'),
          join(dir, 'plain'),
        ])
      ).code,
    ).toBe(0);
    chmodSync(join(dir, 'secrets/work.age'), 0o644); // encrypted: fine to be readable, as in a git checkout
    const file = join(dir, 'awg.yaml');
    writeFileSync(
      file,
      `version: 1
tunnels:
  work:
    type: wireguard
    privateKey: {age: secrets/work.age}
    addresses: [10.9.0.2/32]
    peers:
      - publicKey: ${PEER}
        endpoint: 192.0.2.1:51820
        allowedIPs: [10.0.0.0/8]
`,
    );
    return { dir, file, a, b };
  }

  it('decrypts on the host it is encrypted to; another host gets a located, clear error; --skip-secrets needs no key', async () => {
    const { file, a, b } = await project();
    const ok = await prepare(file, { env: { AWG_AGE_IDENTITY: a.identity } });
    if (!ok.ok) throw new Error(JSON.stringify(ok.issues));
    expect(ok.prepared.secrets.get('tunnels.work.privateKey')).toBe(KEY);
    expect(ok.prepared.issues.filter((i) => /readable by group/.test(i.message))).toEqual([]);

    const no = await prepare(file, { env: { AWG_AGE_IDENTITY: b.identity } });
    expect(no.ok).toBe(false);
    const e = !no.ok && no.issues.find((i) => i.severity === 'error');
    expect(e).toMatchObject({ file, line: 5, path: 'tunnels.work.privateKey' });
    expect(e && e.message).toMatch(
      /secrets\/work\.age is not encrypted to this host's age identity \(.*host-b\.txt\)/,
    );
    expect(e && e.message).not.toContain(KEY.slice(0, 12));

    const none = await prepare(file, { env: { AWG_AGE_IDENTITY: '/nonexistent/id.txt' } });
    expect(!none.ok && none.issues[0]!.message).toMatch(
      /cannot read this host's age identity: age identity \/nonexistent\/id\.txt: not found/,
    );

    expect((await prepare(file, { skipSecrets: true, env: {} })).ok).toBe(true);
    const v = await awg(['validate', '-f', file, '--skip-secrets']);
    expect(v.code).toBe(0);
  });
});
