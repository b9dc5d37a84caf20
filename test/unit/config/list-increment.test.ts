/**
 * config/list-increment.ts: a list edited by inserting, removing or replacing lines of
 * addresses, parsed from the old parse, must be exactly the full parse of the new bytes (its
 * snapshot, byte for byte, with the flag that its addresses share none), and must decline
 * (undefined: the list is parsed whole) for anything it cannot prove so.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseListBytes, type ListParseOptions } from '../../../src/config/list-formats/index.js';
import { changedLines, parseEdited } from '../../../src/config/list-increment.js';
import { encodeParsedList } from '../../../src/config/list-snapshot.js';
import { addressesDisjoint } from '../../../src/config/lists.js';

const FILE = '/etc/awg/lists/l.txt';
const KEY = { program: 't' };
const full = (b: Uint8Array, o: ListParseOptions = {}) => parseListBytes(b, FILE, o);

/** the incremental parse of `after` from `before`'s full parse, checked against a full parse */
function check(before: Buffer, after: Buffer, o: ListParseOptions = {}) {
  const base = full(before, o);
  if (base.issues.length) return undefined;
  const inc = parseEdited(base, before, after, FILE, o);
  if (inc) {
    const whole = full(after, o);
    expect(inc.issues).toEqual([]);
    expect(whole.issues).toEqual([]);
    expect(inc.format).toBe(whole.format);
    expect(inc.set.v4).toEqual(whole.set.v4);
    expect(inc.set.v6).toEqual(whole.set.v6);
    expect(inc.set.counts).toEqual(whole.set.counts);
    expect(addressesDisjoint(inc.set)).toBe(addressesDisjoint(whole.set));
    expect(encodeParsedList(inc, after, KEY)).toEqual(encodeParsedList(whole, after, KEY));
  }
  return inc;
}

// addresses in a narrow space: hosts, prefixes, overlapping and adjacent ones, both families
const v4 = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map((a) => `10.0.${a >> 8}.${a & 255}`),
  fc
    .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 22, max: 32 }))
    .map(
      ([a, len]) =>
        `10.0.${a * 4 - ((a * 4) % 2 ** Math.max(0, 24 - len))}.0/${len > 24 ? 24 : len}`,
    ),
  fc.constantFrom('0.0.0.0/0', '255.255.255.255', '10.0.1.255', '10.0.2.0/32'),
);
const v6 = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map((a) => `2001:db8::${a.toString(16)}`),
  fc.constantFrom(
    '2001:db8::/120',
    '2001:db8::/128',
    '::/0',
    '2001:db8::100/126',
    '::ffff:10.0.0.1',
  ),
);
const address = fc.oneof(v4, v6);
const decorate = (s: fc.Arbitrary<string>) =>
  fc
    .tuple(s, fc.constantFrom('', ' ', '\t'), fc.constantFrom('', ' # c', '#x', '  '))
    .map(([x, lead, tail]) => `${lead}${x}${tail}`);
const addressLine = fc.oneof(decorate(address), fc.constantFrom('', '# comment', '   ', '#', '\r'));
const nameLine = decorate(
  fc.constantFrom(
    'example.org',
    '*.example.net',
    'www.example.org',
    'Example.COM.',
    'a.b.example.org',
  ),
);
/** lines that parse (the base must have no issues: snapshots of parses with issues are never kept) */
const goodLine = fc.oneof(
  { weight: 3, arbitrary: addressLine },
  { weight: 1, arbitrary: nameLine },
);
/** inserted lines: addresses mostly, some names, some errors */
const anyLine = fc.oneof(
  { weight: 6, arbitrary: addressLine },
  { weight: 1, arbitrary: nameLine },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '10.0.0.1/24',
      '300.1.1.1',
      '2001:db8::/200',
      'bad_name!',
      'é.example',
    ),
  },
);
const eol = fc.constantFrom('\n', '\r\n');

const text = (lines: string[], nl: string, bom: boolean) =>
  Buffer.from((bom ? '\ufeff' : '') + lines.map((l) => l + nl).join(''));

describe('parseEdited', () => {
  it('lines of addresses inserted anywhere: exactly the full parse (IPv4, IPv6, comments, CRLF)', () => {
    fc.assert(
      fc.property(
        fc.array(goodLine, { maxLength: 40 }),
        fc.array(addressLine, { minLength: 1, maxLength: 5 }),
        fc.nat(),
        eol,
        fc.boolean(),
        (lines, added, at, nl, bom) => {
          const k = lines.length ? at % (lines.length + 1) : 0;
          const before = text(lines, nl, bom);
          const after = text([...lines.slice(0, k), ...added, ...lines.slice(k)], nl, bom);
          const inc = check(before, after);
          // declined only where it must be: an insertion before a byte-order mark
          if (!(bom && k === 0)) expect(inc).toBeDefined();
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('any other edit: undefined or exactly the full parse (names, errors, removals, bytes)', () => {
    fc.assert(
      fc.property(
        fc.array(goodLine, { maxLength: 30 }),
        fc.array(anyLine, { maxLength: 4 }),
        fc.nat(),
        fc.nat(),
        eol,
        fc.boolean(),
        (lines, added, at, drop, nl, bom) => {
          const k = lines.length ? at % (lines.length + 1) : 0;
          const before = text(lines, nl, bom);
          const kept = lines.filter((_, i) => !lines.length || i !== drop % (lines.length + 3));
          check(before, text([...kept.slice(0, k), ...added, ...kept.slice(k)], nl, bom));
        },
      ),
      { numRuns: 1500 },
    );
    // byte-level edits: inserted, replaced, cut anywhere
    fc.assert(
      fc.property(
        fc.array(goodLine, { maxLength: 20 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 12 }),
        fc.constantFrom('insert', 'replace', 'cut'),
        (lines, at, bytes, how) => {
          const before = text(lines, '\n', false);
          const p = before.length ? at % (before.length + 1) : 0;
          const after = Buffer.concat([
            before.subarray(0, p),
            how === 'cut' ? Buffer.alloc(0) : Buffer.from(bytes),
            before.subarray(how === 'insert' ? p : Math.min(before.length, p + bytes.length + 1)),
          ]);
          check(before, after);
          check(before, Buffer.concat([before, Buffer.from(bytes)]));
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('declines what it cannot prove: names, errors, a changed line, other formats, a BOM', () => {
    const base = Buffer.from('example.org\n10.0.0.0/24\n');
    const with_ = (s: string) => Buffer.concat([base, Buffer.from(s)]);
    expect(check(base, with_('192.0.2.1\n'))).toBeDefined();
    expect(check(base, with_('example.net\n'))).toBeUndefined();
    expect(check(base, with_('10.0.0.1/24\n'))).toBeUndefined();
    // a last line without a newline is a whole line too
    expect(check(base, with_('192.0.2.1'))).toBeDefined();
    // a line changed (its one address shares none with another): taken out, the new merged in
    expect(check(base, Buffer.from('example.org\n10.0.1.0/24\n192.0.2.1\n'))).toBeDefined();
    expect(check(base, with_('192.0.2.1\n'), { format: 'plain' })).toBeDefined();
    expect(check(base, with_('192.0.2.1\n'), { format: 'dnsmasq' })).toBeUndefined();
    expect(check(base, with_('192.0.2.1\n'), { category: 'x' })).toBeUndefined();
    // a dnsmasq line first makes the file a dnsmasq list
    expect(
      check(base, Buffer.concat([Buffer.from('server=/x.org/1.1.1.1\n'), base])),
    ).toBeUndefined();
    // a byte-order mark inserted at the start, or starting the inserted lines
    expect(check(base, Buffer.concat([Buffer.from('\ufeff192.0.2.1\n'), base]))).toBeUndefined();
    expect(check(base, with_('\ufeff192.0.2.1\n'))).toBeUndefined();
    // an empty list, then one address
    expect(check(Buffer.alloc(0), Buffer.from('192.0.2.1\n'))).toBeDefined();
  });

  it('many lines inserted (past the one-by-one merge): exactly the full parse', () => {
    fc.assert(
      fc.property(
        fc.array(goodLine, { maxLength: 40 }),
        fc.array(addressLine, { minLength: 60, maxLength: 120 }),
        fc.nat(),
        (lines, added, at) => {
          const k = lines.length ? at % (lines.length + 1) : 0;
          const before = text(lines, '\n', false);
          const after = text([...lines.slice(0, k), ...added, ...lines.slice(k)], '\n', false);
          expect(check(before, after)).toBeDefined();
        },
      ),
      { numRuns: 200 },
    );
  });

  it('changedLines: the one run of whole lines replaced, in both', () => {
    const b = (s: string) => Buffer.from(s);
    const at = (x: string, y: string) => changedLines(b(x), b(y));
    expect(at('a\nb\n', 'a\nx\nb\n')).toEqual({ start: 2, endBefore: 2, endAfter: 4 });
    expect(at('a\nb\n', 'a\nb\nb\n')).toEqual({ start: 4, endBefore: 4, endAfter: 6 });
    expect(at('a\nb\n', 'x\na\nb\n')).toEqual({ start: 0, endBefore: 0, endAfter: 2 });
    expect(at('a\nb\n', 'a\nbx\n')).toEqual({ start: 2, endBefore: 4, endAfter: 5 });
    expect(at('a\nb\n', 'a\nb\n')).toBeUndefined();
    expect(at('a\nbc\n', 'a\nb\n')).toEqual({ start: 2, endBefore: 5, endAfter: 4 });
    expect(at('a\nx\nb\n', 'a\nb\n')).toEqual({ start: 2, endBefore: 4, endAfter: 2 });
    // a changed end of a line is not a run of whole lines until its line is in it
    expect(at('x\ny\n', 'x\nzy\n')).toEqual({ start: 2, endBefore: 4, endAfter: 5 });
    expect(at('a\nb', 'a\nb\nc')).toEqual({ start: 2, endBefore: 3, endAfter: 5 });
    expect(at('a\n', 'a\nb')).toEqual({ start: 2, endBefore: 2, endAfter: 3 });
    // long common parts (compared in blocks)
    const long = 'x'.repeat(10_000) + '\n';
    expect(at(long + 'a\n' + long, long + 'y\na\n' + long)).toEqual({
      start: long.length,
      endBefore: long.length,
      endAfter: long.length + 2,
    });
    expect(at(long + 'a\n' + long, long + long)).toEqual({
      start: long.length,
      endBefore: long.length + 2,
      endAfter: long.length,
    });
  });

  /** distinct hosts and prefixes that share no address: 10.1.x.0/24, 10.2.0.x, 2001:db8:x:: */
  const disjointLine = fc.oneof(
    fc.integer({ min: 0, max: 255 }).map((x) => `10.1.${x}.0/24`),
    fc.integer({ min: 0, max: 255 }).map((x) => `10.2.0.${x}`),
    fc.integer({ min: 0, max: 255 }).map((x) => `2001:db8:${x.toString(16)}::/48`),
  );

  it('lines removed or replaced where no two entries share an address: exactly the full parse, taken', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(disjointLine, { maxLength: 40 }),
        fc.array(fc.oneof(disjointLine, addressLine), { maxLength: 4 }),
        fc.nat(),
        fc.nat({ max: 5 }),
        eol,
        fc.constantFrom('', '# a comment', 'example.org'),
        (lines, added, at, cut, nl, extra) => {
          const all = extra ? [extra, ...lines] : lines;
          const k = all.length ? at % (all.length + 1) : 0;
          const before = text(all, nl, false);
          const after = text([...all.slice(0, k), ...added, ...all.slice(k + cut)], nl, false);
          expect(addressesDisjoint(full(before).set)).toBe(true);
          // declined only for a removed name
          const removesName = extra === 'example.org' && k === 0 && cut > 0;
          if (!removesName && !before.equals(after)) expect(check(before, after)).toBeDefined();
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('a removal where entries share addresses: declined; adjacent entries are split again', () => {
    const b = (s: string) => Buffer.from(s);
    expect(check(b('10.0.0.0/24\n10.0.0.1\n'), b('10.0.0.0/24\n'))).toBeUndefined();
    expect(check(b('10.0.0.1\n10.0.0.1\n'), b('10.0.0.1\n'))).toBeUndefined();
    const split = check(b('10.0.0.0/25\n10.0.0.128/25\n'), b('10.0.0.128/25\n'));
    expect(split?.set.v4).toEqual([{ start: 0x0a000080, end: 0x0a0000ff }]);
    // an insertion that shares addresses is taken, and the result is no longer disjoint
    const over = check(b('10.0.0.0/24\n'), b('10.0.0.0/24\n10.0.0.5\n'));
    expect(over && addressesDisjoint(over.set)).toBe(false);
    // … so removing from it is declined
    expect(check(b('10.0.0.0/24\n10.0.0.5\n'), b('10.0.0.0/24\n'))).toBeUndefined();
  });
});
