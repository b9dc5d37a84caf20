/**
 * Step 10 item 4: the CPU cost of a handshake. A fresh pair of engines over the in-memory
 * network and TUNs (test/unit/dataplane/harness.ts): the time from the first packet into A's
 * TUN until it leaves B's TUN, which is the initiation, the response and the first transport
 * packet, all computed in this process (no wire, no scheduler). X25519, the AEAD and BLAKE2s
 * through libcrypto (native/libcrypto*.ts, the default) against node:crypto (AWG_X25519=node
 * AWG_AEAD=node AWG_BLAKE2=node: DER-wrapped KeyObjects, cipher and hash objects per call),
 * each in a fresh child process, alternated.
 *
 * Run: `npx tsx bench/handshake.bench.ts [--smoke]`; `--curve`: the first 40 pairs of a fresh
 * process one by one, and the engine's warm-up timed (wall, CPU) in another.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { machine, median, printSamples, type Sample } from './lib.js';

const SELF = fileURLToPath(import.meta.url);

/** ms of each of `pairs` fresh pairs' handshake + first packet, in this process */
async function each(pairs: number): Promise<number[]> {
  const { makePair, ipv4 } = await import('../test/unit/dataplane/harness.js');
  const xs: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const { a, b, net } = await makePair({ seed: i + 1 });
    const t0 = process.hrtime.bigint();
    a.tun.inject(ipv4('192.168.0.1', '192.168.0.2'));
    for (let k = 0; k < 10 && b.tun.written.length === 0; k++) {
      net.flush();
      await new Promise((r) => setImmediate(r));
    }
    if (b.tun.written.length === 0) throw new Error('the first packet did not arrive');
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await a.dev.close();
    await b.dev.close();
  }
  return xs;
}

async function once(pairs: number): Promise<number> {
  return median(await each(pairs));
}

/**
 * `--curve`: in a fresh process, the first 40 pairs one by one (how long the handshake code
 * runs interpreted), then the engine's warm-up (src/dataplane/warmup.ts) timed in another
 * fresh process: wall and CPU time, and how many of its pairs carried packets both ways.
 */
async function curve(): Promise<void> {
  const cold = execFileSync(process.execPath, ['--import', 'tsx', SELF, '--each', '40'], {
    encoding: 'utf8',
  });
  console.log(`fresh process, pairs 1-40 (ms): ${cold}`);
  const warm = execFileSync(process.execPath, ['--import', 'tsx', SELF, '--warmup'], {
    encoding: 'utf8',
  });
  console.log(`warm-up in a fresh process: ${warm}`);
}

export async function handshakeBench(smoke: boolean): Promise<Sample[]> {
  const runs = smoke ? 1 : 5;
  const pairs = smoke ? 5 : 60;
  const r: Record<'node' | 'evp', number[]> = { node: [], evp: [] };
  for (let i = 0; i < runs; i++)
    for (const impl of ['node', 'evp'] as const)
      r[impl].push(
        Number(
          execFileSync(process.execPath, ['--import', 'tsx', SELF, '--child', String(pairs)], {
            encoding: 'utf8',
            env: { ...process.env, AWG_X25519: impl, AWG_AEAD: impl, AWG_BLAKE2: impl },
          }),
        ),
      );
  return (['node', 'evp'] as const).map((impl) => ({
    name: `handshake + first packet, fresh in-memory pair, ${impl === 'node' ? 'node:crypto (X25519 KeyObjects, cipher and hash objects per call)' : 'libcrypto (EVP X25519 keys, AEAD, BLAKE2s)'}`,
    unit: 'ms',
    runs: r[impl],
    median: median(r[impl]),
    note: `each run the median of ${pairs} pairs`,
  }));
}

if (process.argv[1] === SELF) {
  if (process.argv[2] === '--child')
    process.stdout.write(String(await once(Number(process.argv[3]))));
  else if (process.argv[2] === '--each')
    process.stdout.write((await each(Number(process.argv[3]))).map((x) => x.toFixed(2)).join(' '));
  else if (process.argv[2] === '--warmup') {
    const { warmUpHandshakes } = await import('../src/dataplane/warmup.js');
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const ok = await warmUpHandshakes();
    const cpu = process.cpuUsage(c0);
    process.stdout.write(
      `${ok} pairs ok, ${(performance.now() - t0).toFixed(0)} ms wall, ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms CPU`,
    );
  } else if (process.argv[2] === '--curve') await curve();
  else {
    console.log(`machine: ${machine()}`);
    printSamples('handshake', await handshakeBench(process.argv.includes('--smoke')));
  }
}
