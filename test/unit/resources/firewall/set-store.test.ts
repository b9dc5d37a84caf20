import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { elementsDigest } from '../../../../src/resources/firewall/set-elements.js';
import {
  SET_ELEMENTS_FILE,
  dropStoredSets,
  storeSets,
  storedSets,
} from '../../../../src/resources/firewall/set-store.js';
import { MemoryStateStore, stateFile } from '../../../../src/util/state.js';

const set = (name: string, elements: string[]) => ({
  name,
  digest: elementsDigest(elements),
  elements,
});
const d4 = set('d4_r', ['192.0.2.0/24', '198.51.100.7']);
const d6 = set('d6_r', []);
const D4 = d4.digest;
const D6 = d6.digest;

describe('the state directory keeps what the static sets hold (set-store.ts)', () => {
  it('a later process reads back each set with its digest and elements', () => {
    const state = new MemoryStateStore();
    storeSets(state, 'awg', [d4, d6]);
    const text = stateFile.read(state, SET_ELEMENTS_FILE)!;
    expect(text).toBe(
      `awg-set-elements 1 awg\nset d4_r ${D4} 2\n192.0.2.0/24\n198.51.100.7\nset d6_r ${D6} 0\n`,
    );
    // another process: a store with the same file, nothing cached
    const next = new MemoryStateStore();
    stateFile.write(next, SET_ELEMENTS_FILE, text);
    expect([...storedSets(next, 'awg')]).toEqual([
      ['d4_r', { digest: D4, elements: d4.elements }],
      ['d6_r', { digest: D6, elements: [] }],
    ]);
    // another table's file says nothing about this one
    expect(storedSets(next, 'other').size).toBe(0);
  });

  it('the same sets with the same digests again: not written again (a rule edit keeps the copy)', () => {
    const state = new MemoryStateStore();
    storeSets(state, 'awg', [d4, d6]);
    stateFile.write(state, SET_ELEMENTS_FILE, 'marker\n');
    storeSets(state, 'awg', [d4, d6]);
    expect(stateFile.read(state, SET_ELEMENTS_FILE)).toBe('marker\n');
    const d4b = set('d4_r', ['192.0.2.0/23']);
    storeSets(state, 'awg', [d4b, d6]);
    expect(stateFile.read(state, SET_ELEMENTS_FILE)).toContain(
      `set d4_r ${d4b.digest} 1\n192.0.2.0/23\n`,
    );
  });

  it('a cut file keeps the sets before the cut only; the table gone, the file goes', () => {
    const state = new MemoryStateStore();
    stateFile.write(
      state,
      SET_ELEMENTS_FILE,
      `awg-set-elements 1 awg\nset d4_r ${D4} 2\n192.0.2.0/24\n198.51.100.7\nset d6_r ${D6} 3\n2001:db8::/32\n`,
    );
    expect([...storedSets(state, 'awg').keys()]).toEqual(['d4_r']);
    // cut inside the last element: the line is not whole, the set not known
    const cut = new MemoryStateStore();
    stateFile.write(
      cut,
      SET_ELEMENTS_FILE,
      `awg-set-elements 1 awg\nset d4_r ${D4} 2\n192.0.2.0/24\n198.51.100.7`,
    );
    expect(storedSets(cut, 'awg').size).toBe(0);
    storeSets(state, 'awg', [d4]);
    dropStoredSets(state);
    expect(stateFile.read(state, SET_ELEMENTS_FILE)).toBeUndefined();
    expect(storedSets(new MemoryStateStore(), 'awg').size).toBe(0);
  });

  it('a set whose elements are not what its digest names is not known; the others are', () => {
    // written without fsync: a crash may leave damaged bytes, a hand edit may keep the count
    for (const bad of ['192.0.2.0/24\n198.51.100.8', '192.0.2.0/24\n\0\0\0\0\0\0\0\0\0\0\0\0']) {
      const state = new MemoryStateStore();
      stateFile.write(
        state,
        SET_ELEMENTS_FILE,
        `awg-set-elements 1 awg\nset d4_r ${D4} 2\n${bad}\nset d6_r ${D6} 0\n`,
      );
      expect([...storedSets(state, 'awg').keys()]).toEqual(['d6_r']);
    }
  });

  it('elementsDigest is the SHA-256 of each element followed by a newline', () => {
    const byElement = (els: readonly string[]) => {
      const h = createHash('sha256');
      for (const e of els) h.update(e).update('\n');
      return h.digest('hex').slice(0, 32);
    };
    expect(elementsDigest([])).toBe(byElement([]));
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme-composite' })), (els) => {
        expect(elementsDigest(els)).toBe(byElement(els));
      }),
      { numRuns: 300 },
    );
  });
});
