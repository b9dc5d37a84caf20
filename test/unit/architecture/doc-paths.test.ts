/**
 * docs/architecture.md's map matches the tree: every repository path it names exists, and every
 * module it names by file name alone (`files.ts`, `linux-drivers.ts`) is a file somewhere under
 * src/. Placeholders (`src/resources/<kind>/linux.ts`) and globs are not paths.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOC = 'docs/architecture.md';
const TOP = [
  'src',
  'test',
  'bench',
  'scripts',
  'docs',
  'eslint',
  'bin',
  'proto',
  'schema',
  'share',
  'examples',
];

function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' });
}

/** Repository paths named in a markdown text (prose, tables and code blocks alike). */
export function namedPaths(text: string): string[] {
  const re = new RegExp(`(?<![\\w./-])(?:${TOP.join('|')})/[\\w./<>*-]*[\\w>*]`, 'g');
  const found = new Set<string>();
  for (const m of text.matchAll(re)) {
    const p = m[0].replace(/\.$/, '');
    if (/[<>*]/.test(p)) continue;
    found.add(p);
  }
  return [...found].sort();
}

/** Module file names written alone in backticks: `files.ts`, `flow-router-host.ts`. */
export function namedModules(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/`([\w-]+\.(?:ts|js|mjs))`/g)) found.add(m[1]!);
  return [...found].sort();
}

describe(DOC, () => {
  const text = readFileSync(join(ROOT, DOC), 'utf8');

  it('names only paths that exist', () => {
    const paths = namedPaths(text);
    expect(paths.length).toBeGreaterThan(30);
    expect(paths.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });

  it('names only modules that exist somewhere in the tree', () => {
    const names = new Set(
      ['src', 'bin', 'scripts', 'eslint'].flatMap((d) =>
        filesUnder(d).map((f) => f.split('/').pop()!),
      ),
    );
    const modules = namedModules(text);
    expect(modules.length).toBeGreaterThan(10);
    expect(modules.filter((m) => !names.has(m))).toEqual([]);
  });

  it('the path reader sees what it should (and no placeholders)', () => {
    expect(
      namedPaths('see src/util/paths.ts, `src/resources/<kind>/linux.ts` and docs/fleet.md.'),
    ).toEqual(['docs/fleet.md', 'src/util/paths.ts']);
    expect(namedModules('the `files.ts` module and `a.json`')).toEqual(['files.ts']);
  });
});

describe('the other documents', () => {
  it('README.md and every page of docs/ name only repository paths that exist', () => {
    const pages = [
      'README.md',
      ...filesUnder('docs')
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
    ];
    const missing = pages.flatMap((page) =>
      namedPaths(readFileSync(join(ROOT, page), 'utf8'))
        .filter((p) => !existsSync(join(ROOT, p)))
        .map((p) => `${page}: ${p}`),
    );
    expect(missing).toEqual([]);
  });
});

describe(`${DOC}: who reads process.platform`, () => {
  it('every module of src/ that reads process.platform is in the table of the Layers section', () => {
    const text = readFileSync(join(ROOT, DOC), 'utf8');
    const section = text.slice(
      text.indexOf('## Layers'),
      text.indexOf('### The model is OS-neutral'),
    );
    const readers = filesUnder('src')
      .filter((f) => f.endsWith('.ts'))
      .filter((f) => /process\.platform/.test(readFileSync(join(ROOT, 'src', f), 'utf8')));
    expect(readers.length).toBeGreaterThan(3);
    const named = (f: string) =>
      section.includes(`src/${f}`) || section.includes(`\`${f.split('/').pop()}\``);
    expect(readers.filter((f) => !named(f))).toEqual([]);
  });
});

describe('module paths named in the code', () => {
  it('every src/ module a comment or message of the code names exists', () => {
    const layers =
      'cli|config|daemon|dataplane|model|native|pipeline|platform|procs|proxy|reconciler|resources|util';
    const re = new RegExp(`(?<![\\w./-])(?:src/)?((?:${layers})/[\\w/-]+\\.ts)\\b`, 'g');
    const code = ['src', 'test', 'bench', 'scripts'].flatMap((d) =>
      filesUnder(d)
        .filter((f) => f.endsWith('.ts'))
        .map((f) => `${d}/${f}`)
        // the layer tests lint scratch modules that do not exist on purpose
        .filter((f) => !f.startsWith('test/unit/architecture/')),
    );
    const missing: string[] = [];
    let seen = 0;
    for (const f of code) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      for (const m of text.matchAll(re)) {
        seen++;
        if (!existsSync(join(ROOT, 'src', m[1]!)) && !existsSync(join(ROOT, f, '..', m[1]!)))
          missing.push(`${f}: ${m[0]}`);
      }
    }
    expect(seen).toBeGreaterThan(50);
    expect(missing).toEqual([]);
  });
});
