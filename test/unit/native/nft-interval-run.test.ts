import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AwgError } from '../../../src/errors.js';
import {
  NFT_MSG_DELSETELEM,
  NFT_MSG_NEWSETELEM,
  buildSetElemBatch,
  intervalElements,
  intervalRun,
  restampBatch,
  type Elements,
} from '../../../src/native/nftset.js';
import { oneInterval, type RawElement } from '../../../src/native/nft-elements.js';

/**
 * The encoding before the fast path: each element through nft-elements.ts's per-element code
 * (one Buffer and one object per key), which the fast path never runs for the plain forms.
 */
const oracleIntervalElements = (elements: readonly string[]): RawElement[] =>
  elements.flatMap((e) => oneInterval(e));

const hex = (els: Elements, then?: Elements): string => {
  const b = buildSetElemBatch(
    NFT_MSG_DELSETELEM,
    'inet',
    'awg',
    'd4_x',
    els,
    7,
    99,
    false,
    then ? { cmd: NFT_MSG_NEWSETELEM, elements: then } : undefined,
  );
  return Buffer.concat(b.msgs).toString('hex') + ' ' + b.acked.join(',');
};

/** the outcome of encoding `list`: its error (class, kind, message) or nothing */
function outcome(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return `${(e as Error).constructor.name} ${(e as AwgError).kind} ${(e as Error).message}`;
  }
}

const pad = (s: string, to: number): string => s.padStart(to, '0');
const v4Text = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.constantFrom(0, 0xffffffff, 0xffffff00, 1),
    ),
    fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }),
    fc.boolean(),
  )
  .map(([n, widths, padded]) =>
    [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
      .map((p, i) => (padded ? pad(String(p), widths[i]!) : String(p)))
      .join('.'),
  );

const group = fc.oneof(
  fc.constant(0),
  fc.constant(0xffff),
  fc.integer({ min: 0, max: 0xffff }),
  fc.integer({ min: 0, max: 15 }),
);
/** an IPv6 address in every textual form: full, zero-padded, mixed case, `::` anywhere, dotted tail */
const v6Text = fc
  .tuple(
    fc.array(group, { minLength: 8, maxLength: 8 }),
    fc.integer({ min: 0, max: 8 }),
    fc.integer({ min: 0, max: 8 }),
    fc.constantFrom('plain', 'padded', 'upper', 'compressed', 'dotted'),
  )
  .map(([g, from, span, form]) => {
    const zeroFrom = Math.min(from, 8);
    const zeroTo = Math.min(8, zeroFrom + span);
    const gs = g.map((v, i) => (i >= zeroFrom && i < zeroTo ? 0 : v));
    const h = gs.map((v) => (form === 'padded' ? pad(v.toString(16), 4) : v.toString(16)));
    if (form === 'upper') return h.join(':').toUpperCase();
    if (form === 'dotted') {
      const t = gs.slice(6);
      return `${h.slice(0, 6).join(':')}:${t[0]! >> 8}.${t[0]! & 255}.${t[1]! >> 8}.${t[1]! & 255}`;
    }
    if (form === 'compressed' && zeroTo > zeroFrom)
      return `${h.slice(0, zeroFrom).join(':')}::${h.slice(zeroTo).join(':')}`;
    return h.join(':');
  });

const ends = fc.constantFrom(
  '0.0.0.0',
  '255.255.255.255',
  '0.0.0.0/0',
  '255.255.255.255/32',
  '0.0.0.0-255.255.255.255',
  '::',
  '::/0',
  'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128',
  'ffff::/16',
  '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  '::ffff:1.2.3.4',
  '::ffff:1.2.3.4/120',
  '::1',
  '1::',
);

const element = (addr: fc.Arbitrary<string>, maxLen: number): fc.Arbitrary<string> =>
  fc.oneof(
    addr,
    fc.tuple(addr, fc.integer({ min: 0, max: maxLen + 2 })).map(([a, l]) => `${a}/${l}`),
    fc.tuple(addr, fc.constantFrom('0', '00', '000', '')).map(([a, l]) => `${a}/${l}`),
    fc.tuple(addr, addr).map(([a, b]) => `${a}-${b}`),
  );

/** strings near the grammar: most are malformed */
const noise = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABG:./-'.split('')), maxLength: 24 }),
  fc
    .tuple(fc.oneof(v4Text, v6Text), fc.integer({ min: 0, max: 40 }), fc.string({ maxLength: 2 }))
    .map(([a, at, s]) => a.slice(0, at) + s + a.slice(at)),
);

const anyElement = fc.oneof(
  { weight: 4, arbitrary: element(v4Text, 32) },
  { weight: 4, arbitrary: element(v6Text, 128) },
  { weight: 2, arbitrary: ends },
  { weight: 2, arbitrary: noise },
);

describe('intervalRun against the previous encoding (nft-elements.ts oneInterval per element)', () => {
  it('gives the same batch bytes, or the same error, for any element list', () => {
    fc.assert(
      fc.property(fc.array(anyElement, { maxLength: 30 }), (raw) => {
        const want = outcome(() => oracleIntervalElements(raw));
        expect(outcome(() => intervalRun(raw))).toBe(want);
        expect(outcome(() => intervalElements(raw))).toBe(want);
        // the list without its malformed elements: the batches
        const list = raw.filter((e) => outcome(() => oracleIntervalElements([e])) === undefined);
        const old = oracleIntervalElements(list);
        expect(hex(intervalRun(list))).toBe(hex(old));
        expect(intervalElements(list)).toEqual(old);
        // a delta: deletions, then additions, one batch
        const removed = list.slice(1);
        expect(hex(intervalRun(removed), intervalRun(list))).toBe(
          hex(oracleIntervalElements(removed), old),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('each single element, valid or not, as the previous encoding had it', () => {
    fc.assert(
      fc.property(anyElement, (e) => {
        const want = outcome(() => oracleIntervalElements([e]));
        expect(
          outcome(() => intervalRun([e])),
          e,
        ).toBe(want);
        if (want === undefined)
          expect(hex(intervalRun([e])), e).toBe(hex(oracleIntervalElements([e])));
      }),
      { numRuns: 5000 },
    );
  });

  it('splits a long run over messages as the objects are split', () => {
    const list = Array.from(
      { length: 20_000 },
      (_, i) => `10.${i >> 8}.${i & 255}.0/${24 + (i % 8)}`,
    ).concat(Array.from({ length: 3000 }, (_, i) => `2001:db8:${i.toString(16)}::/48`));
    const b = buildSetElemBatch(NFT_MSG_NEWSETELEM, 'inet', 't', 's', intervalRun(list), 1, 5);
    expect(b.msgs.length).toBeGreaterThan(4);
    expect(hex(intervalRun(list))).toBe(hex(oracleIntervalElements(list)));
  });
});

describe('restampBatch', () => {
  it('gives the bytes of a batch built with the new seq and port', () => {
    const list = Array.from({ length: 5000 }, (_, i) => `192.0.${i >> 8}.${i & 255}`);
    const args = [NFT_MSG_NEWSETELEM, 'inet', 'awg', 'd4_x', intervalRun(list)] as const;
    const moved = restampBatch(buildSetElemBatch(...args, 10, 1, true), 500, 4242);
    const built = buildSetElemBatch(...args, 500, 4242, true);
    expect(Buffer.concat(moved.msgs).equals(Buffer.concat(built.msgs))).toBe(true);
    expect(moved.acked).toEqual(built.acked);
  });
});

it('AwgError invalid-config for malformed elements, as before', () => {
  for (const bad of ['1.2.3', '10.0.0.0/33', '::1::', '2001:db8::/129', '10.0.0.9-10.0.0.1'])
    expect(() => intervalRun([bad])).toThrow(AwgError);
});
