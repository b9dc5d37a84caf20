/**
 * The compact domain store (config/domain-set.ts) against a naive model: every entry kind
 * (domain, wildcard, full, keyword, regex) fed through the readers' sink and the inline
 * prefixes, matched, explained (entryFor), deduplicated and merged; the plain parser's byte
 * path against the string grammar it stands in for; the caps on keywords and regexes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  collectList,
  domainSetOf,
  mergeDestinations,
  parseDestinationList,
  parseEntry,
  parseInlineDestinations,
  MAX_KEYWORDS,
  type DestinationSet,
} from '../../../src/config/lists.js';
import type { ListEntryKind } from '../../../src/config/list-formats/types.js';
import { loadConfigText } from '../../../src/config/load.js';

type Kind = 'domain' | 'wildcard' | 'full' | 'keyword' | 'regex';
interface E {
  kind: Kind;
  v: string;
}

/** the model: does entry e fit name q? */
function fits(e: E, q: string): boolean {
  const n = q.toLowerCase().replace(/\.$/, '');
  if (n.length === 0) return false;
  switch (e.kind) {
    case 'domain':
      return n === e.v || n.endsWith(`.${e.v}`);
    case 'wildcard':
      return n.endsWith(`.${e.v}`);
    case 'full':
      return n === e.v;
    case 'keyword':
      return n.includes(e.v);
    case 'regex':
      return new RegExp(e.v).test(n);
  }
}

const text = (e: E): string =>
  e.kind === 'domain'
    ? e.v
    : e.kind === 'wildcard'
      ? `*.${e.v}`
      : e.kind === 'regex'
        ? `regexp:${e.v}`
        : `${e.kind}:${e.v}`;

/** the entries through the readers' sink */
function viaSink(es: readonly E[]): DestinationSet {
  const c = collectList('l.txt');
  es.forEach((e, i) => c.sink.entry(e.kind as ListEntryKind, e.v, { line: i + 1, col: 1 }));
  const { set, issues } = c.finish();
  expect(issues).toEqual([]);
  return set;
}

// small alphabets: suffix relations, duplicates and covered entries are frequent
const label = fc.constantFrom('a', 'b', 'c', 'xn--p1ai', 'a-b', '0a');
const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const keyword = fc.constantFrom('a', 'b.c', 'xn', 'a-b', '.a', 'p1ai.a', 'zz');
const regex = fc.constantFrom('^a\\.', 'b$', '^(.+\\.)?c\\.a$', 'a-b\\.0', '^x', '(^|\\.)b\\.');
const entry: fc.Arbitrary<E> = fc.oneof(
  { weight: 4, arbitrary: name.map((v) => ({ kind: 'domain' as const, v })) },
  { weight: 2, arbitrary: name.map((v) => ({ kind: 'wildcard' as const, v })) },
  { weight: 2, arbitrary: name.map((v) => ({ kind: 'full' as const, v })) },
  { weight: 1, arbitrary: keyword.map((v) => ({ kind: 'keyword' as const, v })) },
  { weight: 1, arbitrary: regex.map((v) => ({ kind: 'regex' as const, v })) },
);
/** a query: a name in any case, with or without the trailing dot */
const query = fc
  .tuple(name, fc.boolean(), fc.boolean())
  .map(([n, up, dot]) => `${up ? n.toUpperCase() : n}${dot ? '.' : ''}`);

describe('DomainSet against a naive matcher', () => {
  it('matchDomain and entryFor agree with the model, every kind, after dedup', () => {
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 14 }),
        fc.array(query, { maxLength: 20 }),
        (es, qs) => {
          const set = viaSink(es);
          const d = set.domains;
          for (const q of [...qs, ...es.filter((e) => e.kind !== 'regex').map((e) => e.v)]) {
            const want = es.some((e) => fits(e, q));
            expect(d.matchDomain(q), q).toBe(want);
            const hit = d.entryFor(q);
            expect(hit !== undefined, q).toBe(want);
            // the entry named is one that was read, and it fits
            if (hit !== undefined) {
              const e = es.find((x) => text(x) === hit);
              expect(e, `${q} → ${hit}`).toBeDefined();
              expect(fits(e!, q)).toBe(true);
            }
          }
          // what was read is either kept or counted as redundant
          expect(d.size + set.counts.redundant).toBe(es.length);
          expect(set.counts.entries).toBe(es.length);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('no kept entry is covered: each fits a name no other kept entry fits, or is a keyword/regex', () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 14 }), (es) => {
        const d = viaSink(es).domains;
        const kept: E[] = [
          ...[...d.names('domain')].map((v) => ({ kind: 'domain' as const, v })),
          ...[...d.names('wildcard')].map((v) => ({ kind: 'wildcard' as const, v })),
          ...[...d.names('full')].map((v) => ({ kind: 'full' as const, v })),
        ];
        for (const e of kept) {
          // the name itself (domain, full) or one under it (wildcard)
          const witness = e.kind === 'wildcard' ? `zz.${e.v}` : e.v;
          const others = kept.filter((o) => o !== e && fits(o, witness));
          expect(others, `${text(e)} is covered by ${others.map(text).join(', ')}`).toEqual([]);
        }
        // keywords and regexes: deduplicated, never dropped otherwise
        expect([...d.keywords()].sort()).toEqual(
          [...new Set(es.filter((e) => e.kind === 'keyword').map((e) => e.v))].sort(),
        );
        expect([...d.regexes()].sort()).toEqual(
          [...new Set(es.filter((e) => e.kind === 'regex').map((e) => e.v))].sort(),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('merging fits the union, whatever the order; one set with entries is kept as it is', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(entry, { maxLength: 8 }), { minLength: 1, maxLength: 4 }),
        fc.array(query, { maxLength: 15 }),
        (lists, qs) => {
          const sets = lists.map(viaSink);
          const m = mergeDestinations(sets);
          const r = mergeDestinations([...sets].reverse());
          const all = lists.flat();
          for (const q of qs) {
            const want = all.some((e) => fits(e, q));
            expect(m.domains.matchDomain(q)).toBe(want);
            expect(r.domains.matchDomain(q)).toBe(want);
          }
          expect(m.domains.size + m.counts.redundant).toBe(all.length);
          expect(m.domains.size).toBe(r.domains.size);
        },
      ),
      { numRuns: 200 },
    );
    const one = viaSink([{ kind: 'domain', v: 'a.b' }]);
    const none = viaSink([]);
    expect(mergeDestinations([none, one, none]).domains).toBe(one.domains);
  });

  it('the inline prefixes are the same entries as the sink kinds', () => {
    fc.assert(
      fc.property(
        fc.array(entry, { maxLength: 10 }),
        fc.array(query, { maxLength: 15 }),
        (es, qs) => {
          const inline = domainSetOf(es.map(text));
          const sink = viaSink(es).domains;
          for (const q of qs) expect(inline.matchDomain(q)).toBe(sink.matchDomain(q));
          expect([...inline.entries()].sort()).toEqual([...sink.entries()].sort());
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('the plain parser: bytes and the string grammar agree', () => {
  // lines from pieces that make valid names, wildcards, addresses and every kind of error
  const piece = fc.constantFrom(
    'a',
    'B',
    'xn--p1ai',
    '-x',
    'x-',
    '_',
    '1',
    '.',
    '..',
    '*.',
    '*',
    ':',
    '/24',
    '10.0.0.',
    '#',
    ' ',
    '\t',
    '\r',
    'é',
    'ü.de',
    '\u00a0',
    'a'.repeat(64),
  );
  const line = fc.array(piece, { maxLength: 6 }).map((ps) => ps.join(''));
  it('the same entries and the same issues at the same places as parseEntry line by line', () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
        const { set, issues } = parseDestinationList(lines.join('\n'), 'l.txt');
        // the model: each line as text, the way parseDestinationList read it before Step 21 (and a
        // leading dot dropped)
        const names: string[] = [];
        const wilds: string[] = [];
        const want: { line: number; col: number; message: string }[] = [];
        lines.forEach((raw, i) => {
          const l = raw.includes('#') ? raw.slice(0, raw.indexOf('#')) : raw;
          let s = l.trim();
          if (!s) return;
          let col = l.length - l.trimStart().length + 1;
          // a list file's zone with a leading dot (`.ua`) is the name (docs/lists.md)
          if (
            s.length > 1 &&
            s[0] === '.' &&
            s[1] !== '.' &&
            !/[\s:/]/.test(s) &&
            !/^[\d.]+$/.test(s)
          ) {
            s = s.slice(1);
            col++;
          }
          const e = parseEntry(s);
          if (typeof e === 'string') want.push({ line: i + 1, col, message: e });
          else if (e.kind === 'name') names.push(e.name);
          else if (e.kind === 'wildcard') wilds.push(e.name);
        });
        expect(issues.map((x) => ({ line: x.line, col: x.col, message: x.message }))).toEqual(want);
        const d = domainSetOf([...names, ...wilds.map((w) => `*.${w}`)]);
        expect([...set.domains.entries()].sort()).toEqual([...d.entries()].sort());
      }),
      { numRuns: 500 },
    );
  });
});

describe('full, keyword and regex entries', () => {
  it('are validated where they are read', () => {
    const c = collectList('l.txt', { path: 'rules[0].to.lists[0]' });
    const at = (line: number) => ({ line, col: 3 });
    c.sink.entry('full', '*.example.org', at(1));
    c.sink.entry('full', 'Example.ORG.', at(2));
    c.sink.entry('keyword', '', at(3));
    c.sink.entry('keyword', 'goo gle', at(4));
    c.sink.entry('keyword', 'пример', at(5));
    c.sink.entry('keyword', 'Google', at(6));
    c.sink.entry('regex', '(a)\\1', at(7));
    c.sink.entry('regex', '(?=ads)', at(8));
    c.sink.entry('regex', '', at(9));
    c.sink.entry('regex', '^ads?\\.', at(10));
    const { set, issues } = c.finish();
    expect(issues.map((i) => `${i.line}:${i.col}: ${i.message}`)).toEqual([
      '1:3: *.example.org: a wildcard is not a full-name entry',
      '3:3: an empty keyword would fit every name',
      '4:3: "goo gle": a keyword is letters, digits, "-", "_" and "." (a part of a name)',
      '5:3: пример is not ASCII; names are matched in their punycode form (xn--…)',
      '7:3: regexp "(a)\\\\1" cannot be used: backreferences (and octal escapes) are not supported (at character 4)',
      '8:3: regexp "(?=ads)" cannot be used: lookahead and lookbehind are not supported (no linear-time matching) (at character 1)',
      '9:3: an empty regular expression would fit every name',
    ]);
    expect([...set.domains.entries()]).toEqual([
      'full:example.org',
      'keyword:google',
      'regexp:^ads?\\.',
    ]);
    expect(set.domains.entryFor('www.GOOGLE.com.')).toBe('keyword:google');
    expect(set.domains.entryFor('ad.example.net')).toBe('regexp:^ads?\\.');
    expect(set.domains.entryFor('example.org')).toBe('full:example.org');
    expect(set.domains.entryFor('www.example.org')).toBeUndefined();
  });

  it('a list holds at most MAX_KEYWORDS keywords: the one after is an error at its place', () => {
    const c = collectList('l.txt', { maxIssues: 3 });
    for (let i = 0; i <= MAX_KEYWORDS + 4; i++)
      c.sink.entry('keyword', `k${i}`, { line: i + 1, col: 1 });
    c.sink.entry('keyword', 'k7', { line: 1, col: 1 }); // a duplicate is no error
    const { set, issues } = c.finish();
    expect(set.domains.counts.keywords).toBe(MAX_KEYWORDS);
    expect(issues).toHaveLength(4);
    expect(issues[0]).toMatchObject({ line: MAX_KEYWORDS + 1, severity: 'error' });
    expect(issues[0]!.message).toMatch(/^more than 10,000 keyword entries/);
    expect(issues[3]!.message).toBe('… 2 more errors');
  });

  it('inline to.domains: geosite prefixes, and a value with an unknown prefix is refused', () => {
    const r = parseInlineDestinations(
      ['full:a.example', 'keyword:ads', 'regexp:^tracker\\.', 'domain:b.example', 'geosite:cn'],
      'domains',
      'awg.yaml',
      'rules[0].to.domains',
    );
    expect([...r.set.domains.entries()]).toEqual([
      'full:a.example',
      'b.example',
      'keyword:ads',
      'regexp:^tracker\\.',
    ]);
    expect(r.issues).toEqual([
      {
        file: 'awg.yaml',
        path: 'rules[0].to.domains[4]',
        message:
          'geosite:cn: a domain, *.wildcard, or full:, keyword:, regexp:, domain: followed by its value',
        severity: 'error',
      },
    ]);
  });

  it('regexes are tested on the lowercase name without its dot; only those with their literal run', () => {
    const d = domainSetOf(['regexp:^[a-z]+\\d+\\.ru$', 'regexp:casino']);
    expect(d.matchDomain('Vulkan777.RU.')).toBe(true);
    expect(d.matchDomain('vulkan.ru')).toBe(false);
    expect(d.matchDomain('online-casino.com')).toBe(true);
    expect(d.entryFor('online-casino.com')).toBe('regexp:casino');
  });
});

describe("a rule's caps", () => {
  it('hold for the rule as a whole: inline keywords past 10,000 are an error at the rule, not dropped', () => {
    const kw = Array.from({ length: MAX_KEYWORDS + 1 }, (_, i) => `'keyword:k${i}'`);
    const r = loadConfigText(
      `version: 1
tunnels:
  vpn: { type: socks5, server: 127.0.0.1, port: 1080 }
rules:
  - name: many
    to: { domains: [${kw.join(', ')}] }
    target: vpn
`,
      'awg.yaml',
    );
    expect(r.issues.filter((i) => i.severity === 'error').map((i) => [i.path, i.message])).toEqual([
      [
        'rules[0].to',
        "the rule's values and lists hold 10,001 keyword entries: a rule holds at most 10,000 (each is tried on every name its other entries do not fit)",
      ],
    ]);
  });
});
