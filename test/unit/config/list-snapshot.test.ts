/**
 * A list's parse kept for the next process (config/list-snapshot.ts, config/parsed-lists.ts):
 * the snapshot gives back the same parse for the same bytes, options and program, and nothing
 * for anything else — another content, version, format or category — nor for a file that is
 * damaged (digest), cut, or hostile (a valid digest over a payload the parser would never give:
 * unsorted or adjacent intervals, bad names, kind bits, duplicates, counts that do not add up,
 * keywords and regexes their parsers refuse). The loader takes a kept parse and keeps new ones.
 */
import { chmodSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DomainSet } from '../../../src/config/domain-set.js';
import { parseListBytes, type ParsedList } from '../../../src/config/list-formats/index.js';
import {
  decodeParsedList,
  encodeParsedList,
  sha256,
  type SnapshotKey,
} from '../../../src/config/list-snapshot.js';
import { loadConfigText } from '../../../src/config/load.js';
import { addressesDisjoint, type DestinationSet } from '../../../src/config/lists.js';
import { PARSED_LISTS_DIR, parsedListsIn } from '../../../src/config/parsed-lists.js';
import type { ParsedListStore } from '../../../src/config/load-destinations.js';
import { REPO_ROOT } from '../../helpers/awg.js';
import { tempDir } from '../../helpers/tmp.js';

const KEY: SnapshotKey = { program: '1.2.3' };
const FIX = join(REPO_ROOT, 'test/fixtures/lists');

const PLAIN = Buffer.from(
  [
    '# a list',
    'example.org',
    '*.example.net',
    'www.example.org # covered',
    'Example.COM.',
    '203.0.113.7',
    '203.0.113.8/31',
    '198.51.100.0/24',
    '2001:db8::/48',
    '2001:db8:1::1',
    '2001:db8:1::2',
    '',
  ].join('\n'),
);

const parse = (bytes: Uint8Array, o: { format?: 'sing-box'; category?: string } = {}) =>
  parseListBytes(bytes, 'list.txt', o);

/** what a parse is, as the loader uses it */
function shape(p: ParsedList) {
  return {
    format: p.format,
    issues: p.issues,
    v4: p.set.v4,
    v6: p.set.v6,
    counts: p.set.counts,
    entries: [...p.set.domains.entries()],
    domainCounts: p.set.domains.counts,
  };
}

/** the snapshot of a hand-made set (a payload the parser never gives), digests right */
function forged(set: Partial<DestinationSet>, list = PLAIN): Buffer {
  const base = parse(list).set;
  const p: ParsedList = { format: 'plain', issues: [], set: { ...base, ...set } };
  return encodeParsedList(p, list, KEY)!;
}

/** `data` with its payload changed by `f` and its payload digest computed again */
function reseal(data: Buffer, f: (payload: Buffer) => Buffer): Buffer {
  const payload = f(Buffer.from(data.subarray(72)));
  return Buffer.concat([data.subarray(0, 40), sha256(payload), payload]);
}

describe('list snapshot: the same parse back', () => {
  it('round-trips a plain list: intervals, counts, domain entries and matching', () => {
    const p = parse(PLAIN);
    expect(p.issues).toEqual([]);
    const back = decodeParsedList(encodeParsedList(p, PLAIN, KEY)!, PLAIN, KEY)!;
    expect(shape(back)).toEqual(shape(p));
    for (const n of [
      'example.org',
      'a.example.org',
      'example.net',
      'x.example.net',
      'example.com',
      'b.example.com',
      'other.org',
    ])
      expect([n, back.set.domains.matchDomain(n), back.set.domains.entryFor(n)]).toEqual([
        n,
        p.set.domains.matchDomain(n),
        p.set.domains.entryFor(n),
      ]);
  });

  it('keeps whether the addresses share none, and refuses a flag that is neither', () => {
    const sharing = Buffer.from('example.org\n10.0.0.0/24\n10.0.0.1\n');
    const shared = parse(sharing);
    const own = Buffer.from('203.0.113.7\n203.0.113.8/31\n2001:db8::/48\n');
    const apart = parse(own);
    expect([addressesDisjoint(shared.set), addressesDisjoint(apart.set)]).toEqual([false, true]);
    const back = (p: ParsedList, b: Buffer) =>
      decodeParsedList(encodeParsedList(p, b, KEY)!, b, KEY)!;
    expect(addressesDisjoint(back(shared, sharing).set)).toBe(false);
    expect(addressesDisjoint(back(apart, own).set)).toBe(true);
    // the flag's byte: where the two snapshots of one list with the flag set and not differ
    const yes = encodeParsedList(apart, own, KEY)!;
    const copy = { ...apart, set: { ...apart.set } }; // a set made otherwise: not known disjoint
    const no = encodeParsedList(copy, own, KEY)!;
    const at = [...yes.subarray(72)].findIndex((v, i) => v !== no[72 + i]);
    expect([yes[72 + at], no[72 + at]]).toEqual([1, 0]);
    const flag = (v: number) =>
      reseal(yes, (p) => {
        const q = Buffer.from(p);
        q[at] = v;
        return q;
      });
    expect(addressesDisjoint(decodeParsedList(flag(0), own, KEY)!.set)).toBe(false);
    expect(decodeParsedList(flag(2), own, KEY)).toBeUndefined();
  });

  it('round-trips every sample list that parses cleanly (each format, keywords and regexes)', () => {
    let n = 0;
    for (const dir of readdirSync(FIX, { withFileTypes: true })) {
      if (!dir.isDirectory()) continue;
      for (const f of readdirSync(join(FIX, dir.name))) {
        const bytes = readFileSync(join(FIX, dir.name, f));
        const p = parse(bytes);
        if (p.issues.length) continue;
        const back = decodeParsedList(encodeParsedList(p, bytes, KEY)!, bytes, KEY);
        expect(back && shape(back), f).toEqual(shape(p));
        n++;
      }
    }
    expect(n).toBeGreaterThan(5);
  });

  it('round-trips keywords and regexes', () => {
    const json = Buffer.from(
      JSON.stringify({
        version: 1,
        rules: [
          {
            domain_keyword: ['tracker', 'ads'],
            domain_regex: ['^ads?\\.', 'x[0-9]+\\.net$'],
            domain: ['a.org'],
          },
        ],
      }),
    );
    const p = parse(json);
    expect(p.issues).toEqual([]);
    expect(p.set.domains.counts.keywords).toBe(2);
    const back = decodeParsedList(encodeParsedList(p, json, KEY)!, json, KEY)!;
    expect(shape(back)).toEqual(shape(p));
    expect(back.set.domains.matchDomain('x12.net')).toBe(true);
    expect(back.set.domains.entryFor('my-tracker.io')).toBe('keyword:tracker');
  });

  it('keeps no parse with issues', () => {
    const bad = Buffer.from('example.org\n203.0.113.1/24\n');
    const p = parse(bad);
    expect(p.issues.length).toBe(1);
    expect(encodeParsedList(p, bad, KEY)).toBeUndefined();
  });
});

describe('list snapshot: nothing for anything else', () => {
  const data = encodeParsedList(parse(PLAIN), PLAIN, KEY)!;

  it('another content, program, format or category', () => {
    expect(
      decodeParsedList(data, Buffer.concat([PLAIN, Buffer.from('192.0.2.1\n')]), KEY),
    ).toBeUndefined();
    expect(decodeParsedList(data, PLAIN, { program: '1.2.4' })).toBeUndefined();
    expect(decodeParsedList(data, PLAIN, { ...KEY, format: 'plain' })).toBeUndefined();
    expect(decodeParsedList(data, PLAIN, { ...KEY, category: 'x' })).toBeUndefined();
    expect(decodeParsedList(data, PLAIN, KEY)).toBeDefined();
  });

  it('a damaged or cut file', () => {
    for (const at of [0, 10, 50, 80, data.length - 1]) {
      const d = Buffer.from(data);
      d[at] = d[at]! ^ 0x40;
      expect(decodeParsedList(d, PLAIN, KEY), `byte ${at}`).toBeUndefined();
    }
    for (const len of [0, 7, 72, 100, data.length - 1])
      expect(decodeParsedList(data.subarray(0, len), PLAIN, KEY), `length ${len}`).toBeUndefined();
    // cut or lengthened with the digest made to fit: the layout does not
    expect(
      decodeParsedList(
        reseal(data, (p) => p.subarray(0, p.length - 3)),
        PLAIN,
        KEY,
      ),
    ).toBeUndefined();
    expect(
      decodeParsedList(
        reseal(data, (p) => Buffer.concat([p, Buffer.from([0])])),
        PLAIN,
        KEY,
      ),
    ).toBeUndefined();
    expect(
      decodeParsedList(
        reseal(data, (p) => p),
        PLAIN,
        KEY,
      ),
    ).toBeDefined();
  });

  it('intervals out of order, overlapping or adjacent', () => {
    const i4 = (start: number, end: number) => ({ start, end });
    for (const v4 of [
      [i4(10, 20), i4(1, 5)],
      [i4(1, 10), i4(5, 20)],
      [i4(1, 10), i4(11, 20)],
      [i4(9, 3)],
    ])
      expect(decodeParsedList(forged({ v4 }), PLAIN, KEY), JSON.stringify(v4)).toBeUndefined();
    const i6 = (start: bigint, end: bigint) => ({ start, end });
    for (const v6 of [[i6(10n, 20n), i6(1n, 5n)], [i6(1n, 10n), i6(11n, 20n)], [i6(3n, 2n)]])
      expect(decodeParsedList(forged({ v6 }), PLAIN, KEY)).toBeUndefined();
    // well formed: used
    expect(decodeParsedList(forged({ v4: [i4(1, 10), i4(12, 20)] }), PLAIN, KEY)).toBeDefined();
  });

  it('counts that do not add up', () => {
    const c = parse(PLAIN).set.counts;
    expect(
      decodeParsedList(forged({ counts: { ...c, entries: c.entries + 1 } }), PLAIN, KEY),
    ).toBeUndefined();
    expect(
      decodeParsedList(forged({ counts: { ...c, redundant: c.redundant + 1 } }), PLAIN, KEY),
    ).toBeUndefined();
    // more intervals than address entries
    expect(
      decodeParsedList(
        forged({ counts: { ...c, cidrs4: 1, entries: c.entries - c.cidrs4 + 1 } }),
        PLAIN,
        KEY,
      ),
    ).toBeUndefined();
  });

  it('domain records the grammar refuses, bad kind bits, duplicates', () => {
    const rec = (name: string, bits = 1) =>
      Buffer.concat([Buffer.from([name.length, bits]), Buffer.from(name, 'latin1')]);
    const domains = (...recs: Buffer[]) =>
      new DomainSet(Buffer.concat(recs), new Uint32Array(2), [], []);
    const ok = parse(PLAIN).set;
    const counted = (d: DomainSet) => ({
      domains: d,
      counts: {
        ...ok.counts,
        entries: ok.counts.cidrs4 + ok.counts.cidrs6 + d.size + ok.counts.redundant,
      },
    });
    for (const d of [
      domains(rec('Example.org')),
      domains(rec('exa mple.org')),
      domains(rec('-a.org')),
      domains(rec('a..org')),
      domains(rec('a.123')),
      domains(rec('a.org', 0)),
      domains(rec('a.org', 3)),
      domains(rec('a.org', 8)),
      domains(rec('a.org'), rec('a.org', 2)),
    ])
      expect(
        decodeParsedList(forged(counted(d)), PLAIN, KEY),
        [...d.entries()].join(),
      ).toBeUndefined();
    const fine = domains(rec('a.org'), rec('b.org', 6), rec('c_d.net', 2));
    const back = decodeParsedList(forged(counted(fine)), PLAIN, KEY);
    expect(back?.set.domains.entryFor('x.c_d.net')).toBe('*.c_d.net');
    // a record running past the end
    const cut = Buffer.concat([rec('a.org'), Buffer.from([9, 1, 0x61])]);
    expect(
      decodeParsedList(forged(counted(new DomainSet(cut, new Uint32Array(2), [], []))), PLAIN, KEY),
    ).toBeUndefined();
  });

  it('keywords and regexes their parsers refuse', () => {
    const ok = parse(PLAIN).set;
    const withExtra = (kw: string[], rx: string[]) => {
      const d = new DomainSet(
        Buffer.alloc(0),
        new Uint32Array(2),
        kw,
        rx.map((source) => ({ source, literal: '', re: { test: () => true } as never })),
      );
      return forged({
        domains: d,
        counts: {
          ...ok.counts,
          entries: ok.counts.cidrs4 + ok.counts.cidrs6 + d.size + ok.counts.redundant,
        },
      });
    };
    expect(decodeParsedList(withExtra(['Ads'], []), PLAIN, KEY)).toBeUndefined();
    expect(decodeParsedList(withExtra(['a d'], []), PLAIN, KEY)).toBeUndefined();
    expect(decodeParsedList(withExtra([''], []), PLAIN, KEY)).toBeUndefined();
    expect(decodeParsedList(withExtra([], ['(a|b']), PLAIN, KEY)).toBeUndefined();
    expect(decodeParsedList(withExtra([], ['']), PLAIN, KEY)).toBeUndefined();
    const back = decodeParsedList(withExtra(['ads'], ['^x\\.']), PLAIN, KEY);
    expect(back?.set.domains.entryFor('x.org')).toBe('regexp:^x\\.');
  });
});

describe('parsed lists in the state directory', () => {
  it('keeps a parse, gives it back for the same bytes only, and never follows a link', () => {
    const dir = tempDir('awg-parsed-');
    const store = parsedListsIn(dir, { program: '1' });
    const file = '/etc/awg/lists/a.txt';
    expect(store.get(file, {}, PLAIN)).toBeUndefined();
    store.put(file, {}, PLAIN, parse(PLAIN));
    // the snapshot and, beside it, the bytes it parsed (an edit's start: list-increment.ts)
    const kept = readdirSync(join(dir, PARSED_LISTS_DIR)).filter((f) => f.endsWith('.bin'));
    expect(kept).toHaveLength(1);
    expect(readFileSync(join(dir, PARSED_LISTS_DIR, kept[0]!.replace(/bin$/, 'list')))).toEqual(
      PLAIN,
    );
    expect(shape(store.get(file, {}, PLAIN)!)).toEqual(shape(parse(PLAIN)));
    expect(store.get(file, { format: 'plain' }, PLAIN)).toBeUndefined();
    expect(store.get('/etc/awg/lists/b.txt', {}, PLAIN)).toBeUndefined();
    expect(parsedListsIn(dir, { program: '2' }).get(file, {}, PLAIN)).toBeUndefined();
    const edited = Buffer.concat([PLAIN, Buffer.from('192.0.2.1\n')]);
    expect(store.get(file, {}, edited)).toBeUndefined();
    // a link in its place is not read
    const path = join(dir, PARSED_LISTS_DIR, kept[0]!);
    const target = join(dir, 'elsewhere.bin');
    writeFileSync(target, readFileSync(path));
    expect(store.get(file, {}, PLAIN)).toBeDefined();
    rmSync(path);
    symlinkSync(target, path);
    expect(store.get(file, {}, PLAIN)).toBeUndefined();
  });

  it('write: false keeps nothing; a directory it cannot write is no error', () => {
    const dir = tempDir('awg-parsed-');
    parsedListsIn(dir, { program: '1', write: false }).put('/a', {}, PLAIN, parse(PLAIN));
    expect(readdirSync(dir)).toEqual([]);
    if (process.getuid?.() !== 0) {
      chmodSync(dir, 0o500);
      expect(() =>
        parsedListsIn(dir, { program: '1' }).put('/a', {}, PLAIN, parse(PLAIN)),
      ).not.toThrow();
      chmodSync(dir, 0o700);
    }
  });
});

describe('the loader and a store', () => {
  const config = `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
    addresses: [10.0.0.2/32]
    peers:
      - publicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
        endpoint: 192.0.2.1:51820
        allowedIPs: [0.0.0.0/0]
rules:
  - name: r
    to: {lists: [a.txt]}
    target: vpn
`;
  const dest = (r: ReturnType<typeof loadConfigText>) => r.config && r.destinations?.get('r');

  it('parses once, keeps it, and the next load takes it (a damaged one: parsed again and rewritten)', () => {
    const dir = tempDir('awg-parsed-');
    const calls: string[] = [];
    const real = parsedListsIn(dir, { program: '1' });
    const store: ParsedListStore = {
      get: (f, o, b) => {
        const got = real.get(f, o, b);
        calls.push(got ? 'hit' : 'miss');
        return got;
      },
      put: (f, o, b, p) => {
        calls.push('put');
        real.put(f, o, b, p);
      },
    };
    const opts = { readList: () => PLAIN, parsedLists: store };
    const first = loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(first.issues.filter((i) => i.severity === 'error')).toEqual([]);
    const second = loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(calls).toEqual(['miss', 'put', 'hit']);
    expect(dest(second)?.v4).toEqual(dest(first)?.v4);
    expect([...dest(second)!.domains.entries()]).toEqual([...dest(first)!.domains.entries()]);
    const [name] = readdirSync(join(dir, PARSED_LISTS_DIR)).filter((f) => f.endsWith('.bin'));
    const path = join(dir, PARSED_LISTS_DIR, name!);
    const d = readFileSync(path);
    d[d.length - 1] = d[d.length - 1]! ^ 1;
    writeFileSync(path, d);
    loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(calls.slice(3)).toEqual(['miss', 'put']);
    loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(calls.slice(5)).toEqual(['hit']);
  });

  it('a list with errors: reported every time, nothing kept', () => {
    const dir = tempDir('awg-parsed-');
    const opts = {
      readList: () => Buffer.from('203.0.113.1/24\n'),
      parsedLists: parsedListsIn(dir, { program: '1' }),
    };
    for (let i = 0; i < 2; i++)
      expect(
        loadConfigText(config, '/cfg/awg.yaml', opts).issues.some((x) => x.severity === 'error'),
      ).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an edit that inserts lines of addresses: parsed from the kept parse, equal to a full parse', () => {
    const dir = tempDir('awg-parsed-');
    const real = parsedListsIn(dir, { program: '1' });
    const calls: string[] = [];
    const store: ParsedListStore = {
      get: (f, o, b) => {
        const got = real.get(f, o, b);
        calls.push(got ? 'hit' : 'miss');
        return got;
      },
      put: (f, o, b, p) => real.put(f, o, b, p),
      base: (f, o) => {
        const got = real.base!(f, o);
        calls.push(got ? 'base' : 'no base');
        return got;
      },
    };
    let bytes: Buffer = PLAIN;
    const opts = { readList: () => bytes, parsedLists: store };
    const full = () => loadConfigText(config, '/cfg/awg.yaml', { readList: () => bytes });
    loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(calls).toEqual(['miss', 'no base']);
    // a line inserted before the IPv4 entries, one appended
    const text = PLAIN.toString();
    bytes = Buffer.from(
      text.replace('203.0.113.7\n', '192.0.2.0/25\n203.0.113.7\n') + '203.0.113.9 # more\n',
    );
    const edited = loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(calls.slice(2)).toEqual(['miss', 'base']);
    const want = dest(full())!;
    expect(dest(edited)?.v4).toEqual(want.v4);
    expect(dest(edited)?.v6).toEqual(want.v6);
    expect(dest(edited)?.counts).toEqual(want.counts);
    expect([...dest(edited)!.domains.entries()]).toEqual([...want.domains.entries()]);
    // kept again: the next load of the same bytes is a hit
    loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(calls.slice(4)).toEqual(['hit']);
    // a line removed and one replaced (the list's addresses share none): from the kept parse
    for (const [from, to] of [
      ['203.0.113.7\n', ''],
      ['198.51.100.0/24\n', '198.51.101.0/24\n'],
    ] as const) {
      bytes = Buffer.from(bytes.toString().replace(from, to));
      const n = calls.length;
      const cut = loadConfigText(config, '/cfg/awg.yaml', opts);
      expect(calls.slice(n)).toEqual(['miss', 'base']);
      const whole = dest(full())!;
      expect([dest(cut)?.v4, dest(cut)?.v6, dest(cut)?.counts]).toEqual([
        whole.v4,
        whole.v6,
        whole.counts,
      ]);
    }
    calls.splice(5);
    // a damaged copy of the bytes: no base (the snapshot's digest of them fails); parsed whole
    const [name] = readdirSync(join(dir, PARSED_LISTS_DIR)).filter((f) => f.endsWith('.list'));
    const copy = join(dir, PARSED_LISTS_DIR, name!);
    writeFileSync(
      copy,
      Buffer.from(readFileSync(copy).toString().replace('203.0.113.9', '203.0.113.8')),
    );
    bytes = Buffer.concat([bytes, Buffer.from('198.18.0.1\n')]);
    const again = loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(calls.slice(5)).toEqual(['miss', 'no base']);
    expect(dest(again)?.v4).toEqual(dest(full())!.v4);
    // an inserted line with an error: parsed whole, the error at its line
    bytes = Buffer.from(bytes.toString().replace('example.org\n', 'example.org\n203.0.113.1/24\n'));
    const bad = loadConfigText(config, '/cfg/awg.yaml', opts);
    expect(calls.slice(7)).toEqual(['miss', 'base']);
    expect(bad.issues.filter((i) => i.severity === 'error')).toEqual(
      full().issues.filter((i) => i.severity === 'error'),
    );
    expect(bad.issues.find((i) => i.severity === 'error')).toMatchObject({ line: 3 });
  });
});
