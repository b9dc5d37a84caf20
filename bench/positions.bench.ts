/**
 * Step 8: a config with many unknown keys is located in linear time. Before: yaml's own
 * unique-key check and a linear search per located path made 20,000 unknown keys cost ~6 s
 * (quadratic); each mapping is now indexed once and duplicates are found with one set per
 * mapping. 40,000 keys must cost about twice 20,000, not four times.
 */
import { loadConfigText } from '../src/config/load.js';
import { measure, type Sample } from './lib.js';

export function unknownKeys(n: number, nested: boolean): string {
  const lines = nested ? ['version: 1', 'routing:'] : ['version: 1'];
  for (let i = 0; i < n; i++) lines.push(`${nested ? '  ' : ''}k${i}: ${i}`);
  return lines.join('\n') + '\n';
}

export async function positionsBench(smoke: boolean): Promise<Sample[]> {
  const runs = smoke ? 1 : 7;
  const sizes = smoke ? [1_000] : [20_000, 40_000];
  const out: Sample[] = [];
  for (const n of sizes) {
    for (const nested of [false, true]) {
      const text = unknownKeys(n, nested);
      out.push(
        await measure(
          `load ${n.toLocaleString('en')} unknown keys (${nested ? 'under routing:' : 'top level'}) → ${n.toLocaleString('en')} located issues`,
          runs,
          () => {
            const r = loadConfigText(text, 'bench.yaml');
            if (r.issues.length !== n)
              throw new Error(`expected ${n} issues, got ${r.issues.length}`);
          },
        ),
      );
    }
  }
  return out;
}
