import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedSchemaFiles } from '../../scripts/schemas.js';
import { configReference } from '../../scripts/config-reference.js';
import { cliReference } from '../../scripts/cli-reference.js';
import { troubleshooting } from '../../scripts/troubleshooting.js';
import {
  bashCompletion,
  fishCompletion,
  manPage,
  zshCompletion,
} from '../../scripts/shell-integration.js';

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
  it('docs/troubleshooting.md', () => {
    expect(readFileSync(join(root, 'docs', 'troubleshooting.md'), 'utf8')).toBe(troubleshooting());
  });
  it('share/: completions for bash, zsh and fish, the man page', () => {
    const version = (
      JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
    ).version;
    expect(readFileSync(join(root, 'share/completions/awg.bash'), 'utf8')).toBe(bashCompletion());
    expect(readFileSync(join(root, 'share/completions/_awg'), 'utf8')).toBe(zshCompletion());
    expect(readFileSync(join(root, 'share/completions/awg.fish'), 'utf8')).toBe(fishCompletion());
    expect(readFileSync(join(root, 'share/man/awg.1'), 'utf8')).toBe(manPage(version));
  });
  it('docs/config-reference.md', () => {
    expect(readFileSync(join(root, 'docs', 'config-reference.md'), 'utf8')).toBe(configReference());
  });
});
