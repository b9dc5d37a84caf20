import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  formatInterval4,
  formatInterval6,
  intervalsContain,
  mergeDestinations,
  mergeIntervals,
  parseDestinationBytes,
  parseDestinationList,
  parseEntry,
  parseInlineDestinations,
  parseV6,
  v6String,
  type DestinationSet,
  type Interval,
} from '../../../src/config/lists.js';
import { formatIssue } from '../../../src/errors.js';
import ipaddr from '../../../src/util/ipaddr.js';

const F = '/etc/awg/lists/blocked.txt';
/** a set's names and wildcards, sorted (the store keeps them in the order read) */
const names = (s: DestinationSet) => [...s.domains.names('domain')].sort();
const wildcards = (s: DestinationSet) => [...s.domains.names('wildcard')].sort();

describe('parseDestinationList', () => {
  it('reads domains, wildcards, addresses and prefixes with comments and blank lines', () => {
    const { set, issues } = parseDestinationList(
      [
        '# blocked sites',
        '',
        'Example.ORG.',
        '*.example.net   # subdomains only',
        'xn--e1afmkfd.xn--p1ai',
        '  203.0.113.7',
        '198.51.100.0/24',
        '2001:db8::/32',
        'fd00::1 # a host',
        '\t',
      ].join('\n'),
      F,
    );
    expect(issues).toEqual([]);
    expect(names(set)).toEqual(['example.org', 'xn--e1afmkfd.xn--p1ai']);
    expect(wildcards(set)).toEqual(['example.net']);
    expect(set.v4.map(formatInterval4)).toEqual(['198.51.100.0/24', '203.0.113.7']);
    expect(set.v6.map(formatInterval6)).toEqual(['2001:db8::/32', 'fd00::1']);
    expect(set.counts).toEqual({ entries: 7, redundant: 0, cidrs4: 2, cidrs6: 2 });
  });

  it('locates every bad line at file:line:col and says what is wrong', () => {
    const { set, issues } = parseDestinationList(
      [
        'ok.example',
        '10.1.2.3/8',
        '  2001:db8::1/32',
        'bücher.de',
        'a.*.example',
        '0.0.0.0 ads.example',
        '10.0.0.256',
        '10.0.0.0/33',
        '..example.com',
        '-bad.example',
        'fe80::1%eth0',
      ].join('\r\n'),
      F,
      { path: 'rules[0].to.lists[0]' },
    );
    expect(names(set)).toEqual(['ok.example']);
    expect(issues.map(formatIssue)).toEqual([
      `${F}:2:1: rules[0].to.lists[0]: 10.1.2.3/8 has host bits set; it means 10.0.0.0/8`,
      `${F}:3:3: rules[0].to.lists[0]: 2001:db8::1/32 has host bits set; it means 2001:db8::/32`,
      `${F}:4:1: rules[0].to.lists[0]: bücher.de is not ASCII; write it in punycode: xn--bcher-kva.de`,
      `${F}:5:1: rules[0].to.lists[0]: a.*.example: a wildcard is only allowed as the first label (*.example.net)`,
      `${F}:6:1: rules[0].to.lists[0]: "0.0.0.0 ads.example": one entry per line`,
      `${F}:7:1: rules[0].to.lists[0]: 10.0.0.256 is not an IPv4 address or prefix`,
      `${F}:8:1: rules[0].to.lists[0]: 10.0.0.0/33: an IPv4 prefix length is at most 32`,
      `${F}:9:1: rules[0].to.lists[0]: ..example.com: write example.org (the name and its subdomains) or *.example.org (subdomains only)`,
      `${F}:10:1: rules[0].to.lists[0]: -bad.example is not a domain name (label "-bad")`,
      `${F}:11:1: rules[0].to.lists[0]: fe80::1%eth0: a zone index (%…) has no place in a list`,
    ]);
  });

  it('reads a zone with a leading dot (itdoginfo raw lists: .ua) as the name and all under it', () => {
    const { set, issues } = parseDestinationList(
      ['.ua', '  .Example.Org  # a comment', '.рф', '. ', '.1.2.3.4'].join('\n'),
      F,
    );
    expect(names(set)).toEqual(['example.org', 'ua']);
    expect(set.domains.matchDomain('kyiv.ua')).toBe(true);
    expect(set.domains.matchDomain('ua')).toBe(true);
    expect(set.domains.matchDomain('www.example.org')).toBe(true);
    expect(issues.map(formatIssue)).toEqual([
      `${F}:3:2: рф is not ASCII; write it in punycode: xn--p1ai`,
      `${F}:4:1: . is not an IPv4 address or prefix`,
      `${F}:5:1: .1.2.3.4 is not an IPv4 address or prefix`,
    ]);
  });

  it('suggests punycode only for a valid international name', () => {
    const { issues } = parseDestinationList('*.пример.рф\nab\u00adc\u200b.de\n', F);
    expect(issues.map((i) => i.message)).toEqual([
      '*.пример.рф is not ASCII; write it in punycode: *.xn--e1afmkfd.xn--p1ai',
      expect.stringMatching(/is not ASCII/),
    ]);
  });

  it('caps the issues and counts the rest', () => {
    const text = Array.from({ length: 250 }, (_, i) => `bad entry ${i}`).join('\n');
    const { issues } = parseDestinationList(text, F, { maxIssues: 100 });
    expect(issues).toHaveLength(101);
    expect(issues[99]!.line).toBe(100);
    expect(issues[100]).toMatchObject({ file: F, message: '… 150 more errors' });
    expect(issues[100]!.line).toBeUndefined();
  });

  it('drops duplicates and names covered by a wider entry', () => {
    const { set } = parseDestinationList(
      [
        'example.org',
        'www.example.org', // covered by example.org
        '*.example.org', // covered by example.org
        'EXAMPLE.org',
        '*.cdn.test',
        'a.b.cdn.test', // covered by *.cdn.test
        'cdn.test', // not covered: the wildcard excludes the name itself
        '*.x.cdn.test', // covered by cdn.test
      ].join('\n'),
      F,
    );
    expect(names(set)).toEqual(['cdn.test', 'example.org']);
    expect(wildcards(set)).toEqual([]);
    expect(set.counts.redundant).toBe(6);
  });

  it('merges overlapping and adjacent prefixes into one interval', () => {
    const { set } = parseDestinationList(
      ['10.0.0.0/25', '10.0.0.128/25', '10.0.1.0/24', '10.0.0.5', '10.0.3.0/24'].join('\n'),
      F,
    );
    expect(set.v4.map(formatInterval4)).toEqual(['10.0.0.0/23', '10.0.3.0/24']);
    const r = parseDestinationList('10.0.1.0/24\n10.0.2.0/24\n', F).set;
    expect(r.v4.map(formatInterval4)).toEqual(['10.0.1.0-10.0.2.255']);
    const all = parseDestinationList('0.0.0.0/0\n::/0\n1.2.3.4\n', F).set;
    expect(all.v4.map(formatInterval4)).toEqual(['0.0.0.0/0']);
    expect(all.v6.map(formatInterval6)).toEqual(['::/0']);
  });
});

describe('inline values and merging', () => {
  it('checks each grammar and locates errors by path', () => {
    const d = parseInlineDestinations(
      ['example.org', '10.0.0.0/8'],
      'domains',
      'awg.yaml',
      'rules[1].to.domains',
    );
    expect(d.issues).toEqual([
      {
        file: 'awg.yaml',
        path: 'rules[1].to.domains[1]',
        message: '10.0.0.0/8 is not a domain name (label "0/8")',
        severity: 'error',
      },
    ]);
    const c = parseInlineDestinations(
      ['example.org', '10.0.0.1/8'],
      'cidrs',
      'awg.yaml',
      'rules[1].to.cidrs',
    );
    expect(c.issues.map((i) => i.path)).toEqual(['rules[1].to.cidrs[0]', 'rules[1].to.cidrs[1]']);
  });

  it('merges inline values and several files into one set', () => {
    const a = parseInlineDestinations(['example.org', '*.test'], 'domains', 'awg.yaml', 'p').set;
    const b = parseInlineDestinations(
      ['10.0.0.0/24', '2001:db8::/48'],
      'cidrs',
      'awg.yaml',
      'p',
    ).set;
    const f1 = parseDestinationList('www.example.org\n10.0.1.0/24\nfoo.bar\n', 'l1.txt').set;
    const f2 = parseDestinationList('a.test\n2001:db8:1::/48\nfoo.bar\n', 'l2.txt').set;
    const m = mergeDestinations([a, b, f1, f2]);
    expect(names(m)).toEqual(['example.org', 'foo.bar']);
    expect(wildcards(m)).toEqual(['test']);
    expect(m.v4.map(formatInterval4)).toEqual(['10.0.0.0/23']);
    expect(m.v6.map(formatInterval6)).toEqual(['2001:db8::/47']);
    expect(m.counts).toEqual({ entries: 10, redundant: 3, cidrs4: 2, cidrs6: 2 });
    expect(mergeDestinations([])).toMatchObject({ v4: [], v6: [] });
    expect(mergeDestinations([]).domains.size).toBe(0);
  });
});

describe('matchDomain', () => {
  const m = parseDestinationList('example.org\n*.example.net\nru\n', F).set.domains;
  it('matches the name and its subdomains, wildcards only below the name', () => {
    expect(m.matchDomain('example.org')).toBe(true);
    expect(m.matchDomain('A.B.Example.Org.')).toBe(true);
    expect(m.matchDomain('badexample.org')).toBe(false);
    expect(m.matchDomain('example.net')).toBe(false);
    expect(m.matchDomain('www.example.net')).toBe(true);
    expect(m.matchDomain('yandex.ru')).toBe(true);
    expect(m.matchDomain('ru.com')).toBe(false);
    expect(m.matchDomain('.')).toBe(false);
    expect(m.matchDomain('')).toBe(false);
  });
});

// ---- properties against brute-force models ----

/** a tiny 8-bit address space mapped onto 10.0.0.x / fd00::x keeps the model exhaustive */
const prefix8 = fc
  .record({ a: fc.integer({ min: 0, max: 255 }), len: fc.integer({ min: 24, max: 32 }) })
  .map(({ a, len }) => {
    const size = 2 ** (32 - len);
    return { start: a - (a % size), len };
  });

function covered(prefixes: { start: number; len: number }[]): Set<number> {
  const s = new Set<number>();
  for (const p of prefixes) for (let i = 0; i < 2 ** (32 - p.len); i++) s.add(p.start + i);
  return s;
}

/** sorted, each interval non-empty, and strictly after the previous end + 1 (no overlap, no adjacency) */
function disjointSorted<T extends number | bigint>(xs: Interval<T>[]): boolean {
  for (let i = 0; i < xs.length; i++) {
    const { start, end } = xs[i]!;
    if (start > end) return false;
    if (i === 0) continue;
    const prevEnd = xs[i - 1]!.end;
    const gap =
      typeof start === 'bigint'
        ? start - (prevEnd as bigint) > 1n
        : start - (prevEnd as number) > 1;
    if (!gap) return false;
  }
  return true;
}

describe('properties', () => {
  it('v6String writes an address as ipaddr.js does (RFC 5952: the longest, first zero run as ::)', () => {
    // groups mostly zero, so runs of every length and position (ties included) come up
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (gs) => {
        const n = gs.reduce((a, g) => (a << 16n) | BigInt(g), 0n);
        expect(v6String(n)).toBe(new ipaddr.IPv6(gs).toString());
      }),
      { numRuns: 2000 },
    );
    expect(v6String(0n)).toBe('::');
    expect(v6String(1n)).toBe('::1');
    expect(v6String((1n << 128n) - 1n)).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    expect(v6String(0x20010db8000000000001000000000001n)).toBe('2001:db8::1:0:0:1');
  });

  it('IPv4: merged intervals are sorted, disjoint, and cover exactly the union', () => {
    fc.assert(
      fc.property(fc.array(prefix8, { maxLength: 12 }), (ps) => {
        const text = ps.map((p) => `10.0.0.${p.start}/${p.len}`).join('\n');
        const { set, issues } = parseDestinationList(text, F);
        expect(issues).toEqual([]);
        expect(disjointSorted(set.v4)).toBe(true);
        const model = covered(ps);
        const base = 10 * 2 ** 24;
        for (let x = 0; x < 256; x++) expect(intervalsContain(set.v4, base + x)).toBe(model.has(x));
        expect(intervalsContain(set.v4, base - 1)).toBe(false);
        expect(intervalsContain(set.v4, base + 256)).toBe(false);
      }),
    );
  });

  it('IPv6: the same over fd00::/120', () => {
    fc.assert(
      fc.property(fc.array(prefix8, { maxLength: 12 }), (ps) => {
        const text = ps.map((p) => `fd00::${p.start.toString(16)}/${p.len + 96}`).join('\n');
        const { set, issues } = parseDestinationList(text, F);
        expect(issues).toEqual([]);
        expect(disjointSorted(set.v6)).toBe(true);
        const model = covered(ps);
        const base = 0xfd00n << 112n;
        for (let x = 0; x < 256; x++)
          expect(intervalsContain(set.v6, base + BigInt(x))).toBe(model.has(x));
        expect(intervalsContain(set.v6, base + 256n)).toBe(false);
      }),
    );
  });

  it('mergeIntervals: any intervals, same point set as the input', () => {
    const iv = fc
      .tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 }))
      .map(([s, w]) => ({ start: s, end: s + w }));
    fc.assert(
      fc.property(fc.array(iv, { maxLength: 10 }), (xs) => {
        const m = mergeIntervals(xs);
        expect(disjointSorted(m)).toBe(true);
        for (let x = -1; x < 70; x++)
          expect(intervalsContain(m, x)).toBe(xs.some((i) => i.start <= x && x <= i.end));
      }),
    );
  });

  it('mergeIntervals: input already in order (no sort) merges as the same input shuffled', () => {
    const iv = fc
      .tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 }))
      .map(([s, w]) => ({ start: s, end: s + w }));
    fc.assert(
      fc.property(fc.array(iv, { maxLength: 30 }), (xs) => {
        const sorted = [...xs].sort((a, b) => a.start - b.start || b.end - a.end);
        const copy = sorted.map((x) => ({ ...x }));
        const m = mergeIntervals(sorted);
        expect(m).toEqual(mergeIntervals(xs));
        expect(sorted).toEqual(copy);
        // merged intervals merged again (a rule with one list): themselves, in a new array
        const again = mergeIntervals(m);
        expect(again).toEqual(m);
        expect(again).not.toBe(m);
        const big = sorted.map((x) => ({ start: BigInt(x.start), end: BigInt(x.end) }));
        expect(mergeIntervals(big)).toEqual(
          m.map((x) => ({ start: BigInt(x.start), end: BigInt(x.end) })),
        );
      }),
    );
  });

  it('domain matching agrees with a brute-force model, before and after dedup', () => {
    const label = fc.constantFrom('a', 'b', 'c', 'xn--p1ai');
    const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
    const entry = fc.record({ wild: fc.boolean(), name });
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 8 }),
        fc.array(name, { maxLength: 20 }),
        (es, qs) => {
          const text = es.map((e) => (e.wild ? `*.${e.name}` : e.name.toUpperCase())).join('\n');
          const { set, issues } = parseDestinationList(text, F);
          expect(issues).toEqual([]);
          const m = set.domains;
          const model = (q: string): boolean =>
            es.some((e) =>
              e.wild ? q.endsWith(`.${e.name}`) : q === e.name || q.endsWith(`.${e.name}`),
            );
          for (const q of [...qs, ...es.map((e) => e.name)])
            expect(m.matchDomain(q)).toBe(model(q));
          // no kept entry is covered by another kept entry
          expect(set.domains.size + set.counts.redundant).toBe(es.length);
        },
      ),
    );
  });
});

describe('scale', () => {
  it('parses and merges 100,000 mixed lines (time logged, not asserted)', () => {
    const lines: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      const k = i % 4;
      if (k === 0) lines.push(`${10 + (i % 200)}.${(i >> 8) & 255}.${i & 255}.0/24`);
      else if (k === 1) lines.push(`100.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      else if (k === 2) lines.push(`2001:db8:${(i & 0xffff).toString(16)}::/48 # v6`);
      else lines.push(`site${i}.example${i % 97}.org`);
    }
    const text = lines.join('\n');
    const t0 = performance.now();
    const { set, issues } = parseDestinationList(text, F);
    const merged = mergeDestinations([set, set]);
    const ms = performance.now() - t0;
    console.log(
      `lists: 100,000 lines (${(text.length / 1e6).toFixed(1)} MB) parse+merge ${ms.toFixed(0)} ms → ` +
        `${merged.v4.length} v4 + ${merged.v6.length} v6 intervals, ${merged.domains.counts.domains} names`,
    );
    expect(issues).toEqual([]);
    expect(set.counts.entries).toBe(100_000);
    expect(merged.domains.counts.domains).toBe(25_000);
    expect(disjointSorted(merged.v4)).toBe(true);
    expect(disjointSorted(merged.v6)).toBe(true);
  });
});

describe('parseV6', () => {
  const viaIpaddr = (s: string): bigint =>
    ipaddr.IPv6.parse(s).parts.reduce((n, p) => (n << 16n) | BigInt(p), 0n);
  it('agrees with ipaddr.js on every valid address', () => {
    fc.assert(
      // ipaddr.js reads `::a.b.c.d` as `::ffff:a.b.c.d`; RFC 4291 2.2 (3) says
      // `::0:a.b.c.d` (the IPv4-compatible form): that case is checked by hand below
      fc.property(fc.ipV6(), (s) => {
        fc.pre(!(s.startsWith('::') && s.includes('.')));
        expect(parseV6(s)).toBe(viaIpaddr(s));
      }),
      { numRuns: 2000 },
    );
  });
  it('refuses what ipaddr.js refuses (hex digits and colons)', () => {
    const chars = fc.constantFrom('0', '1', 'f', 'A', ':', ':');
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 24 }), (cs) => {
        const s = cs.join('');
        expect(parseV6(s) !== undefined).toBe(ipaddr.IPv6.isValid(s));
      }),
      { numRuns: 5000 },
    );
  });
  it('reads the edge forms', () => {
    expect(parseV6('::')).toBe(0n);
    expect(parseV6('::1')).toBe(1n);
    expect(parseV6('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toBe((1n << 128n) - 1n);
    expect(parseV6('::ffff:192.0.2.1')).toBe(0xffffc0000201n);
    expect(parseV6('::192.0.2.1')).toBe(0xc0000201n);
    for (const bad of [
      ':::',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '12345::',
      '::1.2.3',
      '1:2:3:4:5:6:7::8',
    ])
      expect(parseV6(bad), bad).toBeUndefined();
  });
});

describe('the byte paths of a list file agree with the grammar', () => {
  // parseDestinationBytes reads plain IPv4 entries from bytes (addV4Bytes) and sorts IPv4
  // intervals as packed keys (mergeIntervals): both must give what parseEntry and a plain sort do
  const tricky = [
    '0.0.0.0/0',
    '255.255.255.255',
    '255.255.255.255/32',
    '1.2.3.4/032',
    '1.2.3.4/0032',
    '01.2.3.4',
    '1.2.3.256',
    '1.2.3.4/33',
    '1.2.3.5/31',
    '1.2.3',
    '1.2.3.4.5',
    '1..2.3',
    '1.2.3.4/',
    '1.2.3.4/x',
    '.1.2.3',
    '10.0.0.0/8',
    '10.1.0.0/16',
  ];

  it('each tricky line: the same interval or the same message', () => {
    for (const line of tricky) {
      const got = parseDestinationBytes(Buffer.from(`${line}\n`), 'l.txt');
      const e = parseEntry(line);
      if (typeof e === 'string') {
        expect(
          got.issues.map((i) => i.message),
          line,
        ).toEqual([e]);
      } else {
        expect(got.issues, line).toEqual([]);
        expect(got.set.v4, line).toEqual(e.kind === 'v4' ? [{ start: e.start, end: e.end }] : []);
      }
    }
  });

  it('random IPv4 lists: the merged intervals of the grammar and a comparator sort', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 8, max: 32 })),
          {
            maxLength: 300,
          },
        ),
        (xs) => {
          const lines = xs.map(([a, len]) => {
            const net = len === 32 ? a : a - (a % 2 ** (32 - len));
            const s = [24, 16, 8, 0].map((k) => Math.floor(net / 2 ** k) % 256).join('.');
            return len === 32 ? s : `${s}/${len}`;
          });
          const got = parseDestinationBytes(Buffer.from(lines.join('\n')), 'l.txt');
          expect(got.issues).toEqual([]);
          const want: { start: number; end: number }[] = [];
          const ivs = lines
            .map((l) => parseEntry(l))
            .flatMap((e) =>
              typeof e !== 'string' && e.kind === 'v4' ? [{ start: e.start, end: e.end }] : [],
            )
            .sort((a, b) => a.start - b.start);
          for (const x of ivs) {
            const cur = want[want.length - 1];
            if (cur && x.start <= cur.end + 1) cur.end = Math.max(cur.end, x.end);
            else want.push({ ...x });
          }
          expect(got.set.v4).toEqual(want);
          expect(got.set.counts.cidrs4).toBe(lines.length);
        },
      ),
    );
  });
});
