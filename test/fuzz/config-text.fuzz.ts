/**
 * Fuzz targets of the config front end's text readers: the YAML loader (src/config/load.ts)
 * and the wg-quick INI importer (src/config/ini.ts, import/).
 *
 * config/yaml-text      arbitrary YAML-ish text and edits of the valid fixtures → loadConfigText
 *                       never throws, every error is located inside the text, a returned
 *                       config is what zod returns for the parsed document.
 * config/ini-text       arbitrary INI-ish text and edits of the import fixtures → importWgQuick
 *                       never throws or reports an internal error, positions point into the
 *                       text, and an import without errors loads without errors.
 *
 * The documents near the schema are fuzzed in config-document.fuzz.ts, what the engine and
 * the exporter make of them in config-engine.fuzz.ts.
 */
import { describe, expect, it } from 'vitest';
import { importWgQuick } from '../../src/config/import/index.js';
import { parseIni, splitList } from '../../src/config/ini.js';
import { hasErrors, loadConfigText } from '../../src/config/load.js';
import { Config } from '../../src/config/schema.js';
import {
  applyEdits,
  cidr,
  corpus,
  edits,
  endpoint,
  lineCount,
  nastyString,
  wgKey,
} from './arbitraries.js';
import { expectLocated, FILE, tagString } from './config-arbitraries.js';
import { fc, fuzzSync, testTimeout } from './runner.js';

// ---------------------------------------------------------------------------------------
// Text generators

const yamlToken = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      'version: 1',
      'tunnels:',
      'rules:',
      'peers:',
      'type: wireguard',
      'type: amneziawg',
      'obfuscation:',
      'i1: <r 5>',
      'addresses: [10.0.0.2/32]',
      'allowedIPs: [0.0.0.0/0]',
      'privateKey: { file: k }',
      'publicKey: X8fMsm0V8OL6NWsUDcwE7TDoddctfOVCUdLJBOT5x0E=',
      'match: { name: x }',
      'target: vpn',
      'default: vpn',
      'killSwitch: on',
      '- ',
      '  ',
      '    ',
      ': ',
      '? ',
      '{',
      '}',
      '[',
      ']',
      ', ',
      '&a ',
      '*a',
      '<<: *a',
      '!!str ',
      '!!binary ',
      '!tag ',
      "'",
      '"',
      '"\\u0000"',
      '# c',
      '|',
      '>-',
      '---',
      '...',
      '%YAML 1.2',
      '%TAG ! tag:x:',
      '__proto__: 1',
      'constructor: 1',
      '\t',
      '\n',
      '\r\n',
      '\n  ',
      '\n- ',
      'vpn:',
      'x: &a [*a]',
      'a: &a {b: *a}',
    ),
  },
  { weight: 2, arbitrary: nastyString },
);
const yamlText = fc.array(yamlToken, { maxLength: 40 }).map((t) => t.join(''));

/** `[*a, *a, …]` nested: the alias-expansion bomb shape. */
const aliasBomb = fc.integer({ min: 1, max: 12 }).map((depth) => {
  const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i <= depth; i++)
    lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
  return `version: 1\n${lines.join('\n')}\n`;
});

const yamlCorpus = [
  ...corpus(new URL('../fixtures/valid/', import.meta.url), '.yaml'),
  ...corpus(new URL('../../examples/', import.meta.url), '.yaml'),
];
const yamlInput = fc.oneof(
  { weight: 3, arbitrary: yamlText },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.constantFrom(...yamlCorpus), edits).map(([t, e]) => applyEdits(t, e)),
  },
  { weight: 1, arbitrary: aliasBomb },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
);

const iniCorpus = corpus(new URL('../fixtures/import/valid/', import.meta.url), '.conf');
const iniLine = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '[Interface]',
      '[Peer]',
      '[ interface ]',
      '[PEER]',
      '[Other]',
      '[',
      '',
    ),
  },
  {
    weight: 8,
    arbitrary: fc
      .tuple(
        fc.constantFrom(
          'PrivateKey',
          'PublicKey',
          'PresharedKey',
          'Address',
          'DNS',
          'MTU',
          'ListenPort',
          'AllowedIPs',
          'Endpoint',
          'PersistentKeepalive',
          'Table',
          'FwMark',
          'PostUp',
          'SaveConfig',
          'Jc',
          'Jmin',
          'Jmax',
          'S1',
          'S2',
          'S3',
          'S4',
          'H1',
          'H2',
          'H3',
          'H4',
          'I1',
          'I5',
          'J1',
          'ITime',
          'HeaderProtectionKey',
          'RandomTrailers',
          'DisableCookies',
          'RekeyTimeout',
          'ContentPaddingAddition',
          'AdvancedSecurity',
          '__proto__',
          'constructor',
          'toString',
          '',
        ),
        fc.oneof(
          wgKey,
          cidr,
          endpoint,
          fc.nat({ max: 70000 }).map(String),
          tagString,
          nastyString,
          fc.array(cidr, { maxLength: 3 }).map((l) => l.join(', ')),
        ),
        fc.constantFrom(' = ', '=', ' =', '\t=\t', ' = ', ' == '),
        fc.constantFrom('', ' # c', '#', ' #x = y'),
      )
      .map(([k, v, eq, c]) => `${k}${eq}${v}${c}`),
  },
  { weight: 1, arbitrary: fc.constantFrom('# comment', '   ', 'garbage', '= x', '\t') },
  { weight: 1, arbitrary: nastyString },
);
const iniText = fc
  .tuple(fc.array(iniLine, { maxLength: 24 }), fc.constantFrom('\n', '\r\n', '\r'), fc.boolean())
  .map(([l, nl, bom]) => (bom ? '\uFEFF' : '') + l.join(nl));
const iniInput = fc.oneof(
  { weight: 3, arbitrary: iniText },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom(...iniCorpus), edits).map(([t, e]) => applyEdits(t, e)),
  },
  { weight: 1, arbitrary: fc.constantFrom(...iniCorpus) },
);

// ---------------------------------------------------------------------------------------

describe('fuzz: config', () => {
  it(
    'config/yaml-text: arbitrary text never crashes the loader; errors are located',
    { timeout: testTimeout(2) },
    () => {
      fuzzSync('config/yaml-text', 2, [yamlInput], (text) => {
        const r = loadConfigText(text, FILE);
        expectLocated(r.issues, text, false);
        if (r.config) {
          expect(hasErrors(r.issues)).toBe(false);
          // what was returned is a fixed point of the schema
          expect(Config.parse(structuredClone(r.config))).toEqual(r.config);
        } else expect(hasErrors(r.issues)).toBe(true);
      });
    },
  );

  it(
    'config/ini-text: the importer never throws; positions are in the text; an import without errors loads',
    { timeout: testTimeout(2) },
    () => {
      fuzzSync(
        'config/ini-text',
        2,
        [iniInput, fc.constantFrom('wg0.conf', 'my vpn.conf', '.conf', 'direct.conf')],
        (text, file) => {
          const { doc } = parseIni(text, file);
          const src = text.replace(/^\uFEFF/, '');
          const lines = src.split(/\r\n|\n|\r/);
          for (const s of doc.sections) {
            expect(lines[s.line - 1]!.slice(s.col - 1).startsWith('[')).toBe(true);
            for (const e of s.entries) {
              const l = lines[e.line - 1]!;
              expect(
                l
                  .slice(e.col - 1)
                  .replace(/\s+/g, '')
                  .startsWith(e.key),
              ).toBe(true);
              if (e.raw !== '') expect(l.slice(e.valueCol - 1).startsWith(e.raw)).toBe(true);
              for (const item of splitList(e))
                expect(l.slice(item.col - 1).startsWith(item.value[0]!)).toBe(true);
            }
          }
          const r = importWgQuick(text, { file });
          expect(
            r.issues.filter((i) => i.message.startsWith('internal error')),
            'internal error',
          ).toEqual([]);
          expectLocated(r.issues, text, false);
          expect(r.ok).toBe(!hasErrors(r.issues));
          if (r.ok) {
            const loaded = loadConfigText(r.yaml, 'imported.yaml');
            expect(
              loaded.issues.filter((i) => i.severity === 'error'),
              r.yaml,
            ).toEqual([]);
            expect(lineCount(r.yaml)).toBeGreaterThan(1);
          }
        },
      );
    },
  );
});
