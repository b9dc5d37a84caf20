/**
 * Temporary directories that are removed when the test file that made them ends. The
 * afterAll hook is registered when a test file imports this module (vitest runs each file
 * with its own module registry), so `tempDir` may be called anywhere, also inside a test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** mkdtemp under the system temporary directory, removed after the test file */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
