import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gitSync } from '../../../src/util/git-sync.js';
import { tempDir } from '../../helpers/tmp.js';

const onPath = (t: string) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0;
const missing = ['git', 'ssh-keygen'].filter((t) => !onPath(t));
if (missing.length && process.env.CI)
  throw new Error(
    `${missing.join(', ')} missing (scripts/setup.sh installs them): CI is set, so this is a failure`,
  );

const ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'a',
  GIT_AUTHOR_EMAIL: 'a@example.org',
  GIT_COMMITTER_NAME: 'a',
  GIT_COMMITTER_EMAIL: 'a@example.org',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', args, { cwd, env: ENV, encoding: 'utf8' }).trim();

/** a bare "origin", an author's clone and a host's checkout of it */
function world(): { origin: string; author: string; host: string; dir: string } {
  const dir = tempDir('awg-sync-');
  const origin = join(dir, 'origin.git');
  git(dir, 'init', '-q', '--bare', '-b', 'main', origin);
  const author = join(dir, 'author');
  git(dir, 'clone', '-q', origin, author);
  writeFileSync(join(author, 'awg.yaml'), 'version: 1\n');
  git(author, 'add', '.');
  git(author, 'commit', '-q', '-m', 'first');
  git(author, 'push', '-q', 'origin', 'HEAD:main');
  const host = join(dir, 'host');
  git(dir, 'clone', '-q', '-b', 'main', origin, host);
  return { origin, author, host, dir };
}

function commit(author: string, text: string, sign?: string): string {
  writeFileSync(join(author, 'awg.yaml'), text);
  git(author, 'add', '.');
  git(
    author,
    ...(sign ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${sign}`] : []),
    'commit',
    '-q',
    ...(sign ? ['-S'] : []),
    '-m',
    text.slice(0, 20),
  );
  git(author, 'push', '-q', '-f', 'origin', 'HEAD:main');
  return git(author, 'rev-parse', 'HEAD');
}

describe.skipIf(missing.length > 0)('awg sync (git fetch, verify-commit, merge --ff-only)', () => {
  it('fast-forwards the checkout; a second run is up to date', async () => {
    const w = world();
    const before = git(w.host, 'rev-parse', 'HEAD');
    const to = commit(w.author, 'version: 1\n# two\n');
    expect(await gitSync({ path: w.host, branch: 'main' })).toEqual({
      outcome: 'updated',
      from: before,
      to,
    });
    expect(readFileSync(join(w.host, 'awg.yaml'), 'utf8')).toBe('version: 1\n# two\n');
    expect(await gitSync({ path: w.host, branch: 'main' })).toEqual({
      outcome: 'up-to-date',
      from: to,
      to,
    });
  });

  it('a rewritten (non fast-forward) branch leaves the checkout where it is', async () => {
    const w = world();
    commit(w.author, 'version: 1\n# two\n');
    await gitSync({ path: w.host, branch: 'main' });
    const at = git(w.host, 'rev-parse', 'HEAD');
    git(w.author, 'reset', '-q', '--hard', 'HEAD~1');
    commit(w.author, 'version: 1\n# rewritten\n');
    await expect(gitSync({ path: w.host, branch: 'main' })).rejects.toThrow(
      /not a fast-forward of the checkout/,
    );
    expect(git(w.host, 'rev-parse', 'HEAD')).toBe(at);
  });

  it('with allowed signers: a signed tip moves the checkout, an unsigned or foreign-signed one does not', async () => {
    const w = world();
    const key = join(w.dir, 'signer');
    const other = join(w.dir, 'other');
    for (const k of [key, other])
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'x', '-f', k]);
    const allowed = join(w.dir, 'allowed_signers');
    writeFileSync(allowed, `a@example.org ${readFileSync(key + '.pub', 'utf8').trim()}\n`);
    const signed = commit(w.author, 'version: 1\n# signed\n', key);
    expect((await gitSync({ path: w.host, branch: 'main', allowedSigners: allowed })).to).toBe(
      signed,
    );

    commit(w.author, 'version: 1\n# unsigned\n');
    await expect(
      gitSync({ path: w.host, branch: 'main', allowedSigners: allowed }),
    ).rejects.toThrow(/is not signed by a key in .*allowed_signers.*the checkout stays at/);
    expect(git(w.host, 'rev-parse', 'HEAD')).toBe(signed);

    commit(w.author, 'version: 1\n# signed by another key\n', other);
    await expect(
      gitSync({ path: w.host, branch: 'main', allowedSigners: allowed }),
    ).rejects.toThrow(/is not signed by a key/);
    expect(git(w.host, 'rev-parse', 'HEAD')).toBe(signed);
  });

  it('local edits of tracked files in the checkout stop the pull, named', async () => {
    const w = world();
    commit(w.author, 'version: 1\n# two\n');
    writeFileSync(join(w.host, 'awg.yaml'), 'version: 1\n# edited on the host\n');
    const at = git(w.host, 'rev-parse', 'HEAD');
    await expect(gitSync({ path: w.host, branch: 'main' })).rejects.toThrow(
      /has local changes \(M awg\.yaml\); the checkout stays/,
    );
    expect(git(w.host, 'rev-parse', 'HEAD')).toBe(at);
  });

  it('refuses names that git could read as options or paths, and a directory that is no checkout', async () => {
    const w = world();
    await expect(gitSync({ path: w.host, branch: '--upload-pack=touch /tmp/x' })).rejects.toThrow(
      /is not a plain git name/,
    );
    await expect(
      gitSync({ path: w.host, branch: 'main', remote: '-oProxyCommand=x' }),
    ).rejects.toThrow(/is not a plain git name/);
    await expect(gitSync({ path: w.host, branch: '../../etc' })).rejects.toThrow(
      /is not a plain git name/,
    );
    await expect(gitSync({ path: w.dir, branch: 'main' })).rejects.toThrow(
      /not a git checkout|not a git work tree/,
    );
  });
});
