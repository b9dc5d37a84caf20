/**
 * The binary list formats (src/config/list-formats/): sing-box `.srs` rule-sets and v2ray
 * `geosite.dat` / `geoip.dat`, against the published samples (test/fixtures/lists/) and
 * hostile input built with the test encoders (test/helpers/list-encoders.ts): truncation,
 * damaged tries, declared lengths past the end, a decompression bomb, refused constructs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { probeDat } from '../../../src/config/list-formats/geodat.js';
import { geoipReader } from '../../../src/config/list-formats/geoip.js';
import { geositeReader } from '../../../src/config/list-formats/geosite.js';
import { parseListBytes } from '../../../src/config/list-formats/index.js';
import { srsReader } from '../../../src/config/list-formats/srs.js';
import { REPO_ROOT } from '../../helpers/awg.js';
import {
  geoipEntry,
  geositeEntry,
  matcherKeys,
  pb,
  srs,
  srsBody,
  succinctSet,
  uvarint,
} from '../../helpers/list-encoders.js';
import { readWith } from '../../helpers/list-sink.js';

const sample = (p: string) => readFileSync(join(REPO_ROOT, 'test/fixtures/lists', p));
const SITE = 'geosite/v2fly-dlc-excerpt.dat';
const IP = 'geoip/v2fly-geoip-ad-private.dat';

describe('srs', () => {
  it('vernette telegram.srs (version 2) reads as its JSON source does', () => {
    const r = readWith(srsReader, sample('srs/vernette-telegram.srs'));
    expect(r.problems).toEqual([]);
    expect(r.values('domain')).toEqual(['t.me', 'telegram.org']);
    // the compiler merged the JSON's nine prefixes into seven
    expect(r.values('address')).toEqual([
      '91.105.192.0/23',
      '91.108.4.0/22',
      '91.108.8.0/21',
      '91.108.16.0/21',
      '91.108.56.0/22',
      '149.154.160.0/20',
      '185.76.151.0/24',
    ]);
    const viaJson = parseListBytes(sample('sing-box/vernette-telegram.json'), 'j');
    const viaSrs = parseListBytes(sample('srs/vernette-telegram.srs'), 's');
    expect([...viaSrs.set.domains.names('domain')].sort()).toEqual(
      [...viaJson.set.domains.names('domain')].sort(),
    );
    expect(viaSrs.set.v4).toEqual(viaJson.set.v4);
  });

  it('sing-geosite openai.srs (version 1): legacy suffixes back as domains, full names, a regex', () => {
    const r = readWith(srsReader, sample('srs/sing-geosite-openai.srs'));
    expect(r.problems).toEqual([]);
    expect(r.kinds).toEqual({ domain: 6, full: 6, regex: 1 });
    expect(r.values('domain')).toContain('chatgpt.com');
    expect(r.values('full')).toContain('openaicom.imgix.net');
  });

  it('sing-geoip ad.srs (version 1): 18 ranges, 22 prefixes, one IPv6', () => {
    const r = readWith(srsReader, sample('srs/sing-geoip-ad.srs'));
    expect(r.problems).toEqual([]);
    expect(r.kinds).toEqual({ address: 22 });
    expect(r.values('address').filter((a) => a.includes(':'))).toHaveLength(1);
    expect(r.entries[0]).toEqual({
      kind: 'address',
      value: '46.172.224.0/19',
      at: { line: 1, col: 13, offset: 12 },
    });
  });

  it('vernette discord-full.srs: the network and port_range items are refused at their offsets', () => {
    const r = readWith(srsReader, sample('srs/vernette-discord-full.srs'));
    expect(r.errors).toEqual([
      expect.stringMatching(/^1:173: network: .*\(byte 172 of the decompressed rule-set\)$/),
      expect.stringMatching(/^1:259: port_range: .*\(byte 258 of the decompressed rule-set\)$/),
    ]);
  });

  it('the matcher’s keys: \\n d → domain, \\r.d → wildcard, d → full; version 1 pairs merge', () => {
    const keys = [
      ...matcherKeys(['exact.example'], ['.under.example', 'root.example'], false),
      ...matcherKeys([], ['legacy.example'], true),
    ];
    const r = readWith(srsReader, srs([{ items: [{ domainKeys: keys }] }], 3));
    expect(r.problems).toEqual([]);
    expect(r.entries.map((e) => [e.kind, e.value]).sort()).toEqual([
      ['domain', 'legacy.example'],
      ['domain', 'root.example'],
      ['full', 'exact.example'],
      ['wildcard', 'under.example'],
    ]);
  });

  it('a suffix off a label boundary (sing-box before 1.8) and a bare marker are refused', () => {
    const rev = (s: string) => [...s].reverse().join('');
    const r = readWith(
      srsReader,
      srs([{ items: [{ domainKeys: [rev('\rexample.com'), rev('\r'), rev('ok.example')] }] }], 1),
    );
    expect(r.values('full')).toEqual(['ok.example']);
    expect(r.errors).toEqual([
      '1:4: a suffix that matches every name (byte 3 of the decompressed rule-set)',
      expect.stringMatching(
        /^1:4: "example\.com": a suffix on any boundary \(it also matches "xexample\.com"/,
      ),
    ]);
  });

  it('keyword and regex items; a range that is no prefix becomes several', () => {
    const r = readWith(
      srsReader,
      srs([
        {
          items: [
            { keyword: ['tube'] },
            { regex: ['^a\\.'] },
            {
              ipRanges: [
                [
                  [10, 0, 0, 1],
                  [10, 0, 0, 6],
                ],
              ],
            },
          ],
        },
      ]),
    );
    expect(r.problems).toEqual([]);
    expect(r.values('keyword')).toEqual(['tube']);
    expect(r.values('regex')).toEqual(['^a\\.']);
    expect(r.values('address')).toEqual([
      '10.0.0.1/32',
      '10.0.0.2/31',
      '10.0.0.4/31',
      '10.0.0.6/32',
    ]);
  });

  it('logical rules and invert are refused; the rules around them still read', () => {
    const r = readWith(
      srsReader,
      srs([
        { logical: 'or', rules: [{ items: [{ keyword: ['x'] }] }] },
        { items: [{ keyword: ['inv'] }], invert: true },
        { items: [{ keyword: ['ok'] }] },
      ]),
    );
    expect(r.values('keyword')).toEqual(['inv', 'ok']);
    expect(r.errors).toEqual([
      expect.stringMatching(/^1:2: a logical rule .*\(byte 1 of the decompressed rule-set\)$/),
      expect.stringMatching(/^1:\d+: invert: /),
    ]);
  });

  it('header: magic, version 1–4, a damaged or truncated compressed body', () => {
    const ok = srs([{ items: [{ keyword: ['k'] }] }]);
    expect(readWith(srsReader, Buffer.from('SRX\x02')).errors).toEqual([
      '1:1: not a sing-box binary rule-set: it does not start with "SRS"',
    ]);
    const v9 = Buffer.from(ok);
    v9[3] = 9;
    expect(readWith(srsReader, v9).errors).toEqual([
      '1:4: version 9: this reader knows rule-set versions 1, 2, 3, 4 (byte 3)',
    ]);
    expect(readWith(srsReader, ok.subarray(0, ok.length - 3)).errors).toEqual([
      expect.stringMatching(/^1:5: the compressed body is damaged \(byte 4\)/),
    ]);
  });

  it('a decompression bomb stops at the cap', () => {
    const bomb = srs(Buffer.alloc(80 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(200_000);
    // this message comes only from inflate stopping at the cap (ERR_BUFFER_TOO_LARGE), not
    // from a body inflated whole and measured after: no need to time it
    const r = readWith(srsReader, bomb);
    expect(r.errors).toEqual([
      `1:5: the rule-set decompresses to more than ${64 * 1024 * 1024} bytes (byte 4)`,
    ]);
    // a small maxEntries lowers the cap
    expect(
      readWith(srsReader, srs(Buffer.alloc(4 * 1024 * 1024)), { maxEntries: 100 }).errors,
    ).toEqual([
      `1:5: the rule-set decompresses to more than ${1024 * 1024 + 51_200} bytes (byte 4)`,
    ]);
  });

  it('counts and lengths past the end are damage at their offset, never an allocation', () => {
    const huge = (bytes: number[]) => readWith(srsReader, srs(Buffer.from(bytes))).errors;
    // a rule count of 2^50
    expect(huge([...uvarint(2 ** 50)])).toEqual([
      expect.stringMatching(/^1:1: rule count: 1125899906842624 declared, only 0 bytes left/),
    ]);
    // an IP set declaring 2^40 ranges
    expect(huge([1, 0, 6, 1, 0, 0, 1, 0, 0, 0, 0, 0])).toEqual([
      expect.stringMatching(/^1:5: IP range count: 1099511627776 declared/),
    ]);
    // a trie with 2^40 bitmap words
    expect(huge([1, 0, 2, 0, 0, ...uvarint(2 ** 40)])).toEqual([
      expect.stringMatching(/^1:6: domain matcher bitmap: 1099511627776 declared/),
    ]);
    // a varint that never ends, an unknown item
    expect(huge([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).toEqual([
      expect.stringMatching(/^1:1: rule count: a varint longer than 10 bytes/),
    ]);
    expect(huge([1, 0, 99])).toEqual([expect.stringMatching(/^1:3: unknown rule item type 99/)]);
  });

  it('a trie that is no trie (a child before its parent, edges without labels) is damage', () => {
    const set = succinctSet(['ab', 'c']);
    const body = (s: Buffer) => Buffer.from([1, 0, 2, ...s, 0xff, 0]);
    // labels cut short: more edges than labels
    const short = Buffer.from(set);
    short[short.length - 4] = 2; // the labels' length byte: 3 → 2
    const r = readWith(srsReader, srs(body(short.subarray(0, short.length - 1))));
    expect(r.errors).toEqual([expect.stringMatching(/the domain trie has more edges than labels/)]);
    // a bitmap of all ones: every node closed at once, labels left over
    const ones = Buffer.from(set);
    ones.fill(0xff, 11, 19);
    expect(readWith(srsReader, srs(body(ones))).errors).toEqual([
      expect.stringMatching(/the domain trie has labels no edge uses/),
    ]);
  });

  it('past maxEntries: one error and the reader stops', () => {
    const names = Array.from({ length: 30 }, (_, i) => `n${i}.example`);
    const r = readWith(
      srsReader,
      srs([{ items: [{ domainKeys: matcherKeys([], names, false) }] }]),
      { maxEntries: 10 },
    );
    expect(r.entries.length).toBeLessThanOrEqual(10);
    expect(r.errors).toEqual([expect.stringMatching(/more names than maxEntries \(10\) allows/)]);
    // a small trie under the cap, followed by more entries than allowed: counted across items
    const r2 = readWith(
      srsReader,
      srs([
        {
          items: [
            { domainKeys: matcherKeys([], names.slice(0, 8), false) },
            { keyword: ['a', 'b', 'c'] },
          ],
        },
      ]),
      { maxEntries: 10 },
    );
    expect(r2.entries).toHaveLength(10);
    expect(r2.errors).toEqual([expect.stringMatching(/more than 10 entries \(maxEntries\)/)]);
  });

  it('truncated at every offset: never a throw, always an error when something is missing', () => {
    for (const f of ['srs/vernette-telegram.srs', 'srs/sing-geoip-ad.srs']) {
      const b = sample(f);
      for (let i = 0; i < b.length; i++)
        expect(readWith(srsReader, b.subarray(0, i)).errors.length).toBeGreaterThan(0);
    }
    const inner = srsBody([
      {
        items: [
          { domainKeys: matcherKeys([], ['a.example'], false) },
          {
            ipRanges: [
              [
                [1, 2, 3, 4],
                [1, 2, 3, 9],
              ],
            ],
          },
        ],
      },
    ]);
    for (let i = 0; i < inner.length; i++) {
      const cut = Buffer.concat([Buffer.from('SRS\x02'), deflateSync(inner.subarray(0, i))]);
      expect(readWith(srsReader, cut).errors.length, `cut at ${i}`).toBeGreaterThan(0);
    }
  });
});

describe('geosite', () => {
  it('the excerpt’s categories, found ignoring case, with every kind', () => {
    const tg = readWith(geositeReader, sample(SITE), { category: 'TeLeGrAm' });
    expect(tg.problems).toEqual([]);
    expect(tg.kinds).toEqual({ domain: 21 });
    expect(tg.values('domain')).toContain('telegram.org');
    expect(tg.entries[0]!.at).toEqual({ line: 1, col: 3008, offset: 3007 });
    const gp = readWith(geositeReader, sample(SITE), { category: 'google-play' });
    expect(gp.kinds).toEqual({ domain: 7, full: 1, regex: 2 });
    expect(gp.values('full')).toEqual(['redirector.c.play.google.com']);
    expect(readWith(geositeReader, sample(SITE), { category: 'openai' }).kinds).toEqual({
      domain: 13,
      full: 9,
      regex: 1,
    });
  });

  it('@attr keeps the domains that carry it; @!cn is the attribute !cn; @a@b needs both', () => {
    const s = (category: string) => readWith(geositeReader, sample(SITE), { category });
    expect(s('category-speedtest').kinds).toEqual({ domain: 73, full: 2, regex: 1 });
    expect(s('category-speedtest@ADS').kinds).toEqual({ regex: 1 });
    expect(s('category-speedtest@cn').kinds).toEqual({ domain: 17 });
    expect(s('category-speedtest@!cn').values('full')).toEqual([
      'hk-global-bgp.hkg.speedtest.yecaoyun.com',
    ]);
    expect(s('category-speedtest@cn@ads').errors).toEqual([
      '1:1: no domain of category-speedtest carries @cn and @ads; its attributes: @!cn, @ads, @cn',
    ]);
    expect(s('openai@').errors).toEqual(['1:1: category "openai@": an empty @attribute']);
  });

  it('no category, or one that is not there: an error naming what there is, close names first', () => {
    expect(readWith(geositeReader, sample(SITE)).errors).toEqual([
      '1:1: a geosite file holds categories; name one (FILE.dat:CATEGORY or category:) — category-speedtest, google-play, openai, telegram',
    ]);
    expect(readWith(geositeReader, sample(SITE), { category: 'telegramm' }).errors).toEqual([
      '1:1: no category "telegramm" in this geosite file; it has telegram, category-speedtest, google-play, openai',
    ]);
  });

  it('looking for a close name stays cheap: a long category against many long codes', () => {
    // Past 64 characters only containment makes a name close, never the edit distance, which
    // is quadratic (this file through it: half a minute on a loaded machine). Asserted on what
    // is offered, not on a time: a code one letter off the category would be offered first.
    const oneOff = 'y'.repeat(999) + 'z';
    const codes = Buffer.concat([
      ...Array.from({ length: 2000 }, (_, i) =>
        geositeEntry(`C${i}`.padEnd(1000, 'x'), [{ type: 2, value: 'a.example' }]),
      ),
      geositeEntry(oneOff, [{ type: 2, value: 'a.example' }]),
    ]);
    const r = readWith(geositeReader, codes, { category: 'y'.repeat(1000) });
    // nothing close: the names in order, c0xxx… first
    expect(r.errors).toEqual([
      expect.stringMatching(/^1:1: no category "y{1000}" in this geosite file; it has c0x{998}, /),
    ]);
  });

  it('unknown domain types and empty values are refused at their item', () => {
    const dat = geositeEntry('X', [
      { type: 7, value: 'a.example' },
      { type: 2, value: '' },
      { type: 2, value: 'b.example' },
    ]);
    const r = readWith(geositeReader, dat, { category: 'x' });
    expect(r.values('domain')).toEqual(['b.example']);
    expect(r.errors).toEqual([
      '1:6: domain type 7 is not one v2ray knows (byte 5)',
      '1:21: a domain without a value (byte 20)',
    ]);
  });

  it('a declared length past the end, a group, a truncation anywhere: located, never thrown', () => {
    const entry = geositeEntry('X', [{ type: 2, value: 'a.example' }]);
    const inflated = Buffer.concat([
      Buffer.from([0x0a]),
      Buffer.from(uvarint(2 ** 40)),
      entry.subarray(2),
    ]);
    expect(readWith(geositeReader, inflated, { category: 'x' }).errors).toEqual([
      expect.stringMatching(
        /^1:2: field 1: 1099511627776 bytes declared, only \d+ left \(byte 1\)$/,
      ),
    ]);
    expect(readWith(geositeReader, Buffer.from([0x0b, 0x0c]), { category: 'x' }).errors).toEqual([
      '1:1: field 1: wire type 3 is not used here (byte 0)',
    ]);
    const b = sample(SITE);
    for (let i = 0; i < b.length; i += 7)
      readWith(geositeReader, b.subarray(0, i), { category: 'telegram' });
  });

  it('probe: the samples are told apart; text and damaged starts are neither', () => {
    expect(probeDat(sample(SITE))).toEqual({ kind: 'geosite' });
    expect(probeDat(sample(IP))).toEqual({ kind: 'geoip' });
    expect(probeDat(Buffer.from('\n#comment\nexample.org\n'))).toMatchObject({
      offset: expect.any(Number),
    });
    expect(probeDat(sample('sing-box/vernette-telegram.json'))).toMatchObject({
      why: expect.any(String),
    });
    expect(probeDat(Buffer.concat([pb.bytes(1, pb.bytes(1, 'bad code')), sample(SITE)]))).toEqual({
      why: 'an entry without a printable category name',
      offset: 0,
    });
  });
});

describe('geoip', () => {
  it('the excerpt: AD and PRIVATE, prefixes of both families', () => {
    const ad = readWith(geoipReader, sample(IP), { category: 'ad' });
    expect(ad.problems).toEqual([]);
    expect(ad.kinds).toEqual({ address: 263 });
    expect(ad.values('address')).toContain('85.94.160.0/19');
    expect(ad.values('address').filter((a) => a.includes(':'))).toHaveLength(124);
    const priv = readWith(geoipReader, sample(IP), { category: 'PRIVATE' });
    expect(priv.values('address')).toEqual(expect.arrayContaining(['10.0.0.0/8', 'fc00::/7']));
    expect(priv.kinds).toEqual({ address: 18 });
  });

  it('refused: reverse_match, a reversed category, attributes, bad addresses and prefixes', () => {
    const rev = geoipEntry('R', [[[10, 0, 0, 0], 8]], true);
    expect(readWith(geoipReader, rev, { category: 'r' }).errors).toEqual([
      expect.stringMatching(/^1:\d+: r: reverse_match is set/),
    ]);
    expect(readWith(geoipReader, sample(IP), { category: '!ad' }).errors).toEqual([
      '1:1: category !ad: a reversed category is every address outside ad; a list cannot take that',
    ]);
    expect(readWith(geoipReader, sample(IP), { category: 'ad@x' }).errors).toEqual([
      '1:1: category ad@x: geoip categories have no @attributes',
    ]);
    const bad = geoipEntry('B', [
      [[10, 0, 0], 8],
      [[10, 0, 0, 0], 33],
      [[192, 0, 2, 0], 24],
    ]);
    const r = readWith(geoipReader, bad, { category: 'b' });
    expect(r.values('address')).toEqual(['192.0.2.0/24']);
    expect(r.errors).toEqual([
      '1:6: a CIDR whose address is 3 bytes (4 or 16) (byte 5)',
      '1:15: 10.0.0.0/33: a prefix longer than the address (byte 14)',
    ]);
  });
});

describe('parseListBytes with a category', () => {
  it('FILE.dat:CATEGORY reads the category; a host-bits prefix is refused by the grammar', () => {
    const r = parseListBytes(sample(IP), 'geoip.dat', { category: 'private' });
    expect(r.format).toBe('geoip');
    expect(r.issues).toEqual([]);
    expect(r.set.v6.length).toBe(4);
    const hb = parseListBytes(geoipEntry('H', [[[10, 0, 0, 1], 8]]), 'h.dat', { category: 'h' });
    expect(hb.issues.map((i) => i.message)).toEqual([
      '10.0.0.1/8 has host bits set; it means 10.0.0.0/8',
    ]);
  });

  it('a category on a file that is no .dat, or with another format: refused where the probe stopped', () => {
    const r = parseListBytes(Buffer.from('example.org\n'), 'l.dat', { category: 'x' });
    expect(r.issues.map((i) => [i.line, i.col])).toEqual([[1, 1]]);
    expect(r.issues[0]!.message).toMatch(
      /^names a category \(:x\), but is not a v2ray geosite or geoip \.dat file/,
    );
    const f = parseListBytes(Buffer.from('example.org\n'), 'l', { category: 'x', format: 'plain' });
    expect(f.issues[0]!.message).toBe(
      'a category (:x) is for geosite and geoip lists; this one is plain',
    );
  });

  it('binary content in no format is one error, not a hundred lines of noise', () => {
    const r = parseListBytes(Buffer.from([0x0a, 0x05, 0, 1, 2, 3, 4, 0xff]), 'junk.bin');
    expect(r.issues.map((i) => i.message)).toEqual([
      expect.stringMatching(/^binary content in none of the list formats/),
    ]);
  });
});
