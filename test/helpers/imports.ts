/** The import graph of src/ (static, type-only, re-exports and literal dynamic imports), by file. */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\s[^'";]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)|^import\s+['"](\.[^'"]+)['"]/gm;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** file (relative to src, `/`-separated) → the src files it imports */
export function importGraph(srcRoot: string): Map<string, Set<string>> {
  const g = new Map<string, Set<string>>();
  const rel = (p: string) => relative(srcRoot, p).split(sep).join('/');
  for (const f of files(srcRoot)) {
    const out = new Set<string>();
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[1] ?? m[2] ?? m[3]!;
      const target = rel(resolve(dirname(f), spec)).replace(/\.js$/, '.ts');
      if (!target.startsWith('..')) out.add(target);
    }
    g.set(rel(f), out);
  }
  return g;
}

/** the folder of a file (`.` for src itself) */
export const folderOf = (file: string): string =>
  file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '.';

/**
 * Folder-level edges between siblings or unrelated folders: an edge between a folder and its
 * own ancestor (`resources` ↔ `resources/route`, a package root and its parts) is not a
 * layering edge and is left out.
 */
export function folderEdges(g: Map<string, Set<string>>): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  const related = (a: string, b: string) =>
    a === b || a === '.' || b === '.' || a.startsWith(b + '/') || b.startsWith(a + '/');
  for (const [f, ts] of g) {
    const a = folderOf(f);
    for (const t of ts) {
      const b = folderOf(t);
      if (related(a, b)) continue;
      if (!edges.has(a)) edges.set(a, new Set());
      edges.get(a)!.add(b);
    }
  }
  return edges;
}

/** strongly connected components with more than one folder (Tarjan) */
export function cycles(edges: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  let i = 0;
  const nodes = new Set([...edges.keys(), ...[...edges.values()].flatMap((s) => [...s])]);
  const visit = (v: string) => {
    index.set(v, i);
    low.set(v, i++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1) out.push(comp.sort());
    }
  };
  for (const n of [...nodes].sort()) if (!index.has(n)) visit(n);
  return out;
}
