import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gitHeadFiles, gitRevisionOf } from '../../../src/util/git-revision.js';
import { tempDir } from '../../helpers/tmp.js';

const ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'a',
  GIT_AUTHOR_EMAIL: 'a@x',
  GIT_COMMITTER_NAME: 'a',
  GIT_COMMITTER_EMAIL: 'a@x',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
};
const git = (cwd: string, ...a: string[]) =>
  execFileSync('git', a, { cwd, env: ENV, encoding: 'utf8' }).trim();

describe('the revision of a checkout, read from its files', () => {
  it('loose ref, packed ref, detached HEAD, a worktree, a file in a subdirectory; none outside a checkout', () => {
    const dir = tempDir('awg-rev-');
    git(dir, 'init', '-q', '-b', 'main');
    mkdirSync(join(dir, 'hosts'));
    writeFileSync(join(dir, 'hosts/a.yaml'), 'x: 1\n');
    git(dir, 'add', '.');
    git(dir, 'commit', '-q', '-m', 'one');
    const one = git(dir, 'rev-parse', 'HEAD');
    expect(gitRevisionOf(join(dir, 'hosts/a.yaml'))).toBe(one);
    expect(gitHeadFiles(join(dir, 'awg.yaml'))).toEqual([
      join(dir, '.git/HEAD'),
      join(dir, '.git/refs/heads/main'),
      join(dir, '.git/packed-refs'),
    ]);
    git(dir, 'pack-refs', '--all', '--prune');
    expect(gitRevisionOf(join(dir, 'awg.yaml'))).toBe(one);
    writeFileSync(join(dir, 'b'), '');
    git(dir, 'add', '.');
    git(dir, 'commit', '-q', '-m', 'two');
    const two = git(dir, 'rev-parse', 'HEAD');
    expect(gitRevisionOf(join(dir, 'awg.yaml'))).toBe(two);
    git(dir, 'checkout', '-q', '--detach', one);
    expect(gitRevisionOf(join(dir, 'awg.yaml'))).toBe(one);
    git(dir, 'checkout', '-q', 'main');
    const wt = join(tempDir('awg-rev-wt-'), 'wt');
    git(dir, 'worktree', 'add', '-q', '-b', 'side', wt, one);
    expect(gitRevisionOf(join(wt, 'awg.yaml'))).toBe(one);
    expect(gitRevisionOf(join(tempDir('awg-rev-none-'), 'awg.yaml'))).toBeUndefined();
  });
});
