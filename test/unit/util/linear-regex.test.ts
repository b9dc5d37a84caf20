/**
 * The linear-time engine behind `match.regex`: same answers as V8's RegExp on the accepted
 * syntax (differential test over generated patterns and subjects, seeded so a failure
 * reproduces), the refused constructs, and linearity: the thread steps of one test() are
 * bounded by (length + 1) × 2 × program size — counted, not timed — on the patterns that
 * make V8 backtrack exponentially.
 */
import { describe, expect, it } from 'vitest';
import {
  compileLinearRegex,
  LinearRegexError,
  MAX_PROGRAM,
  requiredLiteral,
} from '../../../src/util/linear-regex.js';

/** mulberry32: a small seeded PRNG, so every generated case reproduces */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// subjects use a small alphabet so generated patterns hit often; non-ASCII letters exercise
// case folding (ſ folds to itself, K Kelvin does not fold to k in non-unicode mode)
const ALPHABET = [
  'a',
  'b',
  'A',
  'B',
  '/',
  '.',
  '-',
  '_',
  '1',
  ' ',
  '\n',
  'ſ',
  'K',
  'é',
  'É',
  'k',
  's',
  'S',
];

function genPattern(r: () => number, depth = 0): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const atom = (): string => {
    const k = r();
    if (depth < 3 && k < 0.15)
      return `(${pick(['', '?:', '?<g' + Math.floor(r() * 1e6) + '>'])}${genPattern(r, depth + 1)})`;
    if (k < 0.3) {
      const items = Array.from({ length: 1 + Math.floor(r() * 3) }, () =>
        pick([
          'a',
          'b',
          'A-Z',
          'a-k',
          '\\d',
          '\\w',
          '\\s',
          '\\W',
          '/',
          '.',
          '\\-',
          'K',
          'ſ',
          'é',
          's-z',
          '\\n',
        ]),
      );
      return `[${r() < 0.3 ? '^' : ''}${items.join('')}]`;
    }
    if (k < 0.4)
      return pick([
        '.',
        '\\d',
        '\\w',
        '\\s',
        '\\D',
        '\\W',
        '\\S',
        '\\/',
        '\\.',
        '\\x61',
        '\\u0042',
        '\\n',
        '\\t',
      ]);
    if (k < 0.47) return pick(['^', '$', '\\b', '\\B']);
    return pick(['a', 'b', 'A', 'B', '/', 'k', 's', 'K', 'ſ', 'é', '1', '-', '_', ' ']);
  };
  const term = (): string => {
    const a = atom();
    if (['^', '$', '\\b', '\\B'].includes(a)) return a;
    const k = r();
    const q = k < 0.55 ? '' : pick(['*', '+', '?', '{2}', '{0,2}', '{1,}', '{1,3}']);
    return a + q + (q && r() < 0.2 ? '?' : '');
  };
  const alt = () => Array.from({ length: Math.floor(r() * 4) }, term).join('');
  const n = r() < 0.25 ? 2 : 1;
  return Array.from({ length: n }, alt).join('|');
}

function genSubject(r: () => number): string {
  return Array.from(
    { length: Math.floor(r() * 9) },
    () => ALPHABET[Math.floor(r() * ALPHABET.length)],
  ).join('');
}

describe('linear regex: same answers as RegExp', () => {
  it('on 4000 generated patterns × 12 subjects, with and without ignoreCase', () => {
    const r = rng(0x5eed);
    let compared = 0;
    for (let p = 0; p < 4000; p++) {
      const source = genPattern(r);
      const ignoreCase = r() < 0.4;
      const native = new RegExp(source, ignoreCase ? 'i' : '');
      const linear = compileLinearRegex(source, { ignoreCase });
      for (let k = 0; k < 12; k++) {
        const s = genSubject(r);
        const want = native.test(s);
        if (linear.test(s) !== want)
          expect.fail(
            `/${source}/${ignoreCase ? 'i' : ''} on ${JSON.stringify(s)}: RegExp says ${want}`,
          );
        compared++;
      }
    }
    expect(compared).toBe(48_000);
  });

  it.each([
    ['firefox', '/usr/lib/firefox-esr/firefox-esr', false, true],
    ['^/usr/(s?bin)/fire.*$', '/usr/bin/firefox', false, true],
    ['^/usr/(s?bin)/fire.*$', '/usr/local/bin/firefox', false, false],
    ['^/opt/[a-z]+/bin/[^/]+$', '/opt/app/bin/run', false, true],
    ['^/opt/[a-z]+/bin/[^/]+$', '/opt/app/bin/x/run', false, false],
    ['FIREFOX', '/usr/bin/firefox', true, true],
    ['\\bjava\\b', '/usr/lib/jvm/bin/java', false, true],
    ['\\bjava\\b', '/usr/lib/jvm/bin/javac', false, false],
    ['a{2,3}$', 'xaaaa', false, true],
    ['^a{2,3}$', 'aaaa', false, false],
    ['[^]', '', false, false],
    ['[]', 'a', false, false],
    ['', '', false, true],
    ['(a|)+b', 'aab', false, true],
    ['(?:a*)*$', 'b', false, true],
    ['\\u017f', 'S', true, false],
    ['s', '\u017f', true, false],
    ['k', '\u212a', true, false],
  ])('/%s/ on %j (ignoreCase %s) → %s', (source, s, ignoreCase, want) => {
    expect(new RegExp(source, ignoreCase ? 'i' : '').test(s)).toBe(want);
    expect(compileLinearRegex(source, { ignoreCase }).test(s)).toBe(want);
  });
});

describe('requiredLiteral: a substring of every match', () => {
  it('on 4000 generated patterns × 12 subjects (case-sensitive)', () => {
    const r = rng(0x11e7);
    let matched = 0;
    for (let p = 0; p < 4000; p++) {
      const source = genPattern(r);
      const lit = requiredLiteral(source);
      const linear = compileLinearRegex(source);
      for (let k = 0; k < 12; k++) {
        const s = genSubject(r);
        // a subject that contains the literal and matches too, now and then
        const t = r() < 0.3 ? `${s}${lit}${genSubject(r)}` : s;
        if (!linear.test(t)) continue;
        matched++;
        if (!t.includes(lit))
          expect.fail(`/${source}/ matches ${JSON.stringify(t)} without ${JSON.stringify(lit)}`);
      }
    }
    expect(matched).toBeGreaterThan(1000);
  });

  it.each([
    ['^(.+\\.)?google\\.com$', 'google.com'],
    ['(^|\\.)ads?\\d*\\.', 'ad'],
    ['^[a-z]+\\d+$', ''],
    ['a|bcd', ''],
    ['ab+cd', 'ab'],
    ['ab+cde', 'cde'],
    ['(?:abc)de', 'abcde'],
    ['x\\x41yz', 'xAyz'],
    ['track(ing|er)', 'track'],
  ])('/%s/ → %j', (source, want) => {
    expect(requiredLiteral(source)).toBe(want);
  });
});

describe('linear regex: linear time', () => {
  // V8 backtracks exponentially (or polynomially of high degree) on each of these
  it.each([
    '(a+)+$',
    '(a|a)*$',
    '(a|aa)*c',
    '(.*a){12}$',
    'a*a*a*a*a*a*a*a*b',
    '^(\\w+\\s?)*$',
    '(x+x+)+y',
  ])('%s against a 4096-character path: steps ≤ (n+1)·2·size', (source) => {
    for (const ignoreCase of [false, true]) {
      const re = compileLinearRegex(source, { ignoreCase });
      const s = `/${'a'.repeat(4094)}!`;
      re.test(s);
      expect(re.lastSteps).toBeGreaterThan(0);
      expect(re.lastSteps).toBeLessThanOrEqual((s.length + 1) * 2 * re.size);
    }
  });

  it('program size is capped: big counted repetitions are refused', () => {
    expect(() => compileLinearRegex('(a{100}){100}')).toThrow(
      new RegExp(`more than ${MAX_PROGRAM} instructions`),
    );
    expect(() => compileLinearRegex('a{5000}')).toThrow(LinearRegexError);
    expect(compileLinearRegex('a{1,200}').size).toBeLessThanOrEqual(MAX_PROGRAM);
  });
});

describe('linear regex: refused constructs', () => {
  it.each([
    ['(a)\\1', /backreferences/],
    ['(?<n>a)\\k<n>', /backreferences/],
    ['(?=a)', /lookahead and lookbehind/],
    ['(?!a)', /lookahead and lookbehind/],
    ['(?<=a)b', /lookahead and lookbehind/],
    ['(?<!a)b', /lookahead and lookbehind/],
    ['\\01', /octal/],
    ['\\p{L}', /has no meaning/],
    ['\\a', /has no meaning/],
    ['a{,3}', /not a quantifier/],
    ['}', /must be escaped/],
    [']', /must be escaped/],
    ['^*', /quantifier on an assertion/],
    ['\\b+', /quantifier on an assertion/],
    ['[\\d-z]', /ambiguous/],
    ['[z-a]', /out of order/],
    ['a**', /nothing to repeat/],
    ['*a', /nothing to repeat/],
    ['(a', /unterminated group/],
    ['a)', /unmatched/],
    ['[a', /unterminated character class/],
    ['a\\', /at the end/],
    ['(?i:a)', /invalid group/],
    ['\\x4', /hex digits/],
    ['\\c1', /needs a letter/],
  ])('%s', (source, why) => {
    expect(() => compileLinearRegex(source)).toThrow(why);
  });
});
