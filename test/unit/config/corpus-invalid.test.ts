/**
 * Invalid-config corpus: every file in test/fixtures/invalid/ starts with one or more
 *   # expect: <line>:<col> <path> <message substring | /regex/flags>
 * lines (`-` for an empty path). The loader must report exactly those errors (same count,
 * each matched by position, path and message), never throw, and return no config.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../../src/config/load.js';
import { formatIssue, type Issue } from '../../../src/errors.js';

const dir = resolve(import.meta.dirname, '../../fixtures/invalid');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

interface Expect {
  line: number;
  col: number;
  path: string;
  message: string | RegExp;
}

export function parseExpectations(text: string): Expect[] {
  const out: Expect[] = [];
  for (const l of text.split('\n')) {
    const m = /^# expect: (\d+):(\d+) (\S+) (.+)$/.exec(l);
    if (!m) break;
    const raw = m[4]!;
    const re = /^\/(.*)\/([a-z]*)$/.exec(raw);
    out.push({
      line: Number(m[1]),
      col: Number(m[2]),
      path: m[3] === '-' ? '' : m[3]!,
      message: re ? new RegExp(re[1]!, re[2]) : raw,
    });
  }
  return out;
}

const matches = (e: Expect, i: Issue) =>
  i.line === e.line &&
  i.col === e.col &&
  i.path === e.path &&
  (typeof e.message === 'string' ? i.message.includes(e.message) : e.message.test(i.message));

describe('invalid config corpus', () => {
  it('has at least 40 cases with unique, well-formed names', () => {
    expect(files.length).toBeGreaterThanOrEqual(40);
    for (const f of files) expect(f).toMatch(/^\d{2}-[a-z0-9-]+\.yaml$/);
    const nums = files.map((f) => f.slice(0, 2));
    expect(new Set(nums).size).toBe(nums.length);
  });

  it.each(files)('%s', (f) => {
    const file = join(dir, f);
    const text = readFileSync(file, 'utf8');
    const want = parseExpectations(text);
    expect(want.length, 'file must start with # expect: lines').toBeGreaterThan(0);
    let r: ReturnType<typeof loadConfigText> | undefined;
    expect(() => (r = loadConfigText(text, file))).not.toThrow();
    expect(r!.config).toBeUndefined();
    const errors = r!.issues.filter((i) => i.severity === 'error');
    for (const i of r!.issues) expect(i.file).toBe(file);
    // exact set: every expectation matches a distinct issue and nothing else is reported
    const left = [...errors];
    const missing: string[] = [];
    for (const w of want) {
      const k = left.findIndex((i) => matches(w, i));
      if (k < 0) missing.push(`${w.line}:${w.col} ${w.path || '-'} ${String(w.message)}`);
      else left.splice(k, 1);
    }
    expect({ missing, unexpected: left.map(formatIssue) }).toEqual({ missing: [], unexpected: [] });
    // formatIssue puts the location first
    for (const i of errors)
      expect(formatIssue(i).startsWith(`${file}:${i.line}:${i.col}: `)).toBe(true);
  });
});

describe('loader edge inputs (not expressible as fixture files)', () => {
  it.each([
    ['a truly empty file', ''],
    ['only whitespace', '   \n\n'],
    ['a YAML null document', '~\n'],
    ['a byte-order mark and nothing else', '\uFEFF'],
  ])('%s is one located error, no throw', (_n, text) => {
    const r = loadConfigText(text, 'x.yaml');
    expect(r.config).toBeUndefined();
    expect(r.issues).toEqual([
      {
        file: 'x.yaml',
        line: 1,
        col: 1,
        path: '',
        message: 'the config must be a YAML mapping with at least `version: 1`',
        severity: 'error',
      },
    ]);
  });

  it('multiple YAML documents are rejected, located at the second document', () => {
    const r = loadConfigText('version: 1\n---\nversion: 1\n', 'x.yaml');
    expect(r.config).toBeUndefined();
    expect(r.issues.filter((i) => i.severity === 'error').length).toBeGreaterThan(0);
    expect(r.issues[0]!.line).toBe(2);
  });

  it('binary garbage does not throw', () => {
    const junk = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7919) % 256)).toString(
      'latin1',
    );
    expect(() => loadConfigText(junk, 'x.yaml')).not.toThrow();
    expect(loadConfigText(junk, 'x.yaml').config).toBeUndefined();
  });

  it('the expectation parser itself rejects nothing silently', () => {
    expect(
      parseExpectations('# expect: 3:4 a.b[0] hello world\n# expect: 1:1 - /x+/i\nversion: 1\n'),
    ).toEqual([
      { line: 3, col: 4, path: 'a.b[0]', message: 'hello world' },
      { line: 1, col: 1, path: '', message: /x+/i },
    ]);
  });
});
