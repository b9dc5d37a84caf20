import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { configReference } from './config-reference.js';
import { cliReference } from './cli-reference.js';

const root = join(new URL('.', import.meta.url).pathname, '..');
mkdirSync(join(root, 'docs'), { recursive: true });
writeFileSync(join(root, 'docs', 'config-reference.md'), configReference());
writeFileSync(join(root, 'docs', 'cli.md'), cliReference());
console.log('wrote docs/config-reference.md, docs/cli.md');
