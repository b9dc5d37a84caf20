#!/usr/bin/env node
// The CLI's entry. In a checkout it runs tsc's output (dist/cli/main.js); an installed package
// ships only the bundle (dist/bundle/, scripts/bundle.mjs) and, where Node has one (22.1+),
// keeps V8's compile cache in a directory only this user can write (compileCacheDir below):
// code read from a cache others can write would run as whoever runs awg, often root.
// AWG_COMPILE_CACHE=0 turns the cache off; AWG_COMPILE_CACHE_DIR moves it (same checks).
import { existsSync, lstatSync, mkdirSync } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { URL } from 'node:url';

/** Every directory from `dir` up to / is ours or root's and only its owner can change it. */
function safeDir(dir, uid) {
  for (let d = dir; ; d = dirname(d)) {
    const st = lstatSync(d);
    if (!st.isDirectory() || (st.uid !== uid && st.uid !== 0)) return false;
    // group/other-writable only as a sticky directory of root's (/tmp): entries stay their owner's
    if ((st.mode & 0o022) !== 0 && !((st.mode & 0o1000) !== 0 && st.uid === 0 && d !== dir)) return false;
    if (d === dirname(d)) return true;
  }
}

function compileCacheDir() {
  const uid = process.geteuid?.() ?? -1;
  const dir =
    process.env.AWG_COMPILE_CACHE_DIR ||
    (uid === 0 ? '/var/cache/awg/compile' : join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'awg', 'compile'));
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return safeDir(dir, uid) && (lstatSync(dir).mode & 0o077) === 0 ? dir : undefined;
  } catch {
    return undefined;
  }
}

const bundled = !existsSync(new URL('../dist/cli/main.js', import.meta.url));
if (bundled && module.enableCompileCache && process.env.AWG_COMPILE_CACHE !== '0') {
  const dir = compileCacheDir();
  if (dir) module.enableCompileCache(dir);
}
const { installCrashHandlers, main } = await import(bundled ? '../dist/bundle/main.js' : '../dist/cli/main.js');

// an uncaught exception or unhandled rejection is logged and ends the process with 70 (cli/crash.ts)
installCrashHandlers();

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`awg: internal error: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
