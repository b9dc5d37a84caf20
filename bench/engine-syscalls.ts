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
 *   npx tsx bench/engine-syscalls.ts [--seconds=5] [--hz=1999]
 *
 * Needs root, wireguard-go, wg, iperf3, perf. Not part of `npm run bench`.
 */
import { rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { nsExec, nsSpawn, run } from '../test/helpers/netns.js';
import { withEnginePair } from './engine-pair.js';

const arg = (name: string, dflt: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
const SECONDS = arg('seconds', 5);
const HZ = arg('hz', 1999);

/** syscall handler frame → a readable name */
function syscallName(frame: string): string {
  return frame
    .replace(/^(__x64_sys_|__arm64_sys_|__do_sys_|__sys_|ksys_|do_)/, '')
    .replace(/^(writev|readv)$/, (m) => m)
    .replace(/\+0x.*$/, '');
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
