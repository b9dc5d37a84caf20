/**
 * Where the engine's main thread spends a throughput run, split by system call: what moving
 * the TUN and UDP I/O to threads of their own could take off it at most (Step 10, Deliver 1).
 * One engine (`awg apply`) and a wireguard-go peer (engine-pair.ts); for iperf3 A→B and B→A
 * through the tunnel, `perf record -g` samples the engine's main thread only (-t) and each
 * sample is attributed to the system call its kernel stack is under (the frame called by
 * do_syscall_64), or to user space (JavaScript, V8, libcrypto, libuv), or to other kernel
 * work (faults, interrupts). The kernel's work for a packet runs inside the syscall that
 * hands it over: a `sendmmsg` includes the veth and the peer namespace's receive path, a TUN
 * `write` the local TCP stack up to iperf3's socket. Prints per direction the shares and the
 * iperf3 throughput (perf's sampling costs a few per cent of it).
 *
 *   npx tsx bench/engine-syscalls.ts [--seconds=5] [--hz=1999] [--user=N]
 *
 * `--user=N` also lists the N heaviest user-space leaves (symbol and object) and the N
 * JavaScript functions the user-space samples fall under (the innermost frame named by V8's
 * perf map: the engine then runs with `NODE_OPTIONS=--perf-basic-prof`, which writes
 * /tmp/perf-PID.map, removed afterwards).
 *
 * Needs root, wireguard-go, wg, iperf3, perf. Not part of `npm run bench`.
 */
import { readdirSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { nsExec, nsSpawn, run } from '../test/helpers/netns.js';
import { withEnginePair } from './engine-pair.js';

const arg = (name: string, dflt: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
const SECONDS = arg('seconds', 5);
const HZ = arg('hz', 1999);
const USER = arg('user', 0);
if (USER > 0)
  process.env.AWG_BENCH_ENGINE_ENV =
    `${process.env.AWG_BENCH_ENGINE_ENV ?? ''} NODE_OPTIONS=--perf-basic-prof`.trim();

/** syscall handler frame → a readable name */
function syscallName(frame: string): string {
  return frame
    .replace(/^(__x64_sys_|__arm64_sys_|__do_sys_|__sys_|ksys_|do_)/, '')
    .replace(/^(writev|readv)$/, (m) => m)
    .replace(/\+0x.*$/, '');
}

/** a perf script frame line → `symbol (object)`, the object's base name only */
function frameName(line: string): { sym: string; dso: string } {
  const m = /^\s*[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$/.exec(line);
  if (!m) return { sym: line.trim(), dso: '' };
  return { sym: m[1]!.replace(/\+0x[0-9a-f]+$/, ''), dso: m[2]!.split('/').pop() ?? '' };
}

/**
 * The user-space samples by leaf (`symbol (object)`) and by the innermost JavaScript function
 * on their stack (a frame from V8's perf map, `perf-PID.map`; '(no JS frame)' otherwise).
 */
export function userProfile(script: string): {
  total: number;
  leaves: Map<string, number>;
  js: Map<string, number>;
} {
  const leaves = new Map<string, number>();
  const js = new Map<string, number>();
  let total = 0;
  for (const sample of script.split('\n\n')) {
    const lines = sample
      .split('\n')
      .slice(1)
      .filter((l) => l.trim());
    if (lines.length === 0 || /\[kernel\.kallsyms\]/.test(lines[0]!)) continue;
    total++;
    const frames = lines.map(frameName);
    const leaf = `${frames[0]!.sym} (${frames[0]!.dso})`;
    leaves.set(leaf, (leaves.get(leaf) ?? 0) + 1);
    const f = frames.find((x) => x.dso.startsWith('perf-') && x.dso.endsWith('.map'));
    const name = f ? f.sym : '(no JS frame)';
    js.set(name, (js.get(name) ?? 0) + 1);
  }
  return { total, leaves, js };
}

/** Shares of the samples: 'user', 'kernel (other)', or a syscall's name. */
export function attribute(script: string): { total: number; shares: Map<string, number> } {
  const shares = new Map<string, number>();
  let total = 0;
  for (const sample of script.split('\n\n')) {
    const frames = sample
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[1] ?? '')
      .filter(Boolean);
    if (frames.length === 0) continue;
    total++;
    const sys = frames.findIndex((f) => f.startsWith('do_syscall_64'));
    const kernel = /\[kernel\.kallsyms\]/.test(sample.split('\n')[1] ?? '');
    const key = sys > 0 ? syscallName(frames[sys - 1]!) : kernel ? 'kernel (other)' : 'user';
    shares.set(key, (shares.get(key) ?? 0) + 1);
  }
  return { total, shares };
}

const perfMaps = () => new Set(readdirSync('/tmp').filter((f) => /^perf-\d+\.map$/.test(f)));
const mapsBefore = perfMaps();
process.on('exit', () => {
  if (USER > 0)
    for (const f of perfMaps()) if (!mapsBefore.has(f)) rmSync(`/tmp/${f}`, { force: true });
});

await withEnginePair(async ({ nsA, nsB, pid, peer }) => {
  const server = nsSpawn(nsB, 'iperf3', ['-s', '-B', peer, '-p', '5301']);
  try {
    await new Promise((r) => setTimeout(r, 500));
    for (const reverse of [false, true]) {
      const data = `/tmp/awg-engine-syscalls-${process.pid}.data`;
      const perf = spawn(
        'perf',
        [
          'record',
          '-q',
          '-F',
          String(HZ),
          '-g',
          '-t',
          String(pid),
          '-o',
          data,
          '--',
          'sleep',
          String(SECONDS),
        ],
        { stdio: 'ignore' },
      );
      const done = new Promise<void>((r) => perf.once('exit', () => r()));
      const ip = await nsExec(
        nsA,
        'iperf3',
        ['-c', peer, '-p', '5301', '-t', String(SECONDS + 1), '-J', ...(reverse ? ['-R'] : [])],
        { timeoutMs: (SECONDS + 30) * 1000 },
      );
      await done;
      const gbps =
        (JSON.parse(ip.stdout) as { end: { sum_received: { bits_per_second: number } } }).end
          .sum_received.bits_per_second / 1e9;
      const script = (
        await run('perf', ['script', '-i', data, '-F', 'comm,tid,ip,sym,dso'], {
          timeoutMs: 120_000,
        })
      ).stdout;
      rmSync(data, { force: true });
      const { total, shares } = attribute(script);
      if (USER > 0) {
        const u = userProfile(script);
        const top = (m: Map<string, number>) =>
          [...m]
            .sort((a, b) => b[1] - a[1])
            .slice(0, USER)
            .map(([k, n]) => `    ${((100 * n) / total).toFixed(1).padStart(5)} %  ${k}`)
            .join('\n');
        console.log(
          `${reverse ? 'B→A' : 'A→B'} user space, ${u.total} of ${total} samples; heaviest leaves (% of all samples):\n${top(u.leaves)}`,
        );
        console.log(
          `${reverse ? 'B→A' : 'A→B'} user space by innermost JavaScript function:\n${top(u.js)}`,
        );
      }
      const rows = [...shares]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${((100 * n) / total).toFixed(1)} %`);
      console.log(
        `${reverse ? 'B→A' : 'A→B'}: ${gbps.toFixed(2)} Gbit/s; main thread ${total} samples at ${HZ} Hz over ${SECONDS} s (${((100 * total) / (HZ * SECONDS)).toFixed(0)} % of a core): ${rows.join(', ')}`,
      );
    }
  } finally {
    await server.kill(500);
  }
});
