import { readFileSync } from 'node:fs';
import { packagePath } from './package-root.js';

/** the package's version */
export const VERSION = (
  JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }
).version;
