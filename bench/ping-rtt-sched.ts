/**
 * The ping RTT through an `awg apply` engine on an established session, with the engine's
 * main thread under different scheduling, alternating: the kernel's default slice, an EEVDF
 * slice of 100 or 300 µs (src/native/sched.ts setOtherSlice), SCHED_FIFO priority 1 (`chrt`).
 * Prints the median and p90 of each mode's pings per round. Start the load beside it yourself
 * (bench/RESULTS.md, Step 10: four `setsid sh -c 'while :; do :; done'`).
 *
 *   npx tsx bench/ping-rtt-sched.ts [--rounds=3] [--pings=40]
 *
 * Needs root, wireguard-go, wg, chrt; runs `npm run build` output. Not part of `npm run bench`.
 */
import { nsExec, run } from '../test/helpers/netns.js';
import { withEnginePair } from './engine-pair.js';
import { setOtherSlice } from '../src/native/sched.js';

const arg = (name: string, dflt: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
const ROUNDS = arg('rounds', 3);
const PINGS = arg('pings', 40);
const at = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * q)]!;

await withEnginePair(
  async ({ nsA, pid, peer }) => {
    await nsExec(nsA, 'ping', ['-n', '-c', '3', '-W', '5', peer], { allowFail: true }); // the session
    for (let r = 0; r < ROUNDS; r++) {
      for (const mode of ['default', 'slice100', 'slice300', 'fifo']) {
        await run('chrt', ['-o', '-p', '0', String(pid)]); // SCHED_OTHER, the default slice
        if (mode === 'fifo') await run('chrt', ['-f', '-p', '1', String(pid)]);
        if (mode.startsWith('slice') && setOtherSlice(Number(mode.slice(5)), pid) !== 0)
          throw new Error('sched_setattr failed');
        const o = await nsExec(nsA, 'ping', ['-n', '-c', String(PINGS), '-i', '0.05', peer], {
          allowFail: true,
        });
        const rtts = [...o.stdout.matchAll(/time=([\d.]+)/g)].map((m) => Number(m[1]));
        console.log(
          `round ${r + 1} ${mode.padEnd(8)} RTT median ${at(rtts, 0.5).toFixed(3)} ms, p90 ${at(rtts, 0.9).toFixed(3)} ms (${rtts.length} replies)`,
        );
      }
    }
    await run('chrt', ['-o', '-p', '0', String(pid)]);
  },
  { host: 'apply' },
);
