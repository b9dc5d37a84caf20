/** Tiny benchmark helpers: median of several runs, machine description. */
import { cpus, loadavg, totalmem, release } from 'node:os';

export interface Sample {
  name: string;
  unit: string;
  runs: number[];
  median: number;
  p90?: number;
  /** median CPU time (user+system) of this process per run: less sensitive to other load */
  cpuMedian?: number | undefined;
  note?: string | undefined;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export async function time<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, value };
}

export async function measure(
  name: string,
  runs: number,
  fn: () => Promise<unknown> | unknown,
  opts: { warmup?: number; note?: string } = {},
): Promise<Sample> {
  for (let i = 0; i < (opts.warmup ?? 1); i++) await fn();
  const xs: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    xs.push((await time(fn)).ms);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return {
    name,
    unit: 'ms',
    runs: xs,
    median: median(xs),
    p90: percentile(xs, 90),
    cpuMedian: median(cpu),
    note: opts.note,
  };
}

export function machine(): string {
  const c = cpus();
  return `${c.length} x ${c[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}, load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`;
}

export function printSamples(title: string, samples: Sample[]): void {
  console.log(`\n## ${title}`);
  for (const s of samples)
    console.log(
      `${s.name}: median ${s.median.toFixed(2)} ${s.unit}${s.p90 !== undefined ? `, p90 ${s.p90.toFixed(2)}` : ''}${s.cpuMedian !== undefined ? `, CPU ${s.cpuMedian.toFixed(2)} ms` : ''} over ${s.runs.length} runs${s.note ? ` (${s.note})` : ''}`,
    );
}
