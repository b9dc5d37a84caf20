import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configReference } from './config-reference.js';
import { cliReference } from './cli-reference.js';
import { troubleshooting } from './troubleshooting.js';
import { bashCompletion, fishCompletion, manPage, zshCompletion } from './shell-integration.js';

const root = join(new URL('.', import.meta.url).pathname, '..');
mkdirSync(join(root, 'docs'), { recursive: true });
writeFileSync(join(root, 'docs', 'config-reference.md'), configReference());
writeFileSync(join(root, 'docs', 'cli.md'), cliReference());
writeFileSync(join(root, 'docs', 'troubleshooting.md'), troubleshooting());
const version = (
  JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
).version;
for (const [dir, name, text] of [
  ['share/completions', 'awg.bash', bashCompletion()],
  ['share/completions', '_awg', zshCompletion()],
  ['share/completions', 'awg.fish', fishCompletion()],
  ['share/man', 'awg.1', manPage(version)],
] as const) {
  mkdirSync(join(root, dir), { recursive: true });
  writeFileSync(join(root, dir, name), text);
}
console.log(
  'wrote docs/config-reference.md, docs/cli.md, docs/troubleshooting.md, share/completions/*, share/man/awg.1',
);
