/**
 * Fuzz targets of the list readers (src/config/list-formats/), seeded with the published
 * samples (test/fixtures/lists/):
 *
 * lists/binary   the srs, geosite and geoip samples mutated — truncated at any offset, bits
 *                flipped, bytes overwritten, a byte replaced by a huge varint (a length or
 *                count inflated), a region duplicated; for srs also the decompressed body,
 *                mutated and compressed again — read with their categories and a small or the
 *                default maxEntries → parseListBytes never throws, every error is located
 *                (line 1, a column inside the stream), no more entries than maxEntries.
 * lists/text     the dnsmasq and sing-box samples edited (nasty strings, brackets, quotes,
 *                slashes, deep nesting, truncation) → never throws, every issue at a line and
 *                column of the text, no more entries than maxEntries.
 * lists/bytes    arbitrary bytes, with or without a category or a forced format → never
 *                throws; every error is located.
 *
 * Each case is time-boxed by the runner (AWG_FUZZ_CASE_MS); memory is bounded by the
 * readers' caps (inflated size, labels, entries), checked here as the process's RSS staying
 * under 1.5 GiB.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync, inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LIST_FORMATS, parseListBytes } from '../../src/config/list-formats/index.js';
import { MAX_INFLATED } from '../../src/config/list-formats/srs.js';
import type { Issue } from '../../src/errors.js';
import { REPO_ROOT } from '../helpers/awg.js';
import { uvarint } from '../helpers/list-encoders.js';
import { applyEdits, bytes, edits } from './arbitraries.js';
import { fc, fuzzSync, testTimeout } from './runner.js';

const FIX = join(REPO_ROOT, 'test/fixtures/lists');
const read = (p: string) => readFileSync(join(FIX, p));

const BINARY: { file: string; bytes: Buffer; categories: (string | undefined)[] }[] = [
  { file: 'srs/vernette-telegram.srs', categories: [undefined] },
  { file: 'srs/vernette-discord-full.srs', categories: [undefined] },
  { file: 'srs/sing-geosite-openai.srs', categories: [undefined] },
  { file: 'srs/sing-geoip-ad.srs', categories: [undefined] },
  {
    file: 'geosite/v2fly-dlc-excerpt.dat',
    categories: ['telegram', 'category-speedtest@cn', 'OPENAI@ads', 'nope', undefined, '@'],
  },
  { file: 'geoip/v2fly-geoip-ad-private.dat', categories: ['ad', 'private', '!ad', 'x@y'] },
].map((s) => ({ ...s, bytes: read(s.file) }));

const TEXT = [
  'dnsmasq/itdoginfo-inside-dnsmasq-nfset.head200.lst',
  'dnsmasq/itdoginfo-inside-dnsmasq-ipset.head50.lst',
  'sing-box/vernette-telegram.json',
  'sing-box/vernette-discord-full.json',
].map((f) => read(f).toString('utf8'));

const RSS_BUDGET = 1.5 * 1024 * 1024 * 1024;

/** every error has a place; binary places are on line 1 inside the stream */
function expectLocated(issues: Issue[], maxCol: number, lines?: string[]): void {
  for (const i of issues) {
    expect(i.message.length).toBeGreaterThan(0);
    // the collector's "… N more errors" summary has no place of its own
    if (i.severity !== 'error' || /^… \d+ more error/.test(i.message)) continue;
    expect(i.line, JSON.stringify(i)).toBeGreaterThanOrEqual(1);
    expect(i.col, JSON.stringify(i)).toBeGreaterThanOrEqual(1);
    if (lines) {
      expect(i.line!, JSON.stringify(i)).toBeLessThanOrEqual(lines.length);
      expect(i.col!, JSON.stringify(i)).toBeLessThanOrEqual(lines[i.line! - 1]!.length + 1);
    } else {
      expect(i.line, JSON.stringify(i)).toBe(1);
      expect(i.col!, JSON.stringify(i)).toBeLessThanOrEqual(maxCol);
    }
  }
}

const lines = (b: Uint8Array) =>
  Buffer.from(b)
    .toString('utf8')
    .replace(/^\uFEFF/, '')
    .split('\n');

function checkParsed(
  b: Uint8Array,
  opts: { category?: string | undefined; maxEntries: number },
): void {
  const r = parseListBytes(b, 'fuzz', opts);
  // a refusal of the whole file (a category on no .dat, binary content) is at 1:1 or a byte
  const binary =
    ['srs', 'geosite', 'geoip'].includes(r.format) ||
    r.issues.some((i) => i.line === 1 && i.message.startsWith('binary content'));
  expectLocated(
    r.issues,
    Math.max(b.length, r.format === 'srs' ? MAX_INFLATED : 0) + 1,
    binary ? undefined : lines(b),
  );
  expect(r.set.counts.entries).toBeLessThanOrEqual(opts.maxEntries);
  expect(process.memoryUsage().rss).toBeLessThan(RSS_BUDGET);
}

// ---------------------------------------------------------------------------------------
// mutations of bytes

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; bits: [number, number][] }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'inflate'; at: number; value: number | bigint }
  | { kind: 'dup'; from: number; len: number; to: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.nat().map((at) => ({ kind: 'truncate' as const, at })),
  fc
    .array(fc.tuple(fc.nat(), fc.nat({ max: 7 })), { minLength: 1, maxLength: 4 })
    .map((bits) => ({ kind: 'flip' as const, bits })),
  fc
    .tuple(
      fc.nat(),
      fc.oneof(fc.constantFrom(0, 0x7f, 0x80, 0xff, 0x0a, 0x12), fc.nat({ max: 255 })),
    )
    .map(([at, byte]) => ({ kind: 'set' as const, at, byte })),
  fc
    .tuple(
      fc.nat(),
      fc.oneof(
        fc.constantFrom(2 ** 31, 2 ** 32 - 1, 2 ** 40, 2 ** 53 - 1, 2n ** 63n, 2n ** 64n - 1n),
        fc.nat({ max: 1 << 20 }),
      ),
    )
    .map(([at, value]) => ({ kind: 'inflate' as const, at, value })),
  fc
    .tuple(fc.nat(), fc.nat({ max: 64 }), fc.nat())
    .map(([from, len, to]) => ({ kind: 'dup' as const, from, len, to })),
);

function mutate(src: Uint8Array, m: Mutation): Buffer {
  const b = Buffer.from(src);
  const at = (n: number) => (b.length === 0 ? 0 : n % b.length);
  switch (m.kind) {
    case 'truncate':
      return b.subarray(0, m.at % (b.length + 1));
    case 'flip':
      for (const [p, bit] of m.bits) if (b.length) b[at(p)]! ^= 1 << bit;
      return b;
    case 'set':
      if (b.length) b[at(m.at)] = m.byte;
      return b;
    case 'inflate': {
      const p = at(m.at);
      return Buffer.concat([b.subarray(0, p), Buffer.from(uvarint(m.value)), b.subarray(p + 1)]);
    }
    case 'dup': {
      const from = at(m.from);
      const piece = b.subarray(from, from + m.len);
      const to = at(m.to);
      return Buffer.concat([b.subarray(0, to), piece, b.subarray(to)]);
    }
  }
}

/** an srs with its decompressed body mutated, then compressed again */
function mutateSrsBody(src: Uint8Array, m: Mutation): Buffer {
  const body = inflateSync(src.subarray(4));
  return Buffer.concat([Buffer.from(src.subarray(0, 4)), deflateSync(mutate(body, m))]);
}

const maxEntries = fc.constantFrom(2_000_000, 50, 3);

const binaryCase = fc
  .tuple(
    fc.nat({ max: BINARY.length - 1 }),
    fc.array(mutation, { minLength: 1, maxLength: 3 }),
    fc.boolean(),
    fc.nat(),
    maxEntries,
  )
  .map(([i, ms, body, c, max]) => {
    const s = BINARY[i]!;
    let b: Buffer = s.bytes;
    const srs = s.file.startsWith('srs/');
    for (const m of ms) b = srs && body ? mutateSrsBody(b, m) : mutate(b, m);
    return { bytes: b, category: s.categories[c % s.categories.length], max };
  });

// ---------------------------------------------------------------------------------------
// text

const textInput = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(fc.constantFrom(...TEXT), edits).map(([t, e]) => applyEdits(t, e)),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...TEXT), fc.nat())
      .map(([t, n]) => t.slice(0, n % (t.length + 1))),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom('[', '{"rules":', '{"version":2,"rules":[{"domain":'),
        fc.nat({ max: 5000 }),
      )
      .map(([open, n]) => `{"version": 2, "rules": [{"rules": ${open.repeat(n)}`),
  },
  {
    weight: 1,
    arbitrary: fc
      .array(
        fc.constantFrom(
          'server=/',
          'address=/#/',
          '/',
          '//',
          '*',
          '*.',
          '.',
          'a.example',
          '#',
          ' #',
          '\n',
          'nftset=/x/4#inet#fw4#s',
          'conf-file=',
          '=',
        ),
        { maxLength: 30 },
      )
      .map((p) => `server=/ok.example/1.1.1.1\n${p.join('')}`),
  },
);

describe('fuzz: lists', () => {
  it(
    'lists/binary: mutated srs/geosite/geoip samples never throw; errors located; entries capped',
    { timeout: testTimeout(2, 20) },
    () => {
      fuzzSync('lists/binary', 2, [binaryCase], ({ bytes: b, category, max }) =>
        checkParsed(b, { category, maxEntries: max }),
      );
    },
  );

  it(
    'lists/text: edited dnsmasq and sing-box samples never throw; issues at a line and column',
    { timeout: testTimeout(2, 20) },
    () => {
      fuzzSync('lists/text', 2, [textInput, maxEntries], (text, max) => {
        checkParsed(Buffer.from(text), { maxEntries: max });
      });
    },
  );

  it(
    'lists/bytes: arbitrary bytes in any format, with or without a category, never throw',
    { timeout: testTimeout(1, 20) },
    () => {
      fuzzSync(
        'lists/bytes',
        1,
        [
          fc.oneof(
            bytes(0, 512),
            bytes(0, 256).map((b) => Buffer.concat([Buffer.from('SRS\x02'), deflateSync(b)])),
            bytes(0, 256).map((b) =>
              Buffer.concat([Buffer.from([0x0a]), Buffer.from(uvarint(b.length)), b]),
            ),
          ),
          fc.option(fc.constantFrom(...LIST_FORMATS), { nil: undefined }),
          fc.option(fc.constantFrom('cn', 'telegram@ads', '!x'), { nil: undefined }),
        ],
        (b, format, category) => {
          const r = parseListBytes(b, 'fuzz', { format, category, maxEntries: 1000 });
          for (const i of r.issues)
            if (i.severity === 'error') {
              expect(i.line).toBeGreaterThanOrEqual(1);
              expect(i.col).toBeGreaterThanOrEqual(1);
            }
          expect(r.set.counts.entries).toBeLessThanOrEqual(1000);
        },
      );
    },
  );
});
