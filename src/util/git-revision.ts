/**
 * The git commit a file's checkout is at, read from the repository's files (no `git` spawned:
 * the daemon asks on every config change). Handles a `.git` directory, a `.git` file
 * (`gitdir:` of a worktree or submodule), symbolic HEAD to a loose or packed ref, and a
 * detached HEAD. Undefined when the file is not in a checkout or the layout is not readable.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';

const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
const read = (p: string): string | undefined => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return undefined;
  }
};

export function gitDirOf(start: string): string | undefined {
  for (let dir = resolve(start); ; dir = dirname(dir)) {
    const dotgit = join(dir, '.git');
    try {
      const st = statSync(dotgit);
      if (st.isDirectory()) return dotgit;
      if (st.isFile()) {
        const m = /^gitdir:\s*(.+?)\s*$/m.exec(read(dotgit) ?? '');
        if (m) return isAbsolute(m[1]!) ? m[1]! : resolve(dir, m[1]!);
        return undefined;
      }
    } catch {
      /* not here: go up */
    }
    if (dirname(dir) === dir) return undefined;
  }
}

export function gitRevisionOf(file: string): string | undefined {
  const gitDir = gitDirOf(dirname(file));
  if (!gitDir) return undefined;
  const head = read(join(gitDir, 'HEAD'))?.trim();
  if (!head) return undefined;
  if (SHA.test(head)) return head;
  const ref = /^ref:\s*(refs\/[^\s]+)$/.exec(head)?.[1];
  if (!ref || ref.includes('..')) return undefined;
  // a worktree keeps HEAD in its own dir and refs in the common dir
  const common = read(join(gitDir, 'commondir'))?.trim();
  const refDir = common ? resolve(gitDir, common) : gitDir;
  for (const d of [gitDir, refDir]) {
    const loose = read(join(d, ref))?.trim();
    if (loose && SHA.test(loose)) return loose;
  }
  for (const line of (read(join(refDir, 'packed-refs')) ?? '').split('\n')) {
    const [sha, name] = line.split(' ');
    if (name === ref && sha && SHA.test(sha)) return sha;
  }
  return undefined;
}

/**
 * The files whose change moves the checkout of `file` (HEAD, the ref it names, packed-refs):
 * the daemon watches them, so a pull that touches none of the config's own files still
 * updates the revision it reports. Empty when `file` is not in a checkout.
 */
export function gitHeadFiles(file: string): string[] {
  const gitDir = gitDirOf(dirname(file));
  if (!gitDir) return [];
  const out = [join(gitDir, 'HEAD')];
  const ref = /^ref:\s*(refs\/[^\s]+)$/.exec(read(join(gitDir, 'HEAD'))?.trim() ?? '')?.[1];
  const common = read(join(gitDir, 'commondir'))?.trim();
  const refDir = common ? resolve(gitDir, common) : gitDir;
  if (ref && !ref.includes('..')) out.push(join(refDir, ref));
  out.push(join(refDir, 'packed-refs'));
  return out;
}
