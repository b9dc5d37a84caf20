import { readFileSync } from 'node:fs';

/** the package's version (package.json sits two levels above both src/cli and dist/cli) */
export const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
