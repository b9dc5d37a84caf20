/**
 * model/set-delta.ts: the walk-and-check delta must be the string-set definition it replaced
 * (every element's canonical form in a set of the other content's), element for element and in
 * order, on lists as awg writes them (merged IPv4 and IPv6 intervals, edited) and on anything
 * else (unsorted, duplicated, both spellings of a host, not addresses at all).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  canonicalElement,
  deltaCounts,
  elementDelta,
  type ElementDelta,
} from '../../../src/model/set-delta.js';
import { setChanges, staticSetComment } from '../../../src/model/firewall-sets.js';
import { formatInterval4, formatInterval6, mergeIntervals } from '../../../src/config/lists.js';

/** the definition (the implementation before model/set-delta.ts) */
function reference(from: readonly string[], to: readonly string[]): ElementDelta {
  const have = new Set(from.map(canonicalElement));
  const want = new Set(to.map(canonicalElement));
  return {
    removed: from.filter((e) => !want.has(canonicalElement(e))),
    added: to.filter((e) => !have.has(canonicalElement(e))),
  };
}

/** the counts setChanges gave before: distinct canonical forms on each side */
function referenceCounts(from: readonly string[], to: readonly string[]) {
  const os = new Set(from.map(canonicalElement));
  const ns = new Set(to.map(canonicalElement));
  return {
    added: [...ns].filter((e) => !os.has(e)).length,
    removed: [...os].filter((e) => !ns.has(e)).length,
  };
}

function check(from: readonly string[], to: readonly string[]): void {
  const d = elementDelta(from, to);
  expect({ removed: [...d.removed], added: [...d.added] }).toEqual(reference(from, to));
  expect(deltaCounts(d)).toEqual(referenceCounts(from, to));
}

// IPv4 intervals in a narrow space (so they overlap, touch and repeat), hosts and prefixes
const v4Interval = fc.oneof(
  fc.integer({ min: 0, max: 4096 }).map((a) => ({ start: 0x0a000000 + a, end: 0x0a000000 + a })),
  fc.tuple(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 8 })).map(([a, bits]) => {
    const size = 2 ** bits;
    const start = 0x0a000000 + Math.floor(a / size) * size;
    return { start, end: start + size - 1 };
  }),
  fc
    .tuple(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 40 }))
    .map(([a, n]) => ({ start: 0x0a000000 + a, end: 0x0a000000 + a + n })),
  // the ends of the space
  fc.constantFrom({ start: 0, end: 0 }, { start: 0xffffffff, end: 0xffffffff }),
);
const v6Interval = fc.oneof(
  fc
    .bigInt({ min: 0n, max: 4096n })
    .map((a) => ({ start: (0x2001n << 112n) + a, end: (0x2001n << 112n) + a })),
  fc.tuple(fc.bigInt({ min: 0n, max: 4096n }), fc.integer({ min: 0, max: 8 })).map(([a, bits]) => {
    const size = 1n << BigInt(bits);
    const start = (0x2001n << 112n) + (a / size) * size;
    return { start, end: start + size - 1n };
  }),
  fc
    .tuple(fc.bigInt({ min: 0n, max: 4096n }), fc.bigInt({ min: 0n, max: 40n }))
    .map(([a, n]) => ({ start: (0x2001n << 112n) + a, end: (0x2001n << 112n) + a + n })),
  fc.constantFrom({ start: 0n, end: 0n }, { start: (1n << 128n) - 1n, end: (1n << 128n) - 1n }),
);

/** a list's set as awg renders it, then the same list edited (lines added and removed) */
function edited<T extends number | bigint>(
  iv: fc.Arbitrary<{ start: T; end: T }>,
  format: (i: { start: T; end: T }) => string,
) {
  return fc
    .tuple(
      fc.array(iv, { maxLength: 200 }),
      fc.array(iv, { maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 6 }),
    )
    .map(([base, more, drop]) => {
      const kept = base.filter((_, i) => !drop.some((d) => base.length && d % base.length === i));
      return {
        from: mergeIntervals(base).map(format),
        to: mergeIntervals([...kept, ...more]).map(format),
      };
    });
}

describe('elementDelta', () => {
  it('is the string-set delta on merged lists and their edits (IPv4, IPv6)', () => {
    fc.assert(
      fc.property(edited(v4Interval, formatInterval4), ({ from, to }) => {
        check(from, to);
        check(to, from);
      }),
      { numRuns: 400 },
    );
    fc.assert(
      fc.property(edited(v6Interval, formatInterval6), ({ from, to }) => {
        check(from, to);
        check(to, from);
      }),
      { numRuns: 400 },
    );
  });

  it('is the string-set delta on any lists: unsorted, duplicated, both spellings, not addresses', () => {
    const element = fc.oneof(
      fc.constantFrom(
        '10.0.0.1',
        '10.0.0.1/32',
        '10.0.0.0/24',
        '10.0.0.0-10.0.0.9',
        '10.0.0.2',
        '2001:db8::1',
        '2001:db8::1/128',
        '2001:db8::/64',
        '2001:db8::1/32',
        '10.0.0.1/128',
        '::',
        '0.0.0.0',
        '255.255.255.255',
        'x',
        '',
        '-',
        '/32',
        '10.0.0.300',
      ),
      fc.integer({ min: 0, max: 64 }).map((a) => `192.0.2.${a}`),
      fc.integer({ min: 0, max: 64 }).map((a) => `192.0.2.${a}/32`),
      fc.string({ maxLength: 6 }),
    );
    fc.assert(
      fc.property(
        fc.array(element, { maxLength: 40 }),
        fc.array(element, { maxLength: 40 }),
        check,
      ),
      { numRuns: 2000 },
    );
  });

  it('edge cases: empty contents, one element, both spellings of a host, whole families', () => {
    check([], []);
    check([], ['10.0.0.1']);
    check(['10.0.0.1'], []);
    check(['10.0.0.1/32'], ['10.0.0.1']);
    check(['2001:db8::1'], ['2001:db8::1/128']);
    check(['10.0.0.0/8', '2001:db8::/32'], ['2001:db8::/32', '10.0.0.0/8']);
    expect(elementDelta(['10.0.0.1/32', '10.0.0.2'], ['10.0.0.1', '10.0.0.3'])).toEqual({
      removed: ['10.0.0.2'],
      added: ['10.0.0.3'],
    });
  });

  it('a one-line edit of a large list: one element added, the rest paired', () => {
    const base = Array.from({ length: 50_000 }, (_, i) => ({
      start: 0x0b000000 + i * 4,
      end: 0x0b000000 + i * 4 + 1,
    }));
    const from = mergeIntervals(base).map(formatInterval4);
    const to = mergeIntervals([
      ...base,
      { start: 0x0b000000 + 4 * 25_000 + 2, end: 0x0b000000 + 4 * 25_000 + 2 },
    ]).map(formatInterval4);
    const d = elementDelta(from, to);
    expect(d).toEqual({ removed: ['11.1.134.160/31'], added: ['11.1.134.160-11.1.134.162'] });
    check(from, to);
    // the same two arrays: the same result, not computed again
    expect(elementDelta(from, to)).toBe(d);
  });

  it("setChanges' +N −M is the delta's distinct canonical forms", () => {
    const ruleset = (els: readonly string[], digest: string) =>
      `table inet awg {\nset d4_r {\ntype ipv4_addr\nflags interval\ncomment "${staticSetComment(els.length, digest)}"\n}\n}\n`;
    const a = ['10.0.0.1', '10.0.0.2/32', '10.0.0.3'];
    const b = ['10.0.0.1/32', '10.0.0.2', '10.0.0.4', '10.0.0.4/32'];
    const els = (d: string) => (d === 'aa' ? a : d === 'bb' ? b : undefined);
    const [c] = setChanges(ruleset(a, 'aa'), ruleset(b, 'bb'), els);
    expect(c).toMatchObject({ action: 'update', before: 3, after: 4, added: 1, removed: 1 });
  });
});
