import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { sourceWorker, sourceWorkerEntry } from '../../../src/util/source-worker.js';

const POOL_WORKER = new URL('../../../src/dataplane/crypto/pool-worker.ts', import.meta.url);

describe('source workers: a TypeScript entry bundled once, started as the package starts its own', () => {
  it('bundles the entry and the sources it imports; packages and built-ins stay imports; one file per content', () => {
    const url = sourceWorkerEntry(POOL_WORKER);
    expect(url.protocol).toBe('file:');
    expect(fileURLToPath(url)).toMatch(
      /node_modules\/\.cache\/awg-workers\/pool-worker-[0-9a-f]{16}\.mjs$/,
    );
    expect(sourceWorkerEntry(POOL_WORKER).href).toBe(url.href);
    const code = readFileSync(url, 'utf8');
    const imports = [...code.matchAll(/^import[^'"]*from\s*["']([^"']+)["']/gm)].map((m) => m[1]!);
    expect(imports.length).toBeGreaterThan(0);
    // no relative import: every source is in the file (nothing for a TypeScript loader to do)
    for (const spec of imports) expect(spec).toMatch(/^(node:|koffi$)/);
    expect(code).toContain('receiveMessageOnPort');
  });

  it('a thread started from it runs, under the heap limits the package gives it, and exits', async () => {
    // no workerData: the entry's module loads and does nothing (pool-worker.ts's last line)
    const w = sourceWorker(POOL_WORKER, {
      stdout: false,
      stderr: false,
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 1 },
    });
    const online = new Promise<void>((r) => w.once('online', () => r()));
    const code = await new Promise<number>((resolve, reject) => {
      w.once('error', reject);
      w.once('exit', resolve);
    });
    await online;
    expect(code).toBe(0);
  });
});
