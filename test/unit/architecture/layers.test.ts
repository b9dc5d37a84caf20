/**
 * The layers of docs/architecture.md hold: the lint rule (eslint/layers.js) rejects a module
 * that imports across them, and no two sibling folders of src/ import each other in a circle.
 */
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';
import { cycles, folderEdges, importGraph } from '../../helpers/imports.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
// the scratch modules linted below are not on disk, so the type-checked rules (which read the
// TypeScript program) are off for them: this test is about the layer rule alone
const eslint = new ESLint({
  cwd: ROOT,
  overrideConfig: {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'off',
      '@typescript-eslint/no-misused-promises': 'off',
      '@typescript-eslint/await-thenable': 'off',
    },
  },
});

async function layerErrors(file: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: `${ROOT}${file}` });
  return r!.messages.filter((m) => m.ruleId === 'awg/layers').map((m) => m.message);
}

describe('layer rule (eslint/layers.js)', () => {
  it.each([
    [
      'src/model/scratch.ts',
      "import type { Driver } from '../resources/driver.js';\nexport type X = Driver<'route'>;\n",
      /layer 'model' may not import 'resources\/driver.ts'/,
    ],
    [
      'src/model/scratch.ts',
      "import { openTun } from '../native/tun.js';\nexport const x = openTun;\n",
      /'model' may not import 'native/,
    ],
    [
      'src/dataplane/device/scratch.ts',
      "import type { Config } from '../../config/schema.js';\nexport type X = Config;\n",
      /'dataplane' may not import 'config\/schema.ts'/,
    ],
    [
      'src/resources/route/scratch.ts',
      "import type { DaemonEvent } from '../../daemon/core.js';\nexport type X = DaemonEvent;\n",
      /'resources' may not import 'daemon/,
    ],
    [
      'src/daemon/scratch.ts',
      "export const x = () => import('../cli/main.js');\n",
      /'daemon' may not import 'cli\/main.ts'/,
    ],
    [
      'src/reconciler/scratch.ts',
      "export { createLinuxRouteDriver } from '../resources/route/linux.js';\n",
      /'reconciler' may not import 'resources\/route\/linux.ts'/,
    ],
    [
      'src/util/scratch.ts',
      "import { plan } from '../reconciler/plan.js';\nexport const x = plan;\n",
      /'util' may not import/,
    ],
  ])('%s: a deliberate violation fails lint', async (file, code, message) => {
    const errors = await layerErrors(file, code);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(message);
  });

  it('what the layers allow passes', async () => {
    expect(
      await layerErrors(
        'src/reconciler/scratch.ts',
        "import type { DriverSet } from '../resources/driver.js';\nexport type X = DriverSet;\n",
      ),
    ).toEqual([]);
    expect(
      await layerErrors(
        'src/cli/scratch.ts',
        "import { Daemon } from '../daemon/daemon.js';\nexport const x = Daemon;\n",
      ),
    ).toEqual([]);
    expect(
      await layerErrors(
        'src/daemon/scratch.ts',
        "import { prepare } from '../pipeline/prepare.js';\nexport const x = prepare;\n",
      ),
    ).toEqual([]);
    expect(
      await layerErrors(
        'src/procs/scratch.ts',
        "import { parseCgroup2Mount } from '../resources/cgroup/parse.js';\nexport const x = parseCgroup2Mount;\n",
      ),
    ).toEqual([]);
  });

  it('production code cannot import a test double; test doubles and pure modules keep their own rules', async () => {
    const [r] = await eslint.lintText(
      "import { FakeDriver } from '../driver.fake.js';\nexport const x = FakeDriver;\n",
      { filePath: `${ROOT}src/resources/route/scratch.ts` },
    );
    expect(r!.messages.map((m) => m.message)).toEqual([
      expect.stringMatching(/test doubles are not built into dist/),
    ]);
    const [m] = await eslint.lintText(
      "import { readFileSync } from 'node:fs';\nimport { MemoryTun } from '../dataplane/tun/memory.fake.js';\nexport const x = [readFileSync, MemoryTun];\n",
      { filePath: `${ROOT}src/model/scratch.ts` },
    );
    expect(m!.messages.map((x) => x.message)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/pure modules do no I\/O/),
        expect.stringMatching(/test doubles/),
      ]),
    );
    const [f] = await eslint.lintText(
      "import { FakeDriver } from '../driver.fake.js';\nexport const x = FakeDriver;\n",
      { filePath: `${ROOT}src/resources/route/driver.fake.ts` },
    );
    expect(f!.messages).toEqual([]);
  });

  it('a new top-level folder must be given a layer', async () => {
    expect(
      await layerErrors(
        'src/newthing/scratch.ts',
        "import { AwgError } from '../errors.js';\nexport const x = AwgError;\n",
      ),
    ).toEqual([expect.stringMatching(/not a layer/)]);
  });
});

describe('import graph of src/', () => {
  it('no import circle between folders, nor between modules', () => {
    const g = importGraph(`${ROOT}src`);
    expect(cycles(folderEdges(g))).toEqual([]);
    expect(cycles(g)).toEqual([]);
  });

  it('nothing below the CLI imports it; the daemon is imported only by the CLI', () => {
    const g = importGraph(`${ROOT}src`);
    const bad = [...g].flatMap(([f, ts]) =>
      [...ts]
        .filter(
          (t) =>
            (t.startsWith('cli/') && !f.startsWith('cli/')) ||
            (t.startsWith('daemon/') && !f.startsWith('daemon/') && !f.startsWith('cli/')),
        )
        .map((t) => `${f} → ${t}`),
    );
    expect(bad).toEqual([]);
  });
});
