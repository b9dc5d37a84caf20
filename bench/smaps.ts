/**
 * Where a process's resident memory is: /proc/PID/status (VmRSS, RssAnon, RssFile, threads)
 * and /proc/PID/smaps summed by mapping (the node executable's pages, glibc's heap, anonymous
 * mappings by size class). Used by bench/engine-memory.ts and, with `AWG_BENCH_SMAPS=1`, by
 * bench/dataplane.bench.ts after its throughput runs.
 */
import { readFileSync } from 'node:fs';

export function memoryBreakdown(pid: number, top = 8): string {
  const rss: Record<string, number> = {};
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const kib = (parseInt(m[2]!, 16) - parseInt(m[1]!, 16)) / 1024;
      const size =
        kib >= 1024 ? `${Math.round(kib / 1024)} MiB` : kib > 132 ? '132 KiB–1 MiB' : '≤ 132 KiB';
      name = m[4] ? `${m[4].split('/').pop()!} ${m[3]}` : `anonymous ${m[3]}, ${size}`;
    }
    const r = /^Rss:\s+(\d+)/.exec(line);
    if (r && name) rss[name] = (rss[name] ?? 0) + Number(r[1]);
  }
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1] ?? NaN);
  const mib = (v: number) => (v / 1024).toFixed(1);
  return [
    `VmRSS ${mib(kib('VmRSS'))} MiB = RssAnon ${mib(kib('RssAnon'))} + RssFile ${mib(kib('RssFile'))} + RssShmem ${mib(kib('RssShmem'))}; ${kib('Threads')} threads`,
    ...Object.entries(rss)
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => `  ${mib(v).padStart(5)} MiB  ${k}`),
  ].join('\n');
}
