/**
 * Temporary directories that are removed when the test file that made them ends (through
 * test/helpers/cleanup.ts, which the setup file runs), so `tempDir` may be called anywhere,
 * also inside a test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterThisFile } from './cleanup.js';

/** mkdtemp under the system temporary directory, removed after the test file */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  afterThisFile(() => rmSync(d, { recursive: true, force: true }));
  return d;
}
