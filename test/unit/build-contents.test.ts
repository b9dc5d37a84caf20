/**
 * Test doubles live next to what they imitate and are named `*.fake.ts` (src/resources/<kind>/
 * driver.fake.ts, the generic driver.fake.ts and driver-set.fake.ts, the data plane's in-memory
 * TUN and bind, its simulated clock and seeded random source) but must not
 * reach dist/. tsconfig.build.json excludes them; `exclude` does not stop a file that an
 * included module imports, so this test builds the program tsc would emit and checks both
 * directions: no test double in it, and every other source file in it.
 */
import { readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

/** the naming convention of test doubles under src/ */
export function isTestDouble(path: string): boolean {
  return path.split(sep).join('/').endsWith('.fake.ts');
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(root, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

function buildProgramFiles(): string[] {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(root, 'tsconfig.build.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error('tsconfig.build.json did not parse');
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options });
  return program
    .getSourceFiles()
    .filter((f) => !f.isDeclarationFile)
    .map((f) => relative(root, f.fileName).split(sep).join('/'))
    .sort();
}

describe('the build (tsconfig.build.json → dist/)', () => {
  const all = sourceFiles('src');
  const doubles = all.filter(isTestDouble);
  const built = buildProgramFiles();

  it('the convention finds the test doubles (resource fakes, in-memory TUN and bind)', () => {
    expect(doubles).toContain('src/resources/driver.fake.ts');
    expect(doubles).toContain('src/resources/driver-set.fake.ts');
    expect(doubles).toContain('src/resources/link/driver.fake.ts');
    expect(doubles).toContain('src/dataplane/tun/memory.fake.ts');
    expect(doubles).toContain('src/dataplane/conn/memory.fake.ts');
    expect(doubles).toContain('src/dataplane/clock.fake.ts');
  });

  it('contains no test double, not even through an import', () => {
    expect(built.filter(isTestDouble)).toEqual([]);
  });

  it('contains every other source file', () => {
    expect(built).toEqual(all.filter((f) => !isTestDouble(f)));
  });
});
