import { describe, expect, it } from 'vitest';
import { canonical, specEqual } from '../../src/util/canonical.js';

const samples: unknown[] = [
  null,
  1,
  'a',
  [],
  [1, 2],
  [2, 1],
  {},
  { a: 1 },
  { a: 1, b: undefined },
  { b: 2, a: 1 },
  { a: 1, b: 2 },
  { a: [1, { c: 3 }] },
  { a: [1, { c: 3, d: undefined }] },
  { a: [1, { c: 4 }] },
  { a: '1' },
  [{ a: 1 }],
];

describe('specEqual agrees with canonical()', () => {
  for (const x of samples)
    for (const y of samples)
      it(`${JSON.stringify(x)} vs ${JSON.stringify(y)}`, () => {
        expect(specEqual(x, y)).toBe(canonical(x) === canonical(y));
      });
});
