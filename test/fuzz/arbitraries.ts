/** Generators shared by the fuzz targets: valid building blocks and hostile variations. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fc } from './runner.js';

export const bytes = (min: number, max: number): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength: min, maxLength: max });

/** A canonical base64 WireGuard key. */
export const wgKey: fc.Arbitrary<string> = bytes(32, 32).map((b) =>
  Buffer.from(b).toString('base64'),
);

export const ipv4: fc.Arbitrary<string> = fc.ipV4();
export const ipv6: fc.Arbitrary<string> = fc.ipV6();

/** Canonical-ish CIDRs as a user writes them. */
export const cidr: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(ipv4, fc.integer({ min: 0, max: 32 })).map(([a, l]) => `${a}/${l}`),
  fc.tuple(ipv6, fc.integer({ min: 0, max: 128 })).map(([a, l]) => `${a}/${l}`),
  ipv4,
  fc.constantFrom('0.0.0.0/0', '::/0', '10.0.0.0/8', 'fd00::/8'),
);

export const hostname: fc.Arbitrary<string> = fc
  .array(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/), { minLength: 1, maxLength: 4 })
  .map((l) => l.join('.'))
  .filter((h) => /[a-z]/.test(h) && h.length <= 253);

export const port: fc.Arbitrary<number> = fc.integer({ min: 1, max: 65535 });

export const endpoint: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(ipv4, port).map(([a, p]) => `${a}:${p}`),
  fc.tuple(ipv6, port).map(([a, p]) => `[${a}]:${p}`),
  fc.tuple(hostname, port).map(([h, p]) => `${h}:${p}`),
);

/** Values people write, and values that break naive parsers. */
export const nastyString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom(
    '',
    ' ',
    '\t',
    '\n',
    '\r\n',
    '\0',
    '\u2028',
    '\uFEFF',
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    'valueOf',
    'NaN',
    'Infinity',
    '-1',
    '-0',
    '0',
    '1e3',
    '0x10',
    '010',
    '4294967295',
    '4294967296',
    '18446744073709551616',
    '9'.repeat(400),
    'true',
    'false',
    'null',
    '~',
    'yes',
    'off',
    '127.0.0.1',
    '::1',
    '[::1]:80',
    '1.2.3.4:0',
    'a'.repeat(300),
    '%s%n',
    '${HOME}',
    '../../etc/shadow',
    '*',
    '&a',
    '!!binary',
  ),
);

/** A strategy of small text edits applied to a valid text. */
export type Edit = { at: number; del: number; ins: string };

export const edits: fc.Arbitrary<Edit[]> = fc.array(
  fc.record({
    at: fc.nat(),
    del: fc.nat({ max: 8 }),
    ins: fc.oneof(
      nastyString,
      fc.constantFrom(
        ':',
        '-',
        ' ',
        '  ',
        '\n',
        '[',
        ']',
        '{',
        '}',
        ',',
        '#',
        '"',
        "'",
        '=',
        '<',
        '>',
        '*',
        '&',
      ),
    ),
  }),
  { minLength: 1, maxLength: 6 },
);

export function applyEdits(text: string, es: Edit[]): string {
  let t = text;
  for (const e of es) {
    const at = t.length === 0 ? 0 : e.at % (t.length + 1);
    t = t.slice(0, at) + e.ins + t.slice(at + e.del);
  }
  return t;
}

/** The text files of a fixture directory (seeds for mutation). */
export function corpus(dir: URL, ext: string): string[] {
  const path = dir.pathname;
  return readdirSync(path)
    .filter((f) => f.endsWith(ext))
    .sort()
    .map((f) => readFileSync(join(path, f), 'utf8'));
}

/** Position (line, col: 1-based) → offset; undefined when outside the text. */
export function offsetOf(text: string, line: number, col: number): number | undefined {
  const lines = text.split(/\r\n|\n|\r/);
  if (line < 1 || line > lines.length) return undefined;
  const l = lines[line - 1]!;
  if (col < 1 || col > l.length + 1) return undefined;
  return col - 1;
}

export function lineCount(text: string): number {
  return text.split(/\r\n|\n|\r/).length;
}
