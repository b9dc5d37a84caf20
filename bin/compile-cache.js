// Where the installed CLI keeps V8's compile cache (bin/awg.js enables it on Node 22.1+). Code
// read from a cache others can write would run as whoever runs awg, often root: the directory
// is used only if it and every directory above it is this user's or root's, is no symlink and
// can be changed by no one else (a root-owned sticky directory such as /tmp above it is fine:
// its entries stay their owners').
import { lstatSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/** `dir` and everything above it is `uid`'s or root's and only its owner can change it. */
export function safeDir(dir, uid) {
  const leaf = resolve(dir);
  for (let d = leaf; ; d = dirname(d)) {
    const st = lstatSync(d);
    if (!st.isDirectory() || (st.uid !== uid && st.uid !== 0)) return false;
    const sharedSticky = (st.mode & 0o1000) !== 0 && st.uid === 0 && d !== leaf;
    if ((st.mode & 0o022) !== 0 && !sharedSticky) return false;
    if (d === leaf && (st.mode & 0o077) !== 0) return false;
    if (d === dirname(d)) return true;
  }
}

/** The cache directory (created 0700), or undefined when it is off or not safe. */
export function compileCacheDir(env = process.env, uid = process.geteuid?.() ?? -1) {
  if (env.AWG_COMPILE_CACHE === '0') return undefined;
  const dir =
    env.AWG_COMPILE_CACHE_DIR ||
    (uid === 0
      ? '/var/cache/awg/compile'
      : join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'awg', 'compile'));
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return safeDir(dir, uid) ? dir : undefined;
  } catch {
    return undefined;
  }
}
