import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AWG_BIN, PACKAGE_ROOT, packagePath } from '../../../src/util/package-root.js';

describe('package root', () => {
  it("is the package's directory: its package.json, bin/awg.js and proto/", () => {
    expect(resolve(PACKAGE_ROOT)).toBe(resolve(import.meta.dirname, '../../..'));
    expect(
      (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { name: string }).name,
    ).toBe('awg');
    expect(AWG_BIN).toBe(join(PACKAGE_ROOT, 'bin', 'awg.js'));
    expect(existsSync(AWG_BIN)).toBe(true);
    expect(existsSync(packagePath('proto', 'awg.proto'))).toBe(true);
  });
});
