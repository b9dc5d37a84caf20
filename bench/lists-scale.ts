/**
 * Step 21: lists at registry scale (part of `npm run bench -- --only=lists`). Two lists made
 * by bench/lists-gen.ts — a registry mirror of 600,000 domains (`--smoke`: 100,000) and a
 * Re:filter-shaped one (≈ 40,000 domains + 40,000 IPv4 prefixes) — are measured for:
 *
 * - parse + load (parseListBytes, the loader's call): warm in this process (median of the
 *   runs) and cold in fresh processes (median of the children);
 * - memory, in fresh processes (bench/lists-child.ts, `--expose-gc`): what the loaded set
 *   keeps — V8 heap + external (the store's Buffers) and RSS, both settled as the daemon
 *   settles after a run (a full collection, then malloc_trim), per 100,000 names — and the
 *   peak RSS (VmHWM) of the process that loaded it;
 * - match throughput: matchDomain over listed and unlisted names (2–5 labels), and the same
 *   misses with 1,000 keywords and 1,000 regexes in the rule (their linear scan);
 * - the DNS answer latency awg adds: `A` queries, one at a time, to a dnsmasq on loopback
 *   directly (the anchor, measured in the same run) and through the DNS stub holding the list
 *   as a rule's domains (its kernel side faked: bench/lists-child.ts), and through a stub
 *   holding one name (what the path costs whatever the list); listed and unlisted names,
 *   interleaved query by query, median and p99. Skipped without `dnsmasq` (scripts/setup.sh
 *   installs dnsmasq-base).
 *
 * The smoke asserts one generous ceiling: the retained heap + external memory of 100,000
 * registry names (≈ 3 MiB; the string arrays and Sets before Step 21 kept ≈ 8).
 */
import { spawn, execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseListBytes } from '../src/config/list-formats/index.js';
import { mergeDestinations, parseInlineDestinations } from '../src/config/lists.js';
import { buildQuery } from '../src/util/dns-wire.js';
import { measure, median, percentile, time, type Sample } from './lib.js';
import { registryList, refilterList, rng } from './lists-gen.js';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const CHILD = join(ROOT, 'bench/lists-child.ts');
/** retained heap + external per 100,000 registry names that fails the smoke */
const SMOKE_CEILING_MIB = 6;

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const fmt = (n: number) => n.toLocaleString('en');

interface MemoryReport {
  parseMs: number;
  before: { rss: number; heapUsed: number; external: number };
  after: { rss: number; heapUsed: number; external: number };
  maxRss: number;
  names: number;
  storeBytes: number;
  v4: number;
  entries: number;
}

function memoryChild(file: string): MemoryReport {
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', CHILD, 'memory', file],
    { cwd: ROOT, encoding: 'utf8' },
  );
  return JSON.parse(out.trim().split('\n').pop()!) as MemoryReport;
}

const sample = (name: string, unit: string, runs: number[], note?: string): Sample => ({
  name,
  unit,
  runs,
  median: median(runs),
  note,
});

async function listSamples(
  label: string,
  text: string,
  file: string,
  runs: number,
  children: number,
): Promise<{ out: Sample[]; reports: MemoryReport[] }> {
  writeFileSync(file, text);
  const bytes = Buffer.from(text);
  const out: Sample[] = [];
  out.push(
    await measure(`${label}: parse + load, warm (in this process)`, runs, () =>
      parseListBytes(bytes, file),
    ),
  );
  const reports = Array.from({ length: children }, () => memoryChild(file));
  const r0 = reports[0]!;
  const per = 100_000 / r0.names;
  const what = `${fmt(r0.entries)} entries → ${fmt(r0.names)} names${r0.v4 ? `, ${fmt(r0.v4)} IPv4 intervals` : ''}`;
  out.push(
    sample(
      `${label}: parse + load, cold (fresh process)`,
      'ms',
      reports.map((r) => r.parseMs),
      what,
    ),
  );
  const kept = (r: MemoryReport) =>
    r.after.heapUsed + r.after.external - r.before.heapUsed - r.before.external;
  out.push(
    sample(
      `${label}: retained heap + external`,
      'MiB',
      reports.map(kept),
      `the name store ${(r0.storeBytes / 2 ** 20).toFixed(2)} MiB of it`,
    ),
  );
  out.push(
    sample(
      `${label}: retained RSS`,
      'MiB',
      reports.map((r) => r.after.rss - r.before.rss),
    ),
  );
  // per 100,000 names where the list is names only (RSS: settled, as the daemon after a run)
  if (r0.v4 === 0)
    out.push(
      sample(
        `${label}: retained heap + external per 100,000 names`,
        'MiB',
        reports.map((r) => kept(r) * per),
        `RSS ${median(reports.map((r) => (r.after.rss - r.before.rss) * per)).toFixed(2)} MiB per 100,000`,
      ),
    );
  out.push(
    sample(
      `${label}: peak RSS of the process (load included)`,
      'MiB',
      reports.map((r) => r.maxRss),
      `RSS before the load ${r0.before.rss.toFixed(1)} MiB`,
    ),
  );
  return { out, reports };
}

/** names to query: listed ones (some one label deeper) and unlisted ones */
function queryNames(text: string, n: number): { listed: string[]; unlisted: string[] } {
  const r = rng(99);
  const entries = text.split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('*'));
  const listed: string[] = [];
  const unlisted: string[] = [];
  for (let i = 0; i < n; i++) {
    const e = entries[r() % entries.length]!;
    listed.push(r() % 3 === 0 ? `cdn${r() % 50}.${e}` : e);
    unlisted.push(`q${i}.${['unlisted-example', 'cdn-nowhere', 'mail-other'][i % 3]}.com`);
  }
  return { listed, unlisted };
}

async function matchSamples(text: string, runs: number, lookups: number): Promise<Sample[]> {
  const { set } = parseListBytes(Buffer.from(text), 'registry.txt');
  const { listed, unlisted } = queryNames(text, 1000);
  const out: Sample[] = [];
  for (const [what, names] of [
    ['listed', listed],
    ['unlisted', unlisted],
  ] as const)
    out.push(
      await measure(`${fmt(lookups)} matchDomain, ${what} names`, runs, () => {
        let hits = 0;
        for (let i = 0; i < lookups; i++) if (set.domains.matchDomain(names[i % 1000]!)) hits++;
        if (hits > 0 !== (what === 'listed')) throw new Error(`${what}: ${hits} hits`);
      }),
    );
  // a geosite-like rule: the names plus 1,000 keywords and 1,000 regexes, all tried on a miss
  const extra = parseInlineDestinations(
    Array.from({ length: 1000 }, (_, i) => [
      `keyword:kw${i}x`,
      `regexp:^ad${i}\\.[a-z]+\\d*$`,
    ]).flat(),
    'domains',
    '',
    '',
  ).set;
  const both = mergeDestinations([set, extra]).domains;
  const n = Math.max(1, lookups / 100);
  out.push(
    await measure(
      `${fmt(n)} matchDomain, unlisted names, with 1,000 keywords + 1,000 regexps`,
      runs,
      () => {
        for (let i = 0; i < n; i++) if (both.matchDomain(unlisted[i % 1000]!)) throw new Error();
      },
    ),
  );
  return out;
}

// ---- DNS latency ----

function startDnsmasq(port: number) {
  return spawn(
    'dnsmasq',
    [
      '-k',
      '-C',
      '/dev/null',
      `-p${port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--address=/#/198.51.100.7',
      '--local-ttl=300',
      '--pid-file=',
      '--log-facility=-',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
}

/** one A query at a time; the answer's latency in ms (Infinity: no answer in 2 s) */
class Client {
  private pending: ((m: Buffer) => void) | undefined;
  private id = 0;
  private constructor(private readonly s: Socket) {
    s.on('message', (m) => {
      if (this.pending && m.readUInt16BE(0) === this.id) this.pending(m);
    });
  }
  static async open(): Promise<Client> {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    return new Client(s);
  }
  async ask(port: number, name: string): Promise<number> {
    this.id = (this.id + 1) & 0xffff;
    const t0 = process.hrtime.bigint();
    const got = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2000);
      this.pending = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    this.s.send(buildQuery(this.id, name, 1), port, '127.0.0.1');
    const ok = await got;
    this.pending = undefined;
    return ok ? Number(process.hrtime.bigint() - t0) / 1e6 : Infinity;
  }
  close(): void {
    this.s.close();
  }
}

async function startStub(file: string, upstream: number) {
  const p = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', CHILD, 'stub', file, String(upstream)],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
    });
    p.on('exit', (code) => reject(new Error(`the stub exited (${code})`)));
  });
  const [, port, memory] = /^ready (\d+) (.*)$/.exec(line) ?? [];
  if (!port) throw new Error(`stub: ${line}`);
  return { p, port: Number(port), rss: (JSON.parse(memory!) as { rss: number }).rss };
}

async function dnsSamples(text: string, dir: string, queries: number): Promise<Sample[]> {
  try {
    execFileSync('dnsmasq', ['--version'], { stdio: 'ignore' });
  } catch {
    console.log('lists: no dnsmasq, the DNS latency is not measured (scripts/setup.sh)');
    return [];
  }
  const client = await Client.open();
  // a random port; another one when it is taken (dnsmasq exits at once)
  let upstream = 0;
  let dnsmasq: ReturnType<typeof startDnsmasq> | undefined;
  for (let i = 0; !dnsmasq; i++) {
    upstream = 20000 + Math.floor(Math.random() * 30000);
    const d = startDnsmasq(upstream);
    const exited = new Promise<boolean>((r) => d.once('exit', () => r(true)));
    // bound within the pause, or gone (the port was taken); a query sent before it binds is lost
    const gone = await Promise.race([exited, sleep(300).then(() => false)]);
    const ok = !gone && (await client.ask(upstream, 'ready.example')) !== Infinity;
    if (ok) dnsmasq = d;
    else if (i > 5) throw new Error('dnsmasq does not start on loopback');
    else d.kill('SIGTERM');
  }
  const one = join(dir, 'one.txt');
  writeFileSync(one, 'one-listed.example\n');
  const stubs: Awaited<ReturnType<typeof startStub>>[] = [];
  try {
    stubs.push(await startStub(join(dir, 'registry.txt'), upstream));
    stubs.push(await startStub(one, upstream));
    const targets = [
      { label: 'dnsmasq directly (the anchor)', port: upstream },
      { label: 'through the stub, the registry list', port: stubs[0]!.port },
      { label: 'through the stub, a one-name list', port: stubs[1]!.port },
    ];
    const { listed, unlisted } = queryNames(text, queries);
    const lat = targets.map(() => ({ listed: [] as number[], unlisted: [] as number[] }));
    const loadBefore = load();
    for (let i = -200; i < queries; i++) {
      // interleaved: every target answers the same name in turn, the order rotating
      for (const kind of ['listed', 'unlisted'] as const) {
        const name = (kind === 'listed' ? listed : unlisted)[Math.max(0, i)]!;
        for (let k = 0; k < targets.length; k++) {
          const t = (((k + i) % targets.length) + targets.length) % targets.length;
          const ms = await client.ask(targets[t]!.port, name);
          if (i >= 0) lat[t]![kind].push(ms);
        }
      }
    }
    const note = `load ${loadBefore} → ${load()}`;
    const out: Sample[] = [];
    targets.forEach((t, k) =>
      (['listed', 'unlisted'] as const).forEach((kind) => {
        const xs = lat[k]![kind];
        const lost = xs.filter((x) => x === Infinity).length;
        out.push({
          name: `DNS A query, ${kind} name: ${t.label}`,
          unit: 'ms',
          runs: xs,
          median: median(xs),
          p90: percentile(xs, 90),
          note: `p99 ${percentile(xs, 99).toFixed(3)} ms over ${fmt(xs.length)} queries${lost ? `, ${lost} unanswered` : ''}; ${note}`,
        });
      }),
    );
    out.push(
      sample(
        'RSS of the stub process: registry list / one name',
        'MiB',
        [stubs[0]!.rss],
        `one name: ${stubs[1]!.rss.toFixed(1)} MiB`,
      ),
    );
    return out;
  } finally {
    for (const s of stubs) s.p.kill('SIGTERM');
    client.close();
    dnsmasq.kill('SIGTERM');
  }
}

export async function listsScaleBench(smoke: boolean): Promise<Sample[]> {
  const n = smoke ? 100_000 : 600_000;
  const runs = smoke ? 1 : 5;
  const dir = mkdtempSync(join(tmpdir(), 'awg-bench-lists-'));
  try {
    const out: Sample[] = [];
    const gen = await time(() => registryList(n));
    const registry = gen.value;
    console.log(
      `lists: generated ${fmt(n)} registry names in ${gen.ms.toFixed(0)} ms; load ${load()}`,
    );
    const reg = await listSamples(
      `registry list, ${fmt(n)} lines (${(registry.length / 1e6).toFixed(1)} MB)`,
      registry,
      join(dir, 'registry.txt'),
      runs,
      smoke ? 1 : 5,
    );
    out.push(...reg.out);
    if (smoke) {
      const r = reg.reports[0]!;
      const mib =
        (r.after.heapUsed + r.after.external - r.before.heapUsed - r.before.external) *
        (100_000 / r.names);
      if (mib > SMOKE_CEILING_MIB)
        throw new Error(
          `lists: 100,000 registry names keep ${mib.toFixed(1)} MiB of heap + external (ceiling ${SMOKE_CEILING_MIB})`,
        );
    }
    const refilter = refilterList();
    out.push(
      ...(
        await listSamples(
          'Re:filter-shaped list',
          refilter,
          join(dir, 'refilter.txt'),
          runs,
          smoke ? 1 : 3,
        )
      ).out,
    );
    out.push(...(await matchSamples(registry, runs, smoke ? 10_000 : 1_000_000)));
    out.push(...(await dnsSamples(registry, dir, smoke ? 200 : 2000)));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
