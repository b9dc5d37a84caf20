/**
 * Step 17 benchmark: GET /api/events (server-sent events) on a real `awg daemon` (the CLI
 * process, real drivers and engine, one WireGuard tunnel, in a network namespace) with 100
 * SSE clients for 10 minutes while events are produced: the config file is edited (a comment
 * line changes) every EDIT_MS, each edit giving `config-changed`, `reconcile-started` and
 * `reconcile-finished` (a no-op run).
 *
 * Measured: the daemon's RSS (/proc/PID/status VmRSS, every 5 s) after a warm-up and its
 * growth to the end; each event's latency (the client's receipt time minus the event's `at`,
 * one clock: the same machine; the clients run in this process, so their own parsing counts
 * too); missed events (every client's ids must run on without a hole: `<run>.<seq>` counts
 * by one; a `gap`, a second snapshot or a stream that ends also count as failures).
 * Goals (issue 42): RSS growth < 10 MiB, latency p99 < 50 ms, no event missed.
 *
 * `npm run bench` (or `npx tsx bench/sse.bench.ts [--smoke] [--minutes=N] [--clients=N]`).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DaemonClient } from '../src/daemon/client.js';
import { socketAnswers } from '../src/daemon/socket.js';
import { openSse, type SseClient } from '../test/helpers/sse.js';
import { ensureDist, must, ROOT, withBenchNetns } from './apply.bench.js';
import { config } from './daemon-api.bench.js';
import { machine, median, percentile, printSamples, type Sample } from './lib.js';

const BIN = join(ROOT, 'bin/awg.js');
const EDIT_MS = 500;

export interface SseBenchOptions {
  clients: number;
  durationMs: number;
  warmupMs: number;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

interface Tracker {
  client: SseClient;
  run: string;
  seq: number;
  events: number;
  missed: number;
  failures: string[];
}

export async function sseBench(smoke: boolean, o?: Partial<SseBenchOptions>): Promise<Sample[]> {
  const opts: SseBenchOptions = {
    clients: o?.clients ?? (smoke ? 10 : 100),
    durationMs: o?.durationMs ?? (smoke ? 5_000 : 600_000),
    warmupMs: o?.warmupMs ?? (smoke ? 1_000 : 60_000),
  };
  await ensureDist();
  return withBenchNetns(async (ns, dir) => {
    await must('ip', ['-n', ns, 'addr', 'add', '10.208.0.2/24', 'dev', 'lo']);
    const cfg = join(dir, 'awg.yaml');
    const base = config();
    writeFileSync(cfg, base);
    const socket = join(dir, 'awg.sock');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWG_CGROUP_ROOT: `awgt-bench-${randomBytes(3).toString('hex')}`,
      AWG_UAPI_DIR: join(dir, 'uapi'),
      AWG_RESOLV_CONF: join(dir, 'resolv.conf'),
      AWG_DNS_MANAGER: 'static',
      NO_COLOR: '1',
    };
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 10.208.0.53\n');
    // nsenter execs node: the child's pid is the daemon's
    const daemon = spawn(
      'nsenter',
      [`--net=/var/run/netns/${ns}`, '--', process.execPath, BIN, 'daemon', '--config', cfg].concat(
        ['--state-dir', join(dir, 'state'), '--socket', socket],
      ),
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    daemon.stdout.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    daemon.stderr.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-20_000)));
    const exited = new Promise<void>((r) => daemon.on('exit', () => r()));
    const trackers: Tracker[] = [];
    let editor: NodeJS.Timeout | undefined;
    try {
      const client = await DaemonClient.open(socket);
      for (let i = 0; ; i++) {
        if (daemon.exitCode !== null)
          throw new Error(`awg daemon exited ${daemon.exitCode}:\n${log}`);
        if ((await socketAnswers(socket)).ok && (await client.status()).state === 'converged')
          break;
        if (i > 600) throw new Error(`awg daemon did not converge in 60 s:\n${log}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      client.close();

      const latencies: number[] = [];
      let measuring = false;
      for (let i = 0; i < opts.clients; i++) {
        const t: Tracker = {
          client: undefined as unknown as SseClient,
          run: '',
          seq: -1,
          events: 0,
          missed: 0,
          failures: [],
        };
        t.client = await openSse(
          socket,
          '/api/events',
          {},
          {
            keep: false,
            onEvent: (e) => {
              const now = Date.now();
              const [run, seqText] = e.lastEventId.split('.');
              const seq = Number(seqText);
              if (e.type === 'snapshot') {
                if (t.seq >= 0) t.failures.push('a second snapshot');
                t.run = run ?? '';
                t.seq = seq;
                return;
              }
              if (!e.hasId) return; // connections / rates: not asked for here
              if (e.type === 'gap') t.failures.push(`gap: ${e.data}`);
              if (run !== t.run) t.failures.push(`another run ${run}`);
              if (seq !== t.seq + 1) t.missed += Math.max(0, seq - t.seq - 1);
              t.seq = seq;
              t.events++;
              if (measuring) {
                const at = Date.parse((JSON.parse(e.data) as { at: string }).at);
                latencies.push(now - at);
              }
            },
          },
        );
        trackers.push(t);
      }
      await Promise.all(trackers.map((t) => t.client.until(() => t.seq >= 0, 'the snapshot')));

      let n = 0;
      const edit = () => {
        // atomic, as an editor saves: the daemon never reads half a file
        writeFileSync(`${cfg}.tmp`, `${base}# edit ${++n}\n`);
        renameSync(`${cfg}.tmp`, cfg);
      };
      editor = setInterval(edit, EDIT_MS);

      await new Promise((r) => setTimeout(r, opts.warmupMs));
      measuring = true;
      const pid = daemon.pid!;
      const rss: number[] = [rssKiB(pid)];
      const t0 = Date.now();
      while (Date.now() - t0 < opts.durationMs) {
        await new Promise((r) => setTimeout(r, Math.min(5_000, opts.durationMs)));
        rss.push(rssKiB(pid));
        if (daemon.exitCode !== null) throw new Error(`awg daemon exited:\n${log}`);
        if (!smoke && rss.length % 12 === 1)
          console.log(
            `sse bench: ${Math.round((Date.now() - t0) / 1000)} s, RSS ${(rss.at(-1)! / 1024).toFixed(1)} MiB, ${latencies.length} deliveries`,
          );
      }
      clearInterval(editor);
      editor = undefined;
      // the last edit's run ends; then every client must stand at the same id
      await new Promise((r) => setTimeout(r, 3_000));
      measuring = false;
      const last = Math.max(...trackers.map((t) => t.seq));
      const behind = trackers.filter((t) => t.seq !== last).length;
      const ended = trackers.filter((t) => t.client.ended).length;
      const missed = trackers.reduce((s, t) => s + t.missed, 0);
      const failures = trackers.flatMap((t) => t.failures);
      const events = trackers.map((t) => t.events);
      const growthKiB = rss.at(-1)! - rss[0]!;
      const maxGrowthKiB = Math.max(...rss) - rss[0]!;
      const p50 = median(latencies);
      const p99 = percentile(latencies, 99);
      const max = latencies.reduce((m, x) => Math.max(m, x), 0);
      const note = `real daemon, ${opts.clients} SSE clients, ${(opts.durationMs / 60_000).toFixed(1)} min after ${opts.warmupMs / 1000} s warm-up, a config edit every ${EDIT_MS} ms (${n} edits), ${median(events)} events per client (median)`;
      const summary = {
        clients: opts.clients,
        edits: n,
        eventsPerClientMedian: median(events),
        deliveries: latencies.length,
        latencyMs: { p50, p99, max },
        rssMiB: {
          afterWarmup: rss[0]! / 1024,
          end: rss.at(-1)! / 1024,
          max: Math.max(...rss) / 1024,
          growth: growthKiB / 1024,
          maxGrowth: maxGrowthKiB / 1024,
        },
        missed,
        behind,
        ended,
        failures: failures.slice(0, 5),
      };
      console.log(`sse bench: ${JSON.stringify(summary)}`);
      if (!smoke && (missed || behind || ended || failures.length))
        throw new Error(`SSE clients missed events: ${JSON.stringify(summary)}`);
      return [
        {
          name: 'event latency (receipt − at), p50',
          unit: 'ms',
          runs: [p50],
          median: p50,
          p90: percentile(latencies, 90),
          note: `${note}; p99 ${p99} ms, max ${max} ms over ${latencies.length} deliveries (goal p99 < 50 ms)`,
        },
        {
          name: 'daemon RSS growth after warm-up',
          unit: 'MiB',
          runs: rss.map((k) => (k - rss[0]!) / 1024),
          median: growthKiB / 1024,
          note: `from ${(rss[0]! / 1024).toFixed(1)} MiB; at most +${(maxGrowthKiB / 1024).toFixed(1)} MiB (goal < 10 MiB)`,
        },
        {
          name: 'missed events (all clients)',
          unit: 'events',
          runs: [missed],
          median: missed,
          note: `${behind} clients behind at the end, ${ended} streams ended, ${failures.length} gaps/restarts (goal 0)`,
        },
      ];
    } finally {
      if (editor) clearInterval(editor);
      for (const t of trackers) void t.client.close();
      daemon.kill('SIGTERM');
      const t = setTimeout(() => daemon.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = (name: string) =>
    process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const smoke = process.argv.includes('--smoke');
  const minutes = arg('minutes');
  const clients = arg('clients');
  console.log(`machine: ${machine()}`);
  printSamples(
    'sse',
    await sseBench(smoke, {
      ...(minutes ? { durationMs: Number(minutes) * 60_000 } : {}),
      ...(clients ? { clients: Number(clients) } : {}),
    }),
  );
}
