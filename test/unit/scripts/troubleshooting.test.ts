/**
 * docs/troubleshooting.md's install and runtime problems quote what awg prints and the code that
 * decides their exit codes: each quote must still be in its file (the page is generated from
 * scripts/troubleshooting.ts; generated.test.ts keeps it in step with that).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUNTIME_PROBLEMS } from '../../../scripts/troubleshooting.js';

const root = join(import.meta.dirname, '..', '..', '..');

/**
 * Code as a formatter leaves it: runs of white space as one space, none inside brackets, no
 * trailing comma before a closing one (Prettier breaks a long quoted expression over lines).
 */
const flat = (code: string) =>
  code
    .replace(/\s+/g, ' ')
    .replace(/([([{]) /g, '$1')
    .replace(/,? ([)\]}])/g, '$1');

describe('troubleshooting: what the page quotes is in the code', () => {
  for (const p of RUNTIME_PROBLEMS) {
    it(p.title, () => {
      expect(Object.keys(p.quotes).length).toBeGreaterThan(0);
      for (const [file, texts] of Object.entries(p.quotes))
        for (const text of texts)
          expect(
            flat(readFileSync(join(root, file), 'utf8')),
            `${file} no longer says ${text}`,
          ).toContain(flat(text));
    });
  }
});
