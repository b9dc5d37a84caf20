#!/usr/bin/env node
// A package layout whose bin runs the bundle, as `npm i -g` and the .deb install it: DIR/pkg with
// a copy of bin/ (no dist/cli/ beside it: bin/awg.js then loads dist/bundle/main.js), the bundle
// of this checkout's dist/ (scripts/bundle.mjs: build dist/ first) and links to the package's
// other files and to this checkout's node_modules. Prints the path of its bin/awg.js.
// The benchmarks measure what users run through it, and CI's netns tests run the CLI, its
// engines and its daemon from it (AWGT_AWG_BIN, test/helpers/awg.ts).
// Usage: node scripts/bundle-layout.mjs DIR
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!process.argv[2]) {
  process.stderr.write('usage: node scripts/bundle-layout.mjs DIR\n');
  process.exit(2);
}
const pkg = join(resolve(process.argv[2]), 'pkg');
rmSync(pkg, { recursive: true, force: true });
mkdirSync(pkg, { recursive: true });
copyFileSync(join(root, 'package.json'), join(pkg, 'package.json'));
// a copy: through a link, bin/awg.js would see the checkout's dist/cli/ and run that
cpSync(join(root, 'bin'), join(pkg, 'bin'), { recursive: true });
// package.json's other files (the daemon serves share/ui; hints name docs/), and the dependencies
for (const d of ['node_modules', 'proto', 'schema', 'examples', 'share', 'docs'])
  symlinkSync(join(root, d), join(pkg, d));
execFileSync(process.execPath, [join(root, 'scripts/bundle.mjs'), join(pkg, 'dist', 'bundle')], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
process.stdout.write(`${join(pkg, 'bin', 'awg.js')}\n`);
