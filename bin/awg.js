#!/usr/bin/env node
// The CLI's entry. In a checkout it runs tsc's output (dist/cli/main.js); an installed package
// ships only the bundle (dist/bundle/, scripts/bundle.mjs) and, where Node has one (22.1+),
// keeps V8's compile cache in a directory only this user (or root) can write: compile-cache.js.
import { existsSync } from 'node:fs';
import module from 'node:module';
import { URL } from 'node:url';

// package.json's engines floor, checked before any of awg loads (npm only warns, EBADENGINE): on an
// older Node parts of awg fail with errors that do not name the runtime (Node 18: `awg secret
// keygen` reports "crypto.getRandomValues must be defined")
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  process.stderr.write(
    `awg: error [unsupported]: awg needs Node.js 20.19 or later; ${process.execPath} is ${process.version}\n` +
      'hint: install Node.js 22 or 24 (docs/troubleshooting.md), or the Debian package, which carries its own\n',
  );
  process.exit(3);
}

const bundled = !existsSync(new URL('../dist/cli/main.js', import.meta.url));
if (bundled && module.enableCompileCache) {
  const { compileCacheDir } = await import('./compile-cache.js');
  const dir = compileCacheDir();
  if (dir) module.enableCompileCache(dir);
}
const { installCrashHandlers, main } = await import(
  bundled ? '../dist/bundle/main.js' : '../dist/cli/main.js'
);

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
