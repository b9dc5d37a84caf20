/**
 * Step 18: destination lists. A 100,000-line list (mixed /24–/32 IPv4, IPv6 /48 and hosts,
 * domains and wildcards) is parsed and merged into interval sets; the domain matcher answers
 * one DNS name per lookup in O(labels) whatever the list size. Cold = the first run in this
 * process (what `awg validate` pays), warm = the median after it.
 *
 * Step 21: the same at registry scale, memory and the DNS path included (bench/lists-scale.ts).
 *
 * Step 24: a one-line edit of a list of addresses whose entries share no address (an
 * aggregated blocklist: /24s and /64s, adjacent ones merging) parsed from the previous parse
 * (config/list-increment.ts: a line inserted, removed, replaced) against the full parse of the
 * edited bytes, the anchor, in the same run. Each edit must take the short path: the smoke
 * fails when one is declined (parsed whole), whatever the timing.
 */
import { parseListBytes } from '../src/config/list-formats/index.js';
import { parseEdited } from '../src/config/list-increment.js';
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
  out.push(...(await editBench(n, runs)));
  out.push(...(await listsScaleBench(smoke)));
  return out;
}

/** `n` address lines that share no address: IPv4 /24s (runs of them adjacent) and IPv6 /64s */
function disjointLines(n: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < n; i++)
    lines.push(
      i % 5 === 0
        ? `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::/64`
        : `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`,
    );
  return lines;
}

async function editBench(n: number, runs: number): Promise<Sample[]> {
  const lines = disjointLines(n);
  const bytes = (ls: string[]) => Buffer.from(ls.join('\n') + '\n');
  const before = bytes(lines);
  const base = parseListBytes(before, 'bench.txt');
  if (base.issues.length)
    throw new Error(`the edit bench's list has issues: ${base.issues[0]!.message}`);
  const mid = n >> 1;
  const edits: [string, Buffer][] = [
    ['a line inserted', bytes([...lines.slice(0, mid), '192.0.2.0/24', ...lines.slice(mid)])],
    ['a line removed', bytes([...lines.slice(0, mid), ...lines.slice(mid + 1)])],
    ['a line replaced', bytes([...lines.slice(0, mid), '192.0.2.0/24', ...lines.slice(mid + 1)])],
  ];
  const out: Sample[] = [];
  for (const [what, after] of edits) {
    if (!parseEdited(base, before, after, 'bench.txt', {}))
      throw new Error(`${what}: the edit was parsed whole, not from the previous parse`);
    out.push(
      await measure(
        `${n.toLocaleString('en')} disjoint address lines, ${what}: from the previous parse`,
        runs,
        () => parseEdited(base, before, after, 'bench.txt', {}),
      ),
    );
    out.push(
      await measure(`  anchor: the full parse of the same edited list`, runs, () =>
        parseListBytes(after, 'bench.txt'),
      ),
    );
  }
  return out;
}
