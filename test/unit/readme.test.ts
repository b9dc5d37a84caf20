import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { formatIssue } from '../../src/errors.js';

// The seed system's README examples did not even parse: every ```yaml block in our docs must
// be a valid config (secrets are not resolved here).
const root = join(import.meta.dirname, '..', '..');
const files = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join('docs', f)),
];

describe('YAML examples in the documentation validate', () => {
  for (const f of files) {
    const text = readFileSync(join(root, f), 'utf8');
    const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .filter((b) => /^version:/m.test(b));
    blocks.forEach((b, i) =>
      it(`${f} block ${i + 1}`, () => {
        const r = loadConfigText(b, `${f}#${i + 1}`);
        expect(r.issues.filter((x) => x.severity === 'error').map(formatIssue)).toEqual([]);
      }),
    );
  }
  it('the README has at least one config example', () => {
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toMatch(/```yaml\n[\s\S]*?version: 1/);
  });
});
