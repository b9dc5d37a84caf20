import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedSchemaFiles } from '../../scripts/schemas.js';
import { configReference } from '../../scripts/config-reference.js';
import { cliReference } from '../../scripts/cli-reference.js';

const root = join(import.meta.dirname, '..', '..');
const schemaFiles = await generatedSchemaFiles();

describe('generated files are up to date (run `npm run gen`)', () => {
  for (const [name, text] of Object.entries(schemaFiles)) {
    it(`schema/${name}`, () => {
      expect(readFileSync(join(root, 'schema', name), 'utf8')).toBe(text);
    });
  }
  it('schema/ holds only generated files', () => {
    expect(readdirSync(join(root, 'schema')).sort()).toEqual(Object.keys(schemaFiles).sort());
  });
  it('docs/cli.md', () => {
    expect(readFileSync(join(root, 'docs', 'cli.md'), 'utf8')).toBe(cliReference());
  });
  it('docs/config-reference.md', () => {
    expect(readFileSync(join(root, 'docs', 'config-reference.md'), 'utf8')).toBe(configReference());
  });
});
