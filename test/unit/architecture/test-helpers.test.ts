/**
 * Test helper modules register no vitest hook at their top level: the unit and netns projects
 * share modules between the files of a worker (isolate: false, vitest.config.ts), so such a
 * hook would run for the first file that imported the helper only, and the later files would
 * leave their processes and directories behind. Helpers register clean-ups through
 * test/helpers/cleanup.ts, which the setup file (test/setup.ts) runs for every file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** a vitest hook called at a module's top level (not indented: not inside a function) */
export function topLevelHooks(text: string): string[] {
  return [...text.matchAll(/^(?:afterEach|afterAll|beforeEach|beforeAll)\(/gm)].map((m) => m[0]);
}

describe('test helper modules', () => {
  it('the pattern finds a top-level hook and leaves one inside a function alone', () => {
    expect(topLevelHooks(`import x from 'y';\nafterEach(() => {});\n`)).toEqual(['afterEach(']);
    expect(topLevelHooks(`export function f() {\n  afterAll(() => {});\n}\n`)).toEqual([]);
  });

  it('no module under test/ but a test file and the setup file calls a hook at its top level', () => {
    const helpers = readdirSync(join(ROOT, 'test'), { recursive: true, encoding: 'utf8' }).filter(
      (f) => /\.[cm]?ts$/.test(f) && !/\.(test|fuzz)\.ts$/.test(f) && f !== 'setup.ts',
    );
    expect(helpers.length).toBeGreaterThan(20);
    const offending = helpers.filter(
      (f) => topLevelHooks(readFileSync(join(ROOT, 'test', f), 'utf8')).length,
    );
    expect(offending).toEqual([]);
  });
});
