import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { configReference } from './config-reference.js';

const root = join(new URL('.', import.meta.url).pathname, '..');
mkdirSync(join(root, 'docs'), { recursive: true });
writeFileSync(join(root, 'docs', 'config-reference.md'), configReference());
console.log('wrote docs/config-reference.md');
