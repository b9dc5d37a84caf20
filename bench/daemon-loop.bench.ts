/**
 * Step 4 (loop) benchmark, in two namespaces the bench creates (client, peer) joined by a
 * veth; the peer serves three WireGuard tunnels with `awg apply`, the client runs
 * `awg up --json` (dist, with the service unit's Node flags: src/util/node-flags.ts) with the
 * same three tunnels and the default loop settings
 * (debounce 250 ms).
 *
 * - event-to-converged: time from an underlay change (a route on the veth deleted or
 *   added: a no-op reconcile) and from our link taken admin-down (repair: link up + route)
 *   to the daemon's `reconcile-finished` event; reported minus the 250 ms debounce.
 * - RSS of the daemon (VmRSS) with 3 tunnels idle, and while iperf3 pushes TCP through all
 *   three tunnels at once (throughput reported too), and idle again 15 s after the transfers.
 * Each sample twice: the installed package's bundle (what users run) and the checkout's dist/,
 * alternating over two rounds (smoke: the bundle, one round).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, percentile, type Sample } from './lib.js';
import { bundledLayout, ROOT, must, sh } from './apply.bench.js';
import { LONG_RUNNING_NODE_FLAGS } from '../src/util/node-flags.js';
import { ensureDist, wgKeyPair } from '../test/helpers/awg.js';

const DEBOUNCE_MS = 250;
/** how long after the iperf3 transfers the "idle again" RSS is sampled */
const AFTER_TRAFFIC_MS = 15_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// not generateKeyPairSync + export('jwk'): a Node 20 deadlock (test/helpers/awg.ts)
const keyPair = wgKeyPair;

function configs(n: number): { client: string; peer: string } {
  let client = 'version: 1\ntunnels:\n';
  let peer = 'version: 1\ntunnels:\n';
  for (let i = 1; i <= n; i++) {
    const c = keyPair();
    const p = keyPair();
    client += `  t${i}:\n    type: wireguard\n    privateKey: "${c.privateKey}"\n    addresses: [10.200.6${i}.1/24]\n    peers:\n      - publicKey: "${p.publicKey}"\n        endpoint: 10.200.9.2:${51820 + i}\n        allowedIPs: [10.200.6${i}.0/24]\n        persistentKeepalive: 25\n`;
    peer += `  s${i}:\n    type: wireguard\n    privateKey: "${p.privateKey}"\n    addresses: [10.200.6${i}.2/24]\n    listenPort: ${51820 + i}\n    peers:\n      - publicKey: "${c.publicKey}"\n        allowedIPs: [10.200.6${i}.1/32]\n`;
  }
  return { client, peer };
}

interface Ev {
  type: string;
  at: string;
  reason?: string;
  outcome?: string;
  durationMs?: number;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

export async function daemonLoopBench(smoke: boolean): Promise<Sample[]> {
  if (process.getuid?.() !== 0)
    throw new Error('the Step 4 loop benchmark needs root (network namespaces)');
  // dist/ as fresh as this checkout's sources (the checkout's build, and the bundle's input):
  // built only when older than src/, never rewritten in place under a run beside this one
  await ensureDist();
  const dir = mkdtempSync(join(tmpdir(), 'awgt-bench-loop-pkg-'));
  try {
    // what users run (npm i -g, the .deb) is the bundle; a clone runs tsc's dist/: its module
    // sources keep their comments, ≈ 2 MiB more heap. Alternating, the bundle first.
    const builds = [
      { label: 'installed bundle', awg: await bundledLayout(dir) },
      { label: 'checkout dist/', awg: join(ROOT, 'bin/awg.js') },
    ];
    const rounds = smoke ? [builds[0]!] : [...builds, ...builds];
    // one sample per name and build over the rounds: every run, each round's median and note
    const byName = new Map<
      string,
      { first: Sample; runs: number[]; medians: number[]; notes: Set<string> }
    >();
    for (const b of rounds) {
      for (const s of await loopScenario(smoke, b.awg)) {
        const name = `${s.name} (${b.label})`;
        const acc = byName.get(name) ?? {
          first: s,
          runs: [],
          medians: [],
          notes: new Set<string>(),
        };
        acc.runs.push(...s.runs);
        acc.medians.push(s.median);
        if (s.note) acc.notes.add(s.note);
        byName.set(name, acc);
      }
    }
    return [...byName].map(([name, a]) => {
      const note = [
        ...a.notes,
        ...(a.medians.length > 1
          ? [`medians per round: ${a.medians.map((m) => m.toFixed(1)).join(', ')}`]
          : []),
      ].join('; ');
      return {
        ...a.first,
        name,
        runs: a.runs,
        median: median(a.runs),
        ...(a.first.p90 !== undefined ? { p90: percentile(a.runs, 90) } : {}),
        ...(note ? { note } : {}),
      };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function loopScenario(smoke: boolean, awg: string): Promise<Sample[]> {
  const tag = randomBytes(3).toString('hex');
  const C = `awgt-bench-lc-${tag}`;
  const P = `awgt-bench-lp-${tag}`;
  const dir = mkdtempSync(join(tmpdir(), 'awgt-bench-loop-'));
  const env = {
    ...process.env,
    AWG_CGROUP_ROOT: `awgt-bl${tag}`,
    AWG_DNS_MANAGER: 'static',
    AWG_RESOLV_CONF: join(dir, 'resolv.conf'),
    NO_COLOR: '1',
  };
  writeFileSync(join(dir, 'resolv.conf'), 'nameserver 10.200.0.53\n');
  const envC = { ...env, AWG_UAPI_DIR: join(dir, 'uapi-c') };
  const envP = { ...env, AWG_UAPI_DIR: join(dir, 'uapi-p') };
  const inNs = (ns: string, cmd: string, args: string[], e = env) =>
    must('nsenter', [`--net=/var/run/netns/${ns}`, '--', cmd, ...args], { env: e });
  const vethC = `awgbl${tag}a`;
  let up: ChildProcess | undefined;
  const samples: Sample[] = [];
  try {
    for (const ns of [C, P]) {
      await must('ip', ['netns', 'add', ns]);
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await must('ip', [
      '-n',
      C,
      'link',
      'add',
      vethC,
      'type',
      'veth',
      'peer',
      'name',
      `awgbl${tag}b`,
      'netns',
      P,
    ]);
    await must('ip', ['-n', C, 'addr', 'add', '10.200.9.1/24', 'dev', vethC]);
    await must('ip', ['-n', P, 'addr', 'add', '10.200.9.2/24', 'dev', `awgbl${tag}b`]);
    await must('ip', ['-n', C, 'link', 'set', vethC, 'up']);
    await must('ip', ['-n', P, 'link', 'set', `awgbl${tag}b`, 'up']);
    const cfg = configs(3);
    writeFileSync(join(dir, 'peer.yaml'), cfg.peer);
    writeFileSync(join(dir, 'client.yaml'), cfg.client);
    await inNs(
      P,
      process.execPath,
      [awg, 'apply', '-f', join(dir, 'peer.yaml'), '--state-dir', join(dir, 'ps')],
      envP,
    );

    up = spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${C}`,
        '--',
        process.execPath,
        ...LONG_RUNNING_NODE_FLAGS,
        awg,
        'up',
        '-f',
        join(dir, 'client.yaml'),
        '--json',
        '--state-dir',
        join(dir, 'cs'),
      ],
      // a session of its own, as systemd starts the service (setsid): its engines set the
      // session's weight as the peer's detached ones do (AWG_ENGINE_NICE, boost.ts)
      { env: envC, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    let out = '';
    up.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    up.stderr!.on('data', () => {});
    const events = (): Ev[] =>
      out.split('\n').flatMap((l) => {
        try {
          const j = JSON.parse(l) as Ev;
          return j.at ? [j] : [];
        } catch {
          return [];
        }
      });
    const waitFinished = async (from: number, timeoutMs = 20_000): Promise<Ev> => {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const e = events()
          .slice(from)
          .find((x) => x.type === 'reconcile-finished');
        if (e) return e;
        if (Date.now() > end) throw new Error(`daemon did not finish a run:\n${out}`);
        await sleep(10);
      }
    };
    await waitFinished(0, 60_000);
    // the first handshakes wake an engine run: let the loop settle
    await sleep(3000);

    const runs = smoke ? 1 : 10;
    const measureChange = async (
      name: string,
      change: () => Promise<unknown>,
      undo: (() => Promise<unknown>) | undefined,
      expect: string[],
    ): Promise<Sample> => {
      const xs: number[] = [];
      const ds: number[] = [];
      for (let i = 0; i < runs; i++) {
        await sleep(1200);
        const from = events().length;
        const t0 = Date.now();
        await change();
        const e = await waitFinished(from);
        if (!expect.includes(e.outcome ?? '')) throw new Error(`${name}: run ended ${e.outcome}`);
        xs.push(Date.parse(e.at) - t0 - DEBOUNCE_MS);
        ds.push(e.durationMs ?? NaN);
        if (undo) {
          const from2 = events().length;
          await undo();
          await waitFinished(from2, 5000).catch(() => undefined);
        }
      }
      return {
        name,
        unit: 'ms',
        runs: xs,
        median: median(xs),
        p90: percentile(xs, 90),
        note: `event → reconcile-finished, minus the 250 ms debounce; the run itself (reload+observe+plan[+apply+verify]) median ${median(ds)} ms`,
      };
    };
    const route = ['route', 'add', '10.200.99.0/24', 'via', '10.200.9.2'];
    samples.push(
      await measureChange(
        'underlay route added (no-op run)',
        () => must('ip', ['-n', C, ...route]),
        () => must('ip', ['-n', C, 'route', 'del', '10.200.99.0/24']),
        ['unchanged'],
      ),
    );
    samples.push(
      await measureChange(
        'our link admin-down (repair: link up + routes)',
        () => must('ip', ['-n', C, 'link', 'set', 'awg-t1', 'down']),
        undefined,
        ['converged'],
      ),
    );

    await sleep(3000);
    const pid = up.pid!;
    const idle: number[] = [];
    for (let i = 0; i < (smoke ? 1 : 10); i++) {
      idle.push(rssKiB(pid) / 1024);
      await sleep(300);
    }
    samples.push({
      name: 'daemon RSS, 3 tunnels idle',
      unit: 'MiB',
      runs: idle,
      median: median(idle),
    });

    const servers = [1, 2, 3].map((i) =>
      spawn(
        'nsenter',
        [
          `--net=/var/run/netns/${P}`,
          '--',
          'iperf3',
          '-s',
          '-1',
          '-B',
          `10.200.6${i}.2`,
          '-p',
          String(5200 + i),
        ],
        { stdio: 'ignore' },
      ),
    );
    await sleep(500);
    const secs = smoke ? 2 : 8;
    const clients = [1, 2, 3].map((i) =>
      sh('nsenter', [
        `--net=/var/run/netns/${C}`,
        '--',
        'iperf3',
        '-c',
        `10.200.6${i}.2`,
        '-p',
        String(5200 + i),
        '-t',
        String(secs),
        '-J',
      ]),
    );
    const busy: number[] = [];
    const t0 = Date.now();
    await sleep(1000);
    while (Date.now() - t0 < (secs - 0.5) * 1000) {
      busy.push(rssKiB(pid) / 1024);
      await sleep(250);
    }
    const results = await Promise.all(clients);
    for (const s of servers) s.kill('SIGKILL');
    const mbps = results.map((r) => {
      try {
        return (
          (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end
            .sum_received.bits_per_second / 1e6
        );
      } catch {
        return NaN;
      }
    });
    samples.push({
      name: 'daemon RSS, 3 tunnels under iperf3 TCP',
      unit: 'MiB',
      runs: busy,
      median: median(busy),
      p90: percentile(busy, 90),
      note: `max ${Math.max(...busy).toFixed(1)} MiB; throughput ${mbps.map((x) => x.toFixed(0)).join(' + ')} Mbit/s over ${secs} s`,
    });
    samples.push({
      name: 'iperf3 TCP through 3 tunnels at once (sum)',
      unit: 'Mbit/s',
      runs: [mbps.reduce((a, b) => a + b, 0)],
      median: mbps.reduce((a, b) => a + b, 0),
    });
    // idle again: what a daemon that carried traffic keeps (its receive slabs were written)
    // the smoke only shows the path runs (CI runs it beside the host tests, which it outlasts)
    const afterMs = smoke ? 3000 : AFTER_TRAFFIC_MS;
    await sleep(afterMs);
    const after: number[] = [];
    for (let i = 0; i < (smoke ? 1 : 10); i++) {
      after.push(rssKiB(pid) / 1024);
      await sleep(300);
    }
    samples.push({
      name: 'daemon RSS, 3 tunnels idle again after iperf3',
      unit: 'MiB',
      runs: after,
      median: median(after),
      note: `${afterMs / 1000} s after the transfers ended`,
    });
    return samples;
  } finally {
    if (up && up.exitCode === null) {
      up.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => {
          up!.kill('SIGKILL');
          r(undefined);
        }, 5000);
        up!.once('exit', () => {
          clearTimeout(t);
          r(undefined);
        });
      });
    }
    await sh(
      'nsenter',
      [
        `--net=/var/run/netns/${P}`,
        '--',
        process.execPath,
        awg,
        'down',
        '--state-dir',
        join(dir, 'ps'),
      ],
      { env: envP },
    );
    for (const ns of [C, P]) {
      const pids = (await sh('ip', ['netns', 'pids', ns])).stdout
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sh('ip', ['netns', 'del', ns]);
    }
    for (const d of [
      `/sys/fs/cgroup/unified/${env.AWG_CGROUP_ROOT}`,
      `/sys/fs/cgroup/${env.AWG_CGROUP_ROOT}`,
    ]) {
      try {
        rmdirSync(d);
      } catch {
        /* absent: no per-app rules, no cgroups */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
