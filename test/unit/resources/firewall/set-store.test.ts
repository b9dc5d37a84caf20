import { describe, expect, it } from 'vitest';
import {
  SET_ELEMENTS_FILE,
  dropStoredSets,
  storeSets,
  storedSets,
} from '../../../../src/resources/firewall/set-store.js';
import { MemoryStateStore, stateFile } from '../../../../src/util/state.js';

const d4 = { name: 'd4_r', digest: 'aa11', elements: ['192.0.2.0/24', '198.51.100.7'] };
const d6 = { name: 'd6_r', digest: 'bb22', elements: [] as string[] };

describe('the state directory keeps what the static sets hold (set-store.ts)', () => {
  it('a later process reads back each set with its digest and elements', () => {
    const state = new MemoryStateStore();
    storeSets(state, 'awg', [d4, d6]);
    const text = stateFile.read(state, SET_ELEMENTS_FILE)!;
    expect(text).toBe(
      'awg-set-elements 1 awg\nset d4_r aa11 2\n192.0.2.0/24\n198.51.100.7\nset d6_r bb22 0\n',
    );
    // another process: a store with the same file, nothing cached
    const next = new MemoryStateStore();
    stateFile.write(next, SET_ELEMENTS_FILE, text);
    expect([...storedSets(next, 'awg')]).toEqual([
      ['d4_r', { digest: 'aa11', elements: d4.elements }],
      ['d6_r', { digest: 'bb22', elements: [] }],
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
    storeSets(state, 'awg', [{ ...d4, digest: 'cc33', elements: ['192.0.2.0/23'] }, d6]);
    expect(stateFile.read(state, SET_ELEMENTS_FILE)).toContain('set d4_r cc33 1\n192.0.2.0/23\n');
  });

  it('a cut file keeps the sets before the cut only; the table gone, the file goes', () => {
    const state = new MemoryStateStore();
    stateFile.write(
      state,
      SET_ELEMENTS_FILE,
      'awg-set-elements 1 awg\nset d4_r aa11 2\n192.0.2.0/24\n198.51.100.7\nset d6_r bb22 3\n2001:db8::/32\n',
    );
    expect([...storedSets(state, 'awg').keys()]).toEqual(['d4_r']);
    storeSets(state, 'awg', [d4]);
    dropStoredSets(state);
    expect(stateFile.read(state, SET_ELEMENTS_FILE)).toBeUndefined();
    expect(storedSets(new MemoryStateStore(), 'awg').size).toBe(0);
  });
});
