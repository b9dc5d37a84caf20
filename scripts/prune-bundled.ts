/**
 * Removes from an installed app's node_modules what no code there can load (scripts/build-deb.sh
 * runs it after `npm ci --omit=dev`): the packages esbuild bundled into dist/bundle/ (zod, yaml,
 * commander, xstate, picomatch: their code is in the bundle's chunks) unless the bundle still
 * imports them at run time or another installed package depends on them, and packages that hold
 * no code at all (type declarations such as @types/node, which protobufjs lists as a dependency).
 *
 * Usage: tsx scripts/prune-bundled.ts <bundle.meta.json> <app dir>   (prints what it removed)
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

/** esbuild's metafile, the parts read here */
export interface BundleMeta {
  inputs: Record<string, unknown>;
  outputs: Record<string, { imports: { path: string; external?: boolean }[] }>;
}

/** One package directory under node_modules (nested ones included). */
export interface InstalledPackage {
  name: string;
  dir: string;
  /** dependencies, optionalDependencies and peerDependencies, by name */
  needs: string[];
  /** it has a file other than type declarations, documentation, licences and package.json */
  hasCode: boolean;
}

/** `zod` of `…/node_modules/zod/v4/core/core.js`, `@noble/hashes` of `…/node_modules/@noble/hashes/x.js`, or undefined. */
export function packageOfPath(path: string): string | undefined {
  const m = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
  return m?.[1];
}

/** the package a bare import specifier names (`yaml`, `@grpc/grpc-js/build/x`), or undefined (relative, node:) */
export function packageOfSpecifier(spec: string): string | undefined {
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('node:')) return undefined;
  return spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
}

/** files that are no code: declarations, documentation, licences, manifests */
const NOT_CODE =
  /(\.d\.[cm]?ts|\.d\.ts\.map|\.md|\.markdown|\.txt)$|(^|\/)(licen[cs]e|notice|authors|changelog|readme)[^/]*$|(^|\/)package\.json$/i;

function hasCode(dir: string): boolean {
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    if (f.split('/').includes('node_modules') || NOT_CODE.test(f)) continue;
    if (statSync(join(dir, f)).isFile()) return true;
  }
  return false;
}

/** every package directory below `nodeModules`, nested node_modules too */
export function installedPackages(nodeModules: string): InstalledPackage[] {
  const out: InstalledPackage[] = [];
  const visit = (nm: string) => {
    let entries: string[];
    try {
      entries = readdirSync(nm);
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.startsWith('.')) continue;
      const dirs = e.startsWith('@')
        ? readdirSync(join(nm, e)).map((s) => join(nm, e, s))
        : [join(nm, e)];
      for (const dir of dirs) {
        let pkg: {
          name?: string;
          dependencies?: object;
          optionalDependencies?: object;
          peerDependencies?: object;
        };
        try {
          pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as typeof pkg;
        } catch {
          continue;
        }
        const needs = [pkg.dependencies, pkg.optionalDependencies, pkg.peerDependencies].flatMap(
          (d) => Object.keys(d ?? {}),
        );
        out.push({ name: pkg.name ?? relative(nm, dir), dir, needs, hasCode: hasCode(dir) });
        visit(join(dir, 'node_modules'));
      }
    }
  };
  visit(nodeModules);
  return out;
}

/**
 * The top-level packages to remove: those without code (nothing there can be loaded, whoever
 * lists them), and those the bundle holds and does not import at run time, unless a package that
 * stays needs them (by name, whatever the version: conservative). Pure but for `installed`.
 */
export function removable(
  meta: BundleMeta,
  installed: InstalledPackage[],
  nodeModules: string,
): InstalledPackage[] {
  const bundled = new Set(
    Object.keys(meta.inputs)
      .map(packageOfPath)
      .filter((p): p is string => p !== undefined),
  );
  const external = new Set(
    Object.values(meta.outputs)
      .flatMap((o) => o.imports)
      .filter((i) => i.external)
      .map((i) => packageOfSpecifier(i.path))
      .filter((p): p is string => p !== undefined),
  );
  const topLevel = installed.filter((p) => relative(nodeModules, p.dir) === p.name);
  const gone = new Set(
    topLevel.filter((p) => !p.hasCode || (bundled.has(p.name) && !external.has(p.name))),
  );
  for (let changed = true; changed;) {
    changed = false;
    const needed = new Set(
      installed.filter((p) => !gone.has(p) && !isBelowAny(p, gone)).flatMap((p) => p.needs),
    );
    for (const p of gone)
      if (p.hasCode && needed.has(p.name)) {
        gone.delete(p);
        changed = true;
      }
  }
  return [...gone];
}

/** `p` lives inside the directory of one of `set` (a nested node_modules of a removed package) */
function isBelowAny(p: InstalledPackage, set: Set<InstalledPackage>): boolean {
  for (const q of set) if (p.dir.startsWith(q.dir + '/')) return true;
  return false;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [metaFile, app] = process.argv.slice(2);
  if (!metaFile || !app)
    throw new Error('usage: tsx scripts/prune-bundled.ts <bundle.meta.json> <app dir>');
  const nodeModules = join(app, 'node_modules');
  const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as BundleMeta;
  const gone = removable(meta, installedPackages(nodeModules), nodeModules);
  for (const p of gone) rmSync(p.dir, { recursive: true, force: true });
  console.log(
    `prune-bundled: removed ${
      gone
        .map((p) => p.name)
        .sort()
        .join(', ') || 'nothing'
    }`,
  );
}
