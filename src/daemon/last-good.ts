/**
 * The last good revision across a restart (docs/fleet.md, "The rollout model"): the rollout
 * record in the state directory names the last revision this host applied and kept
 * (revision-watch.ts `lastGood`). At start, when the checkout's HEAD is another commit that
 * the host may not take now — rejected here, or held by the rollout gate (its wave is not
 * due, or the rollout is halted) — the daemon runs the last good revision instead: its files
 * are materialised from git into a private directory of the state directory and read there,
 * while the checkout is followed as usual until the gate admits a newer HEAD.
 *
 * The copy holds every file of the commit's tree (paths relative to the config resolve as in
 * the checkout) and, as symlinks to the checkout, the files git does not track there (an
 * ignored age identity beside the config). A path outside the checkout resolves as before.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Prepared } from '../pipeline/prepare.js';
import type { ConfigFollowerOptions } from './config-follower.js';
import type { DaemonEvent } from './core.js';
import type { GoodRevision } from './revision-watch.js';

/** the most entries a materialised tree may have (a config repository is small) */
const MAX_ENTRIES = 5000;
const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
/** the longest one git call may take (a local read) */
const GIT_TIMEOUT_MS = 30_000;

const git = (cwd: string, args: string[], input?: string): Buffer =>
  execFileSync('git', ['-C', cwd, ...args], {
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(input === undefined ? {} : { input }),
    maxBuffer: 256 * 1024 * 1024,
    timeout: GIT_TIMEOUT_MS,
    // as the gate's git (util/git-commit.ts): the system's config (safe.directory) applies
    env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' },
  });

/**
 * Write the tree of `revision` of the checkout holding `file` into `into` (emptied first);
 * returns the path of `file`'s counterpart there. Throws when git cannot read it.
 */
export function materialise(file: string, revision: string, into: string): string {
  if (!SHA.test(revision)) throw new Error(`not a commit id: ${revision}`);
  const real = realpathSync(file);
  const top = git(dirname(real), ['rev-parse', '--show-toplevel']).toString('utf8').trim();
  const rel = relative(top, real);
  if (!rel || rel.startsWith('..') || isAbsolute(rel))
    throw new Error(`${file} is not inside its checkout ${top}`);
  const entries = git(top, ['ls-tree', '-r', '-z', '--full-tree', revision])
    .toString('utf8')
    .split('\0')
    .filter(Boolean);
  if (entries.length > MAX_ENTRIES)
    throw new Error(`revision ${revision} has more than ${MAX_ENTRIES} files`);
  rmSync(into, { recursive: true, force: true });
  mkdirSync(into, { recursive: true, mode: 0o700 });
  const blobs: { mode: string; id: string; path: string; to: string }[] = [];
  for (const e of entries) {
    const m = /^(\d+) (\w+) ([0-9a-f]+)\t(.+)$/s.exec(e);
    if (!m || m[2] !== 'blob') continue; // a submodule: not part of this tree
    const to = resolve(into, m[4]!);
    if (relative(into, to).startsWith('..')) continue;
    blobs.push({ mode: m[1]!, id: m[3]!, path: m[4]!, to });
  }
  // every blob through one `git cat-file --batch`, not a process per file
  const contents = readBlobs(
    git(top, ['cat-file', '--batch'], blobs.map((b) => b.id + '\n').join('')),
    blobs.map((b) => b.id),
  );
  const written = new Set<string>();
  blobs.forEach((b, i) => {
    mkdirSync(dirname(b.to), { recursive: true, mode: 0o700 });
    const blob = contents[i]!;
    if (b.mode === '120000') symlinkSync(blob.toString('utf8'), b.to);
    else writeFileSync(b.to, blob, { mode: b.mode === '100755' ? 0o700 : 0o600 });
    written.add(b.path);
  });
  if (!written.has(rel)) throw new Error(`${rel} is not in revision ${revision}`);
  // files git does not track (an ignored secret beside the config): the checkout's own
  const others = git(top, ['ls-files', '--others', '-z'])
    .toString('utf8')
    .split('\0')
    .filter(Boolean)
    .slice(0, MAX_ENTRIES);
  for (const path of others) {
    const to = resolve(into, path);
    if (written.has(path) || relative(into, to).startsWith('..')) continue;
    try {
      mkdirSync(dirname(to), { recursive: true, mode: 0o700 });
      symlinkSync(join(top, path), to);
    } catch {
      /* a tracked file's directory of the same name: the commit's wins */
    }
  }
  return join(into, rel);
}

/**
 * The objects of `git cat-file --batch` output, in the order asked: each `<id> <type> <size>`,
 * its bytes and a newline. Throws on a missing object or output that does not parse.
 */
export function readBlobs(out: Buffer, ids: readonly string[]): Buffer[] {
  const blobs: Buffer[] = [];
  let at = 0;
  for (const id of ids) {
    const nl = out.indexOf(0x0a, at);
    if (nl < 0) throw new Error(`git cat-file: no header for ${id}`);
    const head = out.subarray(at, nl).toString('utf8');
    const m = /^([0-9a-f]+) blob (\d+)$/.exec(head);
    if (!m || m[1] !== id) throw new Error(`git cat-file: ${head} where blob ${id} was asked`);
    const size = Number(m[2]);
    const end = nl + 1 + size;
    if (end >= out.length || out[end] !== 0x0a) throw new Error(`git cat-file: ${id} is cut short`);
    blobs.push(out.subarray(nl + 1, end));
    at = end + 1;
  }
  return blobs;
}

export interface StartFromOptions {
  /** the last good revision the state directory names */
  lastGood: () => string | undefined;
  /** is HEAD rejected on this host (revision-watch.ts holdBack) */
  held: (revision: string, content: () => string) => boolean;
  /** may HEAD be applied now (the rollout gate; it says why not itself) */
  admit: (c: { file: string; prepared: Prepared; revision: string }) => Promise<boolean>;
  /** where the copy goes (a private directory of the state directory) */
  dir: () => string;
  /** said loudly when the last good revision cannot be run */
  error: (message: string) => void;
  /**
   * HEAD is taken: the last good revision's copy (`file`) to go back to should HEAD fail its
   * check after the apply (revision-watch.ts baseline)
   */
  baseline?: ((g: { revision: string; file: string }) => Promise<void>) | undefined;
}

/**
 * At start: the last good revision's copy to run instead of HEAD, or undefined to take HEAD
 * (HEAD is the last good one, none is known, or HEAD may be applied now). When the copy
 * cannot be made HEAD is taken, with an error: a host must come up with a config.
 */
export async function startFrom(
  o: StartFromOptions,
  c: { file: string; prepared: Prepared; revision: string; content: () => string },
): Promise<{ revision: string; file: string } | undefined> {
  const good = o.lastGood();
  if (!good || good === c.revision) return undefined;
  if (!o.held(c.revision, c.content) && (await o.admit(c))) {
    if (o.baseline) {
      try {
        await o.baseline({ revision: good, file: materialise(c.file, good, o.dir()) });
      } catch (e) {
        o.error(
          `the last good revision ${good.slice(0, 12)} cannot be materialised from git (${firstLine(e)}): revision ${c.revision.slice(0, 12)} at HEAD is applied without a revision to go back to`,
        );
      }
    }
    return undefined;
  }
  try {
    return { revision: good, file: materialise(c.file, good, o.dir()) };
  } catch (e) {
    o.error(
      `the last good revision ${good.slice(0, 12)} cannot be materialised from git (${firstLine(e)}): revision ${c.revision.slice(0, 12)} at HEAD is applied although it is held back`,
    );
    return undefined;
  }
}

const firstLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0];

/**
 * The private directory the copy goes to: `last-good` in the state directory. With the state
 * in memory (tests) it is a temp directory of this follower's own, made when first needed and
 * removed by `close` (the daemon's stop): the copy is a config and may hold keys.
 */
export class LastGoodDir {
  private temp: string | undefined;
  constructor(private readonly stateDir: string) {}

  path(): string {
    if (this.stateDir !== ':memory:') return join(this.stateDir, 'last-good');
    return (this.temp ??= mkdtempSync(join(tmpdir(), 'awg-last-good-')));
  }

  close(): void {
    if (this.temp) rmSync(this.temp, { recursive: true, force: true });
    this.temp = undefined;
  }
}

/** the daemon's hook (config-follower.ts `restore`): its revision watch, gate and state directory */
export function restoreFor(o: {
  /** the revision watch (constructed after the follower: asked when needed) */
  verify: () => {
    readonly lastGood: string | undefined;
    holdBack: StartFromOptions['held'];
    baseline: (g: GoodRevision) => void;
  };
  admit: StartFromOptions['admit'];
  dir: LastGoodDir;
  emit: (e: DaemonEvent) => void;
}): NonNullable<ConfigFollowerOptions['restore']> {
  return (c) =>
    startFrom(
      {
        lastGood: () => o.verify().lastGood,
        held: (r, h) => o.verify().holdBack(r, h),
        admit: o.admit,
        dir: () => o.dir.path(),
        error: (message) =>
          o.emit({ type: 'error', at: new Date().toISOString(), kind: 'verification', message }),
        baseline: async (g) => {
          const r = await c.read(g.file);
          if (!r.ok) throw r.error;
          o.verify().baseline({
            revision: g.revision,
            source: { file: c.file, prepared: r.prepared },
          });
        },
      },
      c,
    );
}
