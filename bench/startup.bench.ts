/**
 * Step 12 benchmark: CLI start-up, the bundled build against the unbundled one, alternating in
 * one loop (targets: `awg validate` < 150 ms, `awg diff` of the reference config < 300 ms).
 *
 * - unbundled: this checkout's bin/awg.js running tsc's dist/ (what a clone runs);
 * - bundled: an installed package's layout in a temporary directory (bin/awg.js, dist/bundle/
 *   from scripts/bundle.mjs, this checkout's node_modules), as `npm i -g` or the .deb have it:
 *   once with the compile cache off (AWG_COMPILE_CACHE=0), once with it on (Node 22.1+ only; a
 *   root-only directory of the run's own, warmed by the discarded first round);
 * - on this machine's node and on the official Node 22 and 24 builds (scripts/runtimes.sh; 24 is
 *   the Debian package's runtime; skipped in smoke runs), each with its own `node -e 0` floor;
 * - every command inside the bench namespace via nsenter, where the reference config
 *   (diff.bench.ts) is applied and converged: `diff` exits 0 having observed everything.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { bundledLayout, ensureDist, must, ROOT, sh } from './apply.bench.js';
import { withReferenceApplied } from './diff.bench.js';
import { median, percentile, type Sample } from './lib.js';

export async function startupBench(smoke: boolean): Promise<Sample[]> {
  const runs = smoke ? 1 : 11;
  // dist/ current with this checkout's sources (the unbundled side and the bundle's input):
  // built when older than src/, never rewritten in place when current — CI runs this suite
  // beside the netns tests, whose commands load dist/
  await ensureDist();
  const runtimes = [process.execPath];
  if (!smoke)
    runtimes.push(
      ...(await must('bash', [join(ROOT, 'scripts/runtimes.sh'), '22', '24'])).stdout
        .trim()
        .split('\n')
        .slice(-2),
    );

  return withReferenceApplied(async ({ dir, cfg, stateDir, env, inNs }) => {
    const bundled = await bundledLayout(dir);
    const cache = join(dir, 'compile-cache');
    mkdirSync(cache, { mode: 0o700 });
    const builds = [
      { name: 'unbundled', bin: join(ROOT, 'bin/awg.js'), env: {} },
      { name: 'bundled, no compile cache', bin: bundled, env: { AWG_COMPILE_CACHE: '0' } },
      { name: 'bundled', bin: bundled, env: { AWG_COMPILE_CACHE_DIR: cache } },
    ];
    const commands = [
      { name: 'awg --version', args: ['--version'], code: 0 },
      {
        name: 'awg validate (examples/minimal.yaml)',
        args: ['validate', '-f', join(ROOT, 'examples/minimal.yaml')],
        code: 0,
      },
      { name: 'awg validate (reference config)', args: ['validate', '-f', cfg], code: 0 },
      {
        name: 'awg diff (converged, exit 0)',
        args: ['diff', '-f', cfg, '--state-dir', stateDir],
        code: 0,
      },
    ];
    const times = new Map<string, number[]>();
    const once = async (
      key: string,
      args: string[],
      code: number,
      extra: NodeJS.ProcessEnv,
      keep: boolean,
    ) => {
      const t0 = process.hrtime.bigint();
      const r = await sh('nsenter', inNs(args), { env: { ...env, ...extra } });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.code !== code) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      if (keep) times.set(key, [...(times.get(key) ?? []), ms]);
    };
    const version = async (node: string) => (await must(node, ['--version'])).stdout.trim();
    const labels = await Promise.all(runtimes.map(version));
    const load0 = loadavg()[0]!.toFixed(1);
    // round 0 is discarded: it warms the page cache and fills the compile cache
    for (let round = 0; round <= runs; round++) {
      for (const [ri, node] of runtimes.entries()) {
        await once(`${labels[ri]} node -e 0`, [node, '-e', '0'], 0, {}, round > 0);
        for (const b of builds)
          for (const c of commands)
            await once(
              `${labels[ri]} ${b.name}: ${c.name}`,
              [node, b.bin, ...c.args],
              c.code,
              b.env,
              round > 0,
            );
      }
    }
    const load = `load ${load0} → ${loadavg()[0]!.toFixed(1)}, nsenter + node start-up included`;
    return [...times].map(([name, xs]) => ({
      name,
      unit: 'ms',
      runs: xs,
      median: median(xs),
      p90: percentile(xs, 90),
      note: name.includes('validate')
        ? `target < 150 ms; ${load}`
        : name.includes('diff')
          ? `target < 300 ms; ${load}`
          : load,
    }));
  });
}
