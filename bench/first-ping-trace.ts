/**
 * Where the first ping after a peer reset goes: namespace A runs our engine (`awg apply`),
 * B a wireguard-go peer; 6 times the peer is removed and re-added on A (as dataplane.bench.ts
 * does), then one ping, with tcpdump on all of A's interfaces. Prints, per ping, the time of
 * each packet from the echo request entering the TUN: our initiation leaving, wireguard-go's
 * response arriving, our first transport packet leaving, the reply arriving, the echo reply
 * leaving the TUN. The gaps are: our initiation, wireguard-go's response, our response
 * handling, the peer's turnaround, our decryption.
 *
 *   npx tsx bench/first-ping-trace.ts            (AWG_WARMUP=0 compares without the warm-up,
 *                                                AWG_HANDSHAKE_PREPARE=0 without prepared initiations)
 *
 * Options: `--pings=N` (6), `--daemon` runs the engine in `awg up`'s daemon (in process)
 * instead of the engine process `awg apply` starts, `--busy=N` starts N busy loops (plain CPU burners, no network)
 * for the whole run, `--no-tcpdump` leaves the packet capture out (it is a process of its own
 * competing for the CPU under load). With or without them, each ping also prints what the
 * engine's threads did meanwhile, from /proc/PID/task/TID/schedstat: the main thread's CPU
 * time and its time runnable but waiting for a CPU, and the other threads' CPU; the last line
 * gives the medians. Extra environment for the engine: `AWG_BENCH_ENGINE_ENV='K=V K2=V2'`.
 * `--perf=FILE` samples the engine's main thread (perf record -g at 20 kHz) only inside the
 * ping windows (perf's control FIFO enables it around each ping) and prints the top symbols;
 * with `AWG_BENCH_ENGINE_ENV=NODE_OPTIONS=--perf-basic-prof` JavaScript frames get names.
 *
 * `--gap=MS` (600) is the wait between the reset and the ping (dataplane.bench.ts pings at
 * once: 0 is closer to it). `--traffic=N` first sends N flood pings (1000 bytes) through the tunnel, so that the data
 * path runs optimised as in dataplane.bench.ts, whose first pings follow its TCP runs (without
 * it only the first pings' own packets ever run that code).
 *
 * `AWG_BENCH_AMNEZIAWG_GO=PATH AWG_BENCH_PARAMS=awg3` traces against that amneziawg-go build with
 * an AmneziaWG parameter set (bench/engine-pair.ts); the I-packets and junk that go out before
 * the initiation are then left out of the gaps, and "our preamble" is the time from the echo
 * request to the first of them.
 *
 * Needs root, wireguard-go, wg, tcpdump; runs `npm run build` output. Not part of `npm run bench`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readSync, rmSync, writeSync } from 'node:fs';
import { nsExec, nsSpawn, run } from '../test/helpers/netns.js';
import { pairPeer, schedstat, vmRssKiB, withEnginePair } from './engine-pair.js';
import { currentSliceUs, setOtherSlice } from '../src/native/sched.js';
import { median } from './lib.js';

const arg = (name: string, dflt: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt);
const PINGS = arg('pings', 6);
const BUSY = arg('busy', 0);
const TCPDUMP = !process.argv.includes('--no-tcpdump');
const SLICE_US = arg('slice-us', 0);
const DAEMON = process.argv.includes('--daemon');
const PERF = process.argv.find((a) => a.startsWith('--perf='))?.slice('--perf='.length);
const TRAFFIC = arg('traffic', 0);
const GAP_MS = arg('gap', 600);

/** perf record on one thread, started disabled and switched by `enable`/`disable` through its control FIFO */
async function perfControl(tid: number, file: string) {
  const ctl = `${file}.ctl`;
  const ack = `${file}.ack`;
  for (const f of [ctl, ack]) {
    rmSync(f, { force: true });
    await run('mkfifo', [f]);
  }
  const proc = spawn(
    'perf',
    [
      'record',
      '-q',
      '-F',
      '20000',
      '-g',
      '-D',
      '-1',
      '--control',
      `fifo:${ctl},${ack}`,
      '-t',
      String(tid),
      '-o',
      file,
    ],
    { stdio: 'ignore' },
  );
  const w = openSync(ctl, 'w');
  const r = openSync(ack, 'r');
  const cmd = (c: string) => {
    writeSync(w, `${c}\n`);
    readSync(r, Buffer.alloc(5)); // "ack\n"
  };
  return {
    enable: () => cmd('enable'),
    disable: () => cmd('disable'),
    async stop(): Promise<string> {
      const done = new Promise<void>((res) => proc.once('exit', () => res()));
      proc.kill('SIGINT');
      await done;
      closeSync(w);
      closeSync(r);
      const rep = await run(
        'perf',
        [
          'report',
          '-i',
          file,
          '--no-children',
          '--stdio',
          '--sort',
          'sym',
          '-g',
          'none',
          '--percent-limit',
          '1.5',
        ],
        { allowFail: true },
      );
      return rep.stdout
        .split('\n')
        .filter((l) => /%/.test(l))
        .join('\n');
    },
  };
}

/** an EEVDF slice (src/native/sched.ts setOtherSlice) on every thread of pid; returns the slices read back */
function setSlice(pid: number, us: number): string {
  const out: string[] = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    if (setOtherSlice(us, Number(t)) !== 0) throw new Error(`sched_setattr(${t}) failed`);
    out.push(`${t}: ${currentSliceUs(`/proc/${pid}/task/${t}/sched`)} µs`);
  }
  return out.join(', ');
}

const busy: ChildProcess[] = [];
try {
  await withEnginePair(
    async ({ nsA, pid, peer, resetPeer }) => {
      if (SLICE_US > 0) console.log(`engine threads' slices: ${setSlice(pid, SLICE_US)}`);
      if (TRAFFIC > 0)
        await nsExec(nsA, 'ping', ['-n', '-q', '-f', '-c', String(TRAFFIC), '-s', '1000', peer]);
      const perf = PERF ? await perfControl(pid, PERF) : undefined;
      for (let i = 0; i < BUSY; i++)
        busy.push(spawn(process.execPath, ['-e', 'for(;;);'], { stdio: 'ignore' }));
      const rows: { ping: number; run: number; wait: number; others: number }[] = [];
      /** per ping whose handshake was on its path (six packets), the five gaps between them */
      const gaps: number[][] = [];
      const peerOf = pairPeer();
      // datagrams before each initiation: the I-packets, then Jc junk
      const preamble =
        ['i1', 'i2', 'i3', 'i4', 'i5'].filter((k) => peerOf.params?.[k] !== undefined).length +
        Number(peerOf.params?.jc ?? 0);
      const firstOut: number[] = [];
      for (let i = 0; i < PINGS; i++) {
        await resetPeer();
        const td = TCPDUMP
          ? nsSpawn(nsA, 'tcpdump', [
              '-l',
              '-n',
              '--immediate-mode',
              '-tt',
              '-i',
              'any',
              'icmp or udp',
            ])
          : undefined;
        await new Promise((r) => setTimeout(r, GAP_MS));
        perf?.enable();
        const s0 = schedstat(pid);
        const r = await nsExec(nsA, 'ping', ['-n', '-c', '1', '-W', '5', peer], {
          allowFail: true,
        });
        const s1 = schedstat(pid);
        perf?.disable();
        const d = (tid: number, k: 'run' | 'wait') =>
          ((s1.get(tid)?.[k] ?? 0) - (s0.get(tid)?.[k] ?? 0)) / 1e6;
        const others = [...s1.keys()].filter((t) => t !== pid).reduce((a, t) => a + d(t, 'run'), 0);
        const ms = Number(/time=([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
        rows.push({ ping: ms, run: d(pid, 'run'), wait: d(pid, 'wait'), others });
        const sched = `engine main thread ran ${d(pid, 'run').toFixed(2)} ms, waited ${d(pid, 'wait').toFixed(2)} ms; other threads ran ${others.toFixed(2)} ms`;
        let marks = '';
        if (td) {
          await new Promise((r) => setTimeout(r, 300));
          await td.kill(500);
          const lines = td
            .output()
            .split('\n')
            .filter((l) => /^\d+\.\d+ /.test(l));
          const t0 = Number(lines[0]?.split(' ')[0]);
          const at = lines.map((l) => (Number(l.split(' ')[0]) - t0) * 1000);
          marks = `; packets at ${at.map((t) => t.toFixed(2)).join(' / ')} ms`;
          // an earlier handshake (the daemon probes a peer without a session) leaves 3 more
          if (at.length === 6 + preamble) {
            const six = [at[0]!, ...at.slice(1 + preamble)];
            gaps.push(six.slice(1).map((t, k) => t - six[k]!));
            if (preamble) firstOut.push(at[1]! - at[0]!);
          }
        }
        console.log(`ping ${Number.isNaN(ms) ? '(lost)' : ms} ms; ${sched}${marks}`);
      }
      const med = (k: 'ping' | 'run' | 'wait' | 'others') =>
        median(rows.map((x) => x[k]).filter((v) => !Number.isNaN(v))).toFixed(2);
      console.log(
        `median of ${rows.length} (${DAEMON ? 'daemon' : 'engine process'}; busy loops: ${BUSY}): ping ${med('ping')} ms, main thread ran ${med('run')} ms, waited ${med('wait')} ms, other threads ran ${med('others')} ms; engine VmRSS ${vmRssKiB(pid)} kB`,
      );
      if (perf)
        console.log(
          `perf, the main thread inside the ping windows (${PERF}):\n${await perf.stop()}`,
        );
      if (gaps.length)
        console.log(
          `gaps, medians of the ${gaps.length} pings with the handshake on their path (${peerOf.binary ? `${peerOf.name} against ${peerOf.binary.split('/').at(-1)}, MTU ${peerOf.mtu}` : 'wireguard-go'}): ${firstOut.length ? `our preamble ${median(firstOut).toFixed(2)}, ` : ''}${['our initiation', "the peer's response", 'our response handling', "the peer's turnaround", 'our decryption'].map((name, k) => `${name} ${median(gaps.map((g) => g[k]!)).toFixed(2)}`).join(', ')} ms`,
        );
    },
    { host: DAEMON ? 'daemon' : 'apply' },
  );
} finally {
  for (const b of busy) b.kill('SIGKILL');
}
