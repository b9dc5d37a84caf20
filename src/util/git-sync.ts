/**
 * `awg sync`: move a config checkout to the newest commit of its branch, the way a GitOps
 * puller does, with git doing the work: `git fetch` the branch, optionally `git verify-commit`
 * the fetched tip against an allowed-signers file (SSH signatures), then `git merge --ff-only`.
 * Nothing is validated here: the daemon watching the checkout reads the new files, applies
 * them when valid and keeps the last good config running (with an error event and metric)
 * when not. A tip that is unsigned, signed by someone not allowed, or not a fast-forward of
 * what is checked out (a rewritten or rolled-back branch) leaves the checkout where it is.
 *
 * git runs with arguments, never through a shell; the branch and remote are checked to be
 * names git accepts and cannot be read as options; the ext:: transport is refused.
 */
import { AwgError } from '../errors.js';
import { runGit as run, verifyCommit } from './git-commit.js';

export interface SyncOptions {
  /** the checkout (a git work tree) */
  path: string;
  branch: string;
  remote?: string;
  /** SSH allowed-signers file (ssh-keygen(1) ALLOWED SIGNERS): the fetched tip must verify */
  allowedSigners?: string;
  /** git binary (tests) */
  git?: string;
  timeoutMs?: number;
}

export interface SyncResult {
  outcome: 'up-to-date' | 'updated';
  from: string;
  to: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/;

export function checkRefName(what: string, name: string): void {
  if (
    !NAME.test(name) ||
    name.includes('..') ||
    name.includes('//') ||
    name.endsWith('/') ||
    name.endsWith('.lock') ||
    name.endsWith('.')
  ) {
    throw new AwgError(
      'invalid-config',
      `${what} "${name.slice(0, 80)}" is not a plain git name (letters, digits, ".", "_", "/", "-"; no "..")`,
    );
  }
}

export async function gitSync(o: SyncOptions): Promise<SyncResult> {
  const git = o.git ?? 'git';
  const remote = o.remote ?? 'origin';
  const timeoutMs = o.timeoutMs ?? 120_000;
  checkRefName('--branch', o.branch);
  checkRefName('--remote', remote);
  // the checkout belongs to root (awg service install clones it); -c options apply to this run only
  const base = ['-c', 'protocol.ext.allow=never', '-C', o.path];
  const g = async (args: string[], what: string): Promise<string> => {
    const r = await run(git, [...base, ...args], timeoutMs);
    if (r.code !== 0)
      throw new AwgError(
        'driver',
        `${what} failed (git exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
      );
    return r.stdout.trim();
  };
  if (
    (await g(['rev-parse', '--is-inside-work-tree'], `${o.path}: not a git checkout;`)) !== 'true'
  )
    throw new AwgError('invalid-config', `${o.path} is not a git work tree`);
  const from = await g(['rev-parse', '--verify', 'HEAD^{commit}'], 'reading HEAD');
  // the repository is the source of truth: edits made on the host are not silently kept
  // (they would run while the host reports the repository's revision)
  const dirty = await g(['status', '--porcelain', '--untracked-files=no'], 'git status');
  if (dirty)
    throw new AwgError(
      'conflict',
      `${o.path} has local changes (${dirty
        .split('\n')
        .slice(0, 3)
        .map((l) => l.trim())
        .join(
          ', ',
        )}${dirty.split('\n').length > 3 ? ', …' : ''}); the checkout stays — undo them (git -C ${o.path} checkout -- .) or commit them to the repository`,
    );
  await g(
    [
      'fetch',
      '--quiet',
      '--no-tags',
      '--',
      remote,
      `+refs/heads/${o.branch}:refs/remotes/${remote}/${o.branch}`,
    ],
    `git fetch ${remote} ${o.branch}`,
  );
  const to = await g(
    ['rev-parse', '--verify', `refs/remotes/${remote}/${o.branch}^{commit}`],
    `reading ${remote}/${o.branch}`,
  );
  if (to === from) return { outcome: 'up-to-date', from, to };
  if (o.allowedSigners) {
    const v = await verifyCommit(o.path, to, o.allowedSigners, { git, timeoutMs });
    if (!v.ok)
      throw new AwgError(
        'permission',
        `commit ${to.slice(0, 12)} of ${remote}/${o.branch} is not signed by a key in ${o.allowedSigners} (${v.why}); the checkout stays at ${from.slice(0, 12)}`,
      );
  }
  const ff = await run(git, [...base, 'merge-base', '--is-ancestor', from, to], timeoutMs);
  if (ff.code !== 0)
    throw new AwgError(
      'conflict',
      `${remote}/${o.branch} (${to.slice(0, 12)}) is not a fast-forward of the checkout (${from.slice(0, 12)}): the branch was rewritten or rolled back; the checkout stays`,
    );
  await g(['merge', '--ff-only', '--quiet', to], 'git merge --ff-only');
  return { outcome: 'updated', from, to };
}
