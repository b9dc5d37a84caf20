/**
 * References from the code to the repository's documents resolve: every `docs/<file>.md`
 * and `bench/RESULTS.md` named in src/ (in a comment or a message) exists, and every
 * `#anchor` after it is a heading of that file (GitHub's slug) or an explicit
 * `<a id="…">`. Links between the documents are held to the same rule. The code cites no
 * design notes kept outside the repository: what it relies on lives in docs/.
 *
 * The tree is read when the test runs (not a fixed list), so a file added or moved later
 * is checked as well.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

function walk(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(rel, ext));
    else if (e.isFile() && e.name.endsWith(ext)) out.push(rel);
  }
  return out.sort();
}

/** GitHub's heading slug: lower case, punctuation dropped, spaces → `-`. */
function githubSlug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text
    .replace(/<[^>]*>/g, '') // inline HTML
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

const anchorCache = new Map<string, Set<string>>();

/** The anchors a markdown file offers: heading slugs (duplicates numbered) and `<a id>`s. */
function anchorsOf(file: string): Set<string> {
  const cached = anchorCache.get(file);
  if (cached) return cached;
  const ids = new Set<string>();
  const seen = new Map<string, number>();
  let fence: string | undefined;
  for (const line of readFileSync(join(root, file), 'utf8').split('\n')) {
    const f = /^\s*(```|~~~)/.exec(line);
    if (f) {
      if (fence === undefined) fence = f[1];
      else if (f[1] === fence) fence = undefined;
      continue;
    }
    if (fence !== undefined) continue;
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) ids.add(m[1]!);
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = githubSlug(h[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    ids.add(n === 0 ? base : `${base}-${n}`);
  }
  anchorCache.set(file, ids);
  return ids;
}

/** Why `file#anchor` does not resolve, or undefined when it does. */
function problem(file: string, anchor: string | undefined): string | undefined {
  if (!existsSync(join(root, file))) return `${file} does not exist`;
  if (anchor === undefined || anchor === '') return undefined;
  if (!anchorsOf(file).has(anchor)) return `${file} has no heading or id "${anchor}"`;
  return undefined;
}

function lineOf(text: string, index: number): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < index; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

const srcFiles = walk('src', '.ts');
// comments in tests, benchmarks and scripts point at the same documents
const codeFiles = [
  ...srcFiles,
  ...walk('test', '.ts'),
  ...walk('bench', '.ts'),
  ...walk('scripts', '.ts'),
];
const docFiles = ['README.md', ...walk('docs', '.md'), 'bench/RESULTS.md'].filter((f) =>
  existsSync(join(root, f)),
);

describe('references to the repository documents', () => {
  it('finds the source tree', () => {
    expect(srcFiles.length).toBeGreaterThan(100);
  });

  it('the code cites no design document kept outside the repository', () => {
    const found: string[] = [];
    for (const f of codeFiles) {
      const text = readFileSync(join(root, f), 'utf8');
      for (const m of text.matchAll(/\b(?:LINUX|PROTOCOL|DESIGN|STYLE)\.md\b/g))
        found.push(`${f}:${lineOf(text, m.index)}: ${m[0]}`);
    }
    expect(found, 'point at the section of docs/ that holds the fact instead').toEqual([]);
  });

  it('every docs/… and bench/RESULTS.md reference in the code resolves', () => {
    const bad: string[] = [];
    let refs = 0;
    for (const f of codeFiles) {
      const text = readFileSync(join(root, f), 'utf8');
      for (const m of text.matchAll(
        /(?<![\w/.-])(docs\/[\w./-]+?\.md|bench\/RESULTS\.md)(?:#([\w-]+))?/g,
      )) {
        refs++;
        const why = problem(m[1]!, m[2]);
        if (why) bad.push(`${f}:${lineOf(text, m.index)}: ${m[0]}: ${why}`);
      }
    }
    expect(bad).toEqual([]);
    expect(refs).toBeGreaterThan(0);
  });

  it('links between the documents resolve', () => {
    const bad: string[] = [];
    for (const f of docFiles) {
      const text = readFileSync(join(root, f), 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]*)\)/g)) {
        const target = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const hash = target.indexOf('#');
        const path = hash < 0 ? target : target.slice(0, hash);
        const anchor = hash < 0 ? undefined : target.slice(hash + 1);
        if (path !== '' && !path.endsWith('.md')) {
          if (!existsSync(join(root, dirname(f), path)))
            bad.push(`${f}:${lineOf(text, m.index)}: ${target}: no such file`);
          continue;
        }
        const file = path === '' ? f : relative(root, normalize(join(root, dirname(f), path)));
        const why = problem(file, anchor);
        if (why) bad.push(`${f}:${lineOf(text, m.index)}: ${target}: ${why}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('slugs follow GitHub', () => {
    expect(githubSlug("The data plane's fast paths")).toBe('the-data-planes-fast-paths');
    expect(githubSlug('UAPI: the engine’s configuration socket')).toBe(
      'uapi-the-engines-configuration-socket',
    );
    expect(githubSlug('SO_ORIGINAL_DST')).toBe('so_original_dst');
    expect(githubSlug('`engine: kernel` — Linux’s WireGuard module')).toBe(
      'engine-kernel--linuxs-wireguard-module',
    );
    expect(githubSlug('Proxy tunnels (SOCKS5, HTTP CONNECT)')).toBe(
      'proxy-tunnels-socks5-http-connect',
    );
  });
});
