/** scripts/prune-bundled.ts: the .deb's node_modules lose what the bundle holds and what has no code, nothing else. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  installedPackages,
  packageOfPath,
  packageOfSpecifier,
  removable,
  type BundleMeta,
} from '../../../scripts/prune-bundled.js';

const dir = mkdtempSync(join(tmpdir(), 'awgt-prune-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** a package directory: package.json with `deps`, and the given files */
function pkg(nm: string, name: string, deps: Record<string, string>, files: string[]): void {
  const d = join(nm, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(
    join(d, 'package.json'),
    JSON.stringify({ name, version: '1.0.0', dependencies: deps }),
  );
  for (const f of files) {
    mkdirSync(join(d, f, '..'), { recursive: true });
    writeFileSync(join(d, f), '');
  }
}

describe('prune-bundled', () => {
  it('names packages from metafile paths and import specifiers', () => {
    expect(packageOfPath('../main/node_modules/zod/v4/core/core.js')).toBe('zod');
    expect(packageOfPath('node_modules/@noble/hashes/esm/sha2.js')).toBe('@noble/hashes');
    expect(packageOfPath('node_modules/a/node_modules/b/index.js')).toBe('b');
    expect(packageOfPath('dist/cli/main.js')).toBeUndefined();
    expect(packageOfSpecifier('@grpc/grpc-js/build/src/x.js')).toBe('@grpc/grpc-js');
    expect(packageOfSpecifier('koffi')).toBe('koffi');
    expect(packageOfSpecifier('node:fs')).toBeUndefined();
    expect(packageOfSpecifier('./chunk-X.js')).toBeUndefined();
  });

  it('removes bundled packages nobody else needs and code-less ones; keeps the rest', () => {
    const nm = join(dir, 'app', 'node_modules');
    pkg(nm, 'zod', {}, ['index.js']); // bundled, needed by no one: goes
    pkg(join(nm, 'zod', 'node_modules'), 'inner', { commander: '14' }, ['i.js']); // inside zod: goes with it, so what it needs is not kept for it
    pkg(nm, 'yaml', {}, ['dist/index.js']); // bundled, but `age` (staying) needs it: stays
    pkg(nm, 'picomatch', {}, ['index.js']); // bundled, yet the bundle imports it at run time: stays
    pkg(nm, 'commander', {}, ['index.js']); // bundled, needed only by zod's nested package (going): goes
    pkg(nm, '@types/node', { 'undici-types': '6' }, [
      'index.d.ts',
      'README.md',
      'LICENSE',
      'ts5.6/package.json',
    ]); // no code: goes though protobufjs lists it
    pkg(nm, 'undici-types', {}, ['index.d.ts']);
    pkg(nm, 'protobufjs', { '@types/node': '*' }, ['index.js']);
    pkg(nm, 'age', { yaml: '2' }, ['index.js']);
    pkg(nm, 'koffi', {}, ['index.js', 'build/koffi.node']); // not bundled: stays
    pkg(nm, 'schema-only', {}, ['schema.json']); // a .json is loadable: counts as code, not bundled: stays
    const meta: BundleMeta = {
      inputs: Object.fromEntries(
        [
          'node_modules/zod/index.js',
          'node_modules/yaml/dist/index.js',
          'node_modules/picomatch/index.js',
          'node_modules/commander/index.js',
          'dist/cli/main.js',
        ].map((i) => [i, {}]),
      ),
      outputs: {
        'dist/bundle/main.js': {
          imports: [
            { path: 'picomatch', external: true },
            { path: 'koffi', external: true },
            { path: './chunk-A.js' },
          ],
        },
      },
    };
    const installed = installedPackages(nm);
    expect(installed.map((p) => p.name).sort()).toEqual([
      '@types/node',
      'age',
      'commander',
      'inner',
      'koffi',
      'picomatch',
      'protobufjs',
      'schema-only',
      'undici-types',
      'yaml',
      'zod',
    ]);
    expect(
      installed
        .filter((p) => !p.hasCode)
        .map((p) => p.name)
        .sort(),
    ).toEqual(['@types/node', 'undici-types']);
    expect(
      removable(meta, installed, nm)
        .map((p) => p.name)
        .sort(),
    ).toEqual(['@types/node', 'commander', 'undici-types', 'zod']);
  });
});
