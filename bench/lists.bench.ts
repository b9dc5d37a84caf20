/**
 * Step 18: destination lists. A 100,000-line list (mixed /24–/32 IPv4, IPv6 /48 and hosts,
 * domains and wildcards) is parsed and merged into interval sets; the domain matcher answers
 * one DNS name per lookup in O(labels) whatever the list size. Cold = the first run in this
 * process (what `awg validate` pays), warm = the median after it.
 *
 * Step 21: the same at registry scale, memory and the DNS path included (bench/lists-scale.ts).
 */
import { mergeDestinations, parseDestinationList } from '../src/config/lists.js';
import { measure, time, type Sample } from './lib.js';
import { listsScaleBench } from './lists-scale.js';

/** a deterministic list of `n` lines: a quarter each of v4 prefixes, v4 hosts, v6, names */
export function syntheticList(n: number): string {
  const lines: string[] = ['# synthetic destination list'];
  for (let i = 0; i < n; i++) {
    const k = i % 8;
    if (k === 0) lines.push(`${10 + (i % 200)}.${(i >> 8) & 255}.${i & 255}.0/24`);
    else if (k === 1) lines.push(`100.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    else if (k === 2) lines.push(`2001:db8:${(i & 0xffff).toString(16)}::/48 # v6`);
    else if (k === 3) lines.push(`2001:db8:ffff::${(i & 0xffff).toString(16)}`);
    else if (k === 4) lines.push(`*.cdn${i}.example${i % 97}.net`);
    else lines.push(`site${i}.example${i % 97}.org`);
  }
  return lines.join('\n') + '\n';
}

export async function listsBench(smoke: boolean): Promise<Sample[]> {
  const n = smoke ? 1_000 : 100_000;
  const runs = smoke ? 1 : 7;
  const text = syntheticList(n);
  const out: Sample[] = [];
  const cold = await time(() => parseDestinationList(text, 'bench.txt'));
  out.push({
    name: `parse ${n.toLocaleString('en')} lines (${(text.length / 1e6).toFixed(1)} MB), cold`,
    unit: 'ms',
    runs: [cold.ms],
    median: cold.ms,
  });
  out.push(
    await measure(`parse ${n.toLocaleString('en')} lines, warm`, runs, () =>
      parseDestinationList(text, 'bench.txt'),
    ),
  );
  const { set } = cold.value;
  out.push(
    await measure(`merge two parsed ${n.toLocaleString('en')}-line sets`, runs, () =>
      mergeDestinations([set, set]),
    ),
  );
  const m = set.domains;
  const names = ['a.b.site13.example13.org', 'x.cdn4.example4.net', 'www.unlisted.example.com'];
  const lookups = smoke ? 1_000 : 1_000_000;
  out.push(
    await measure(`${lookups.toLocaleString('en')} matchDomain lookups (3–5 labels)`, runs, () => {
      let hits = 0;
      for (let i = 0; i < lookups; i++) if (m.matchDomain(names[i % 3]!)) hits++;
      return hits;
    }),
  );
  out.push(...(await listsScaleBench(smoke)));
  return out;
}
