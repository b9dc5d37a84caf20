/**
 * Fuzz target of the config loader (src/config/load.ts) on documents near the schema.
 *
 * config/document       JSON documents near the schema (valid ones and ones with a field
 *                       broken) written as YAML → the loader accepts exactly what zod +
 *                       the semantic checks accept, with the same value; every error is located.
 *
 * The documents are config-arbitraries.ts's; arbitrary text is fuzzed in config-text.fuzz.ts.
 */
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { hasErrors, loadConfigText } from '../../src/config/load.js';
import { Config } from '../../src/config/schema.js';
import { checkSemantics } from '../../src/config/semantic.js';
import { nastyString } from './arbitraries.js';
import { document, expectLocated, FILE } from './config-arbitraries.js';
import { fc, fuzzSync, testTimeout } from './runner.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value in a JSON document. */
function paths(
  v: unknown,
  at: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

const breakage: fc.Arbitrary<Json> = fc.oneof(
  nastyString,
  fc.constantFrom<Json>(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    65536,
    4294967296,
    1e21,
    [],
    {},
    [null],
    { file: '' },
    { env: '1X' },
    { min: 5, max: 1 },
  ),
  fc.integer(),
  fc.double(),
);

/** A document with one value replaced, one key removed or one unknown key added. */
const brokenDocument = fc
  .tuple(document, fc.nat(), fc.constantFrom('replace', 'delete', 'add'), breakage, nastyString)
  .map(([doc, n, how, value, key]) => {
    const d = structuredClone(doc) as Record<string, unknown>;
    const ps = paths(d).filter((p) => p.length > 0);
    const p = ps[n % ps.length]!;
    type Node = Record<string | number, unknown>;
    const parent = p.slice(0, -1).reduce<Node>((o, k) => o[k] as Node, d);
    const last = p[p.length - 1]!;
    if (how === 'replace') parent[last] = value;
    else if (how === 'delete') {
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
    } else if (!Array.isArray(parent))
      Object.defineProperty(parent, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return d;
  });

/** What the loader must agree with: zod on the document, then the semantic checks. */
function reference(doc: unknown): Config | undefined {
  const z = Config.safeParse(structuredClone(doc));
  if (!z.success) return undefined;
  return checkSemantics(z.data).some((f) => f.severity === 'error') ? undefined : z.data;
}

function checkDocument(doc: Record<string, unknown>): void {
  const text = YAML.stringify(doc, { lineWidth: 0 });
  const r = loadConfigText(text, FILE);
  expectLocated(r.issues, text, true);
  const ref = reference(doc);
  if (ref === undefined) {
    expect(r.config, 'the loader accepted what zod + semantics refuse').toBeUndefined();
    expect(hasErrors(r.issues)).toBe(true);
  } else {
    expect(
      r.issues.filter((i) => i.severity === 'error'),
      'the loader refused what zod + semantics accept',
    ).toEqual([]);
    expect(r.config).toEqual(ref);
  }
}

describe('fuzz: config', () => {
  it(
    'config/document: the loader accepts exactly what zod + semantic checks accept',
    { timeout: testTimeout(2) },
    () => {
      fuzzSync('config/document', 2, [fc.oneof(document, brokenDocument)], (doc) =>
        checkDocument(doc),
      );
    },
  );
});
