/**
 * Step 6 benchmark: the transparent proxy in front of real proxies, against curl talking to
 * the same proxy directly (`--socks5-hostname`-less `--socks5` / `--proxy`), in the same run.
 *
 * Topology (test/netns/proxy-env.ts): client ns C → proxy ns S (microsocks :1080, tinyproxy
 * :8888) → target ns T (Node HTTP server). In C a bench nft table redirects TCP to
 * T:8080 that does not carry the bypass mark to the transparent proxy (proxy-harness.ts, a
 * child in C); the proxy's own sockets carry the bypass mark. Direct baselines use curl's
 * proxy options to the same proxy, so the only difference is our hop.
 *
 * Measures per upstream (socks5, http): download throughput of 256 MiB, latency of a small
 * GET (median of 20 requests per run), both medians over `runs` runs; and the proxy process's
 * RSS with 1,000 concurrent idle connections (through microsocks).
 */
import { spawn } from 'node:child_process';
import { median, type Sample } from './lib.js';
import {
  BYPASS,
  HTTP_PORT,
  MASK,
  REDIRECT_PORT,
  S4,
  T4,
  createTopology,
  curl,
  destroyTopology,
  startHarness,
  startProxies,
  startTarget,
  stopHarnesses,
  type Harness,
} from '../test/netns/proxy-env.js';
import { netnsPath, nsExec } from '../test/helpers/netns.js';

const BENCH_TABLE = `table inet awgt_bench {
\tchain out {
\t\ttype nat hook output priority -100; policy accept;
\t\tmeta mark & 0x${MASK.toString(16)} != 0x${BYPASS.toString(16)} ip daddr ${T4} tcp dport ${HTTP_PORT} counter redirect to :${REDIRECT_PORT}
\t}
}
`;

async function curlNumber(ns: string, args: string[], what: string): Promise<number> {
  const r = await curl(ns, args, 120);
  if (r.code !== 0) throw new Error(`${what}: curl exited ${r.code}: ${r.stderr}`);
  return Number(r.body);
}

async function throughput(ns: string, proxyArgs: string[], bytes: number): Promise<number> {
  const bps = await curlNumber(
    ns,
    [
      ...proxyArgs,
      '-o',
      '/dev/null',
      '-w',
      '%{speed_download}',
      `http://${T4}:${HTTP_PORT}/bytes?n=${bytes}`,
    ],
    'throughput',
  );
  return (bps * 8) / 1e6; // Mbit/s
}

async function latencyMs(ns: string, proxyArgs: string[], n: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++)
    xs.push(
      (await curlNumber(
        ns,
        [...proxyArgs, '-o', '/dev/null', '-w', '%{time_total}', `http://${T4}:${HTTP_PORT}/`],
        'latency',
      )) * 1000,
    );
  return median(xs);
}

/** Opens `n` idle connections to T:8080 from C (redirected through the proxy); resolves when all are connected. */
async function holdConnections(ns: string, n: number): Promise<() => Promise<void>> {
  const script = `
const net = require('node:net');
let up = 0; const socks = [];
for (let i = 0; i < ${n}; i++) {
  const s = net.connect(${HTTP_PORT}, '${T4}', () => { if (++up === ${n}) console.log('held'); });
  s.on('error', (e) => { console.error(e.message); process.exit(1); });
  socks.push(s);
}
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  const c = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', process.execPath, '-e', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  c.stdout.on('data', (d: Buffer) => (out += d.toString()));
  c.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const t = setInterval(() => {
      if (out.includes('held')) {
        clearInterval(t);
        resolve();
      } else if (c.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`connection holder failed: ${out}`));
      }
    }, 50);
  });
  return async () => {
    c.stdin.end();
    await new Promise((r) => c.once('exit', r));
  };
}

async function waitActive(h: Harness, n: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await h.stats()).proxy.connections.active >= n) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`proxy never reached ${n} active connections`);
}

function sample(name: string, unit: string, runs: number[], note?: string): Sample {
  return { name, unit, runs, median: median(runs), note };
}

export async function proxyBench(smoke: boolean): Promise<Sample[]> {
  if (process.getuid?.() !== 0)
    throw new Error('the Step 6 benchmark needs root (network namespaces)');
  const runs = smoke ? 1 : 5;
  const bytes = smoke ? 8 * 1024 * 1024 : 256 * 1024 * 1024;
  const pings = smoke ? 3 : 20;
  const idle = smoke ? 50 : 1000;
  const topo = await createTopology();
  try {
    await startTarget(topo.t);
    await startProxies(topo);
    await nsExec(topo.c, 'nft', ['-f', '-'], { input: BENCH_TABLE });
    const out: Sample[] = [];
    const kinds = [
      { kind: 'socks5' as const, port: 1080, direct: ['--socks5', `${S4}:1080`] },
      { kind: 'http' as const, port: 8888, direct: ['-p', '--proxy', `http://${S4}:8888`] },
    ];
    for (const k of kinds) {
      const h = await startHarness(topo.c, {
        listenPort: REDIRECT_PORT,
        upstreams: [{ type: k.kind, server: S4, port: k.port }],
        fallback: 'block',
        bypassMark: BYPASS,
        maxConnections: 4096,
      });
      const tp: number[] = [];
      const td: number[] = [];
      const lp: number[] = [];
      const ld: number[] = [];
      await throughput(topo.c, [], bytes); // warm-up
      for (let i = 0; i < runs; i++) {
        // interleaved so drift hits both sides alike
        tp.push(await throughput(topo.c, [], bytes));
        td.push(await throughput(topo.c, k.direct, bytes));
        lp.push(await latencyMs(topo.c, [], pings));
        ld.push(await latencyMs(topo.c, k.direct, pings));
      }
      out.push(
        sample(
          `${k.kind}: throughput via transparent proxy`,
          'Mbit/s',
          tp,
          `${bytes / 2 ** 20} MiB download`,
        ),
      );
      out.push(sample(`${k.kind}: throughput curl direct to proxy`, 'Mbit/s', td));
      out.push(
        sample(
          `${k.kind}: GET latency via transparent proxy`,
          'ms',
          lp,
          `median of ${pings} per run`,
        ),
      );
      out.push(sample(`${k.kind}: GET latency curl direct to proxy`, 'ms', ld));
      out.push(
        sample(
          `${k.kind}: added latency`,
          'ms',
          lp.map((x, i) => x - ld[i]!),
        ),
      );
      if (k.kind === 'socks5') {
        const rssIdle: number[] = [];
        const rssBase: number[] = [];
        for (let i = 0; i < Math.min(runs, 3); i++) {
          rssBase.push((await h.stats()).rss / 2 ** 20);
          const release = await holdConnections(topo.c, idle);
          await waitActive(h, idle);
          rssIdle.push((await h.stats()).rss / 2 ** 20);
          await release();
          for (let j = 0; j < 600 && (await h.stats()).proxy.connections.active > 0; j++)
            await new Promise((r) => setTimeout(r, 50));
        }
        out.push(sample(`socks5: proxy RSS before the idle connections`, 'MiB', rssBase));
        out.push(
          sample(
            `socks5: proxy RSS with ${idle} idle connections`,
            'MiB',
            rssIdle,
            'whole harness process (Node + tsx)',
          ),
        );
      }
      await h.stop();
    }
    return out;
  } finally {
    await stopHarnesses();
    await destroyTopology(topo);
  }
}
