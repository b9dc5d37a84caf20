/**
 * What a commit of a followed checkout says of itself: its committer date, its message's
 * trailers, and whether its SSH signature verifies against an allowed-signers file (the same
 * `git verify-commit` `awg sync` runs: git-sync.ts). The daemon's rollout gate reads them for
 * a new revision (daemon/rollout-gate.ts). git runs with arguments, never through a shell.
 */
import { execFile } from 'node:child_process';

export interface GitRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** run git; never rejects (a spawn failure is a non-zero code with its message) */
export function runGit(git: string, args: string[], timeoutMs: number): Promise<GitRun> {
  return new Promise((resolve) => {
    execFile(
      git,
      args,
      {
        timeout: timeoutMs,
        maxBuffer: 4 * 1024 * 1024,
        env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' },
      },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number'
            ? (err as unknown as { code: number }).code
            : 1
          : 0;
        resolve({
          code,
          stdout: String(stdout),
          stderr: String(stderr) || (err && code !== 0 && !stderr ? err.message : ''),
        });
      },
    );
  });
}

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

export interface GitOptions {
  git?: string | undefined;
  timeoutMs?: number | undefined;
}

/**
 * `git verify-commit` of `rev` in the checkout `dir` against `allowedSigners` (SSH, ssh-keygen's
 * ALLOWED SIGNERS format): ok, or why not (the last lines git printed).
 */
export async function verifyCommit(
  dir: string,
  rev: string,
  allowedSigners: string,
  o: GitOptions = {},
): Promise<{ ok: true } | { ok: false; why: string }> {
  const r = await runGit(
    o.git ?? 'git',
    [
      '-c',
      'protocol.ext.allow=never',
      '-C',
      dir,
      '-c',
      `gpg.ssh.allowedSignersFile=${allowedSigners}`,
      'verify-commit',
      '--',
      rev,
    ],
    o.timeoutMs ?? 30_000,
  );
  if (r.code === 0) return { ok: true };
  return {
    ok: false,
    why: r.stderr.trim().split('\n').filter(Boolean).slice(-2).join(' | ') || 'no signature',
  };
}

export interface CommitInfo {
  revision: string;
  /** committer date, ms since the epoch */
  committedAt: number;
  message: string;
  /** the trailers of the message's last paragraph, keys lower-cased, values as written */
  trailers: Record<string, string[]>;
}

/** The raw commit object (`git cat-file commit`) → its committer date and message. Pure. */
export function parseCommit(revision: string, raw: string): CommitInfo | undefined {
  const split = raw.indexOf('\n\n');
  const header = split < 0 ? raw : raw.slice(0, split);
  const message = split < 0 ? '' : raw.slice(split + 2);
  const m = /^committer .* (\d+) [+-]\d{4}$/m.exec(header);
  if (!m) return undefined;
  return { revision, committedAt: Number(m[1]) * 1000, message, trailers: trailersOf(message) };
}

/** `Key: value` lines of the last paragraph, when every line of it is one (git's trailer block) */
export function trailersOf(message: string): Record<string, string[]> {
  const paragraphs = message.trimEnd().split(/\n\s*\n/);
  const last = paragraphs.length > 1 ? paragraphs[paragraphs.length - 1]! : '';
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  const lines = last.split('\n').filter((l) => l.trim() !== '');
  if (!lines.length || !lines.every((l) => /^[A-Za-z0-9-]+:\s/.test(l))) return out;
  for (const l of lines) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).toLowerCase();
    (out[k] ??= []).push(l.slice(i + 1).trim());
  }
  return out;
}

/** the commit `rev` of the checkout `dir`; undefined when git cannot read it */
export async function readCommit(
  dir: string,
  rev: string,
  o: GitOptions = {},
): Promise<CommitInfo | undefined> {
  if (!SHA.test(rev)) return undefined;
  const r = await runGit(
    o.git ?? 'git',
    ['-c', 'protocol.ext.allow=never', '-C', dir, 'cat-file', 'commit', rev],
    o.timeoutMs ?? 30_000,
  );
  return r.code === 0 ? parseCommit(rev, r.stdout) : undefined;
}
