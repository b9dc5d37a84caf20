/**
 * Where the package's own files are (package.json, bin/awg.js, proto/): the one module that
 * knows its depth. It sits two levels below the root in src/util/ and dist/util/, as would
 * every file of a bundle in dist/<dir>/; the rest asks here instead of counting `../`.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A path inside the package. */
export const packagePath = (...parts: string[]): string => join(PACKAGE_ROOT, ...parts);

/** The CLI entry the daemon, engines, placer and service units run. */
export const AWG_BIN = packagePath('bin', 'awg.js');
