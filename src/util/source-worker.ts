/**
 * A worker thread whose entry is one of our TypeScript sources: what tests and benchmarks run
 * (the package's threads start from the bundle's .js entries, scripts/bundle.mjs). The entry
 * and the sources it imports are bundled by esbuild into one ES module under
 * node_modules/.cache/awg-workers/ (packages stay imports, resolved from there), and the thread
 * starts from that file as the package's does: no TypeScript loader in the thread.
 *
 * Why not tsx in the thread (`tsImport` from an eval'd entry, as before): each start compiled
 * its sources in the thread and registered tsx's module hooks again, and from Node 22 a
 * worker's hooks run on the process's one hooks thread. Crypto pool threads started so in CI's
 * unit runs (Node 22 and 24, in an idle CPU cgroup) three times in about fifteen runs never
 * counted themselves in and never failed either: the test waited out its 600 s. Node 20 never
 * did. Not reproduced here (90 starts on Node 22, one and two at a time, in an idle cgroup
 * beside busy loops, all came up), so the cause is not proven; this takes tsx out of the
 * thread, and a thread starts in 73 ms instead of 170 (Node 22, median of 30).
 *
 * Runs where the sources are (dev dependencies installed); the file is named by its content's
 * hash and written once (a temporary file, then a rename: CI's three unit runs share it).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import type * as Esbuild from 'esbuild';

const built = new Map<string, URL>();

/** The bundled entry of a source worker (`entry`: its .ts file), built on first use. */
export function sourceWorkerEntry(entry: URL): URL {
  const known = built.get(entry.href);
  if (known) return known;
  const req = createRequire(import.meta.url);
  const esbuild = req('esbuild') as typeof Esbuild;
  const out = esbuild.buildSync({
    entryPoints: [fileURLToPath(entry)],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    packages: 'external',
    write: false,
    logLevel: 'silent',
  });
  const code = out.outputFiles[0]!.contents;
  const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
  // under node_modules: the file's own imports of packages resolve from there
  const dir = join(dirname(req.resolve('esbuild/package.json')), '..', '.cache', 'awg-workers');
  const file = join(dir, `${basename(fileURLToPath(entry), '.ts')}-${hash}.mjs`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    writeFileSync(tmp, code);
    renameSync(tmp, file);
  }
  const url = pathToFileURL(file);
  built.set(entry.href, url);
  return url;
}

/** A worker thread started from a source entry (its .ts file), bundled as sourceWorkerEntry does. */
export function sourceWorker(entry: URL, opts: WorkerOptions): Worker {
  return new Worker(sourceWorkerEntry(entry), opts);
}
