/**
 * Step 4 (API) benchmark: `awg status` through a real `awg daemon` (startDaemonCore, real
 * drivers and engine) running in a network namespace with one WireGuard tunnel applied.
 *
 * - Status RPC on an open connection (the daemon's own cost plus gRPC over the socket);
 * - connect + Status with a new client each time (what one CLI call pays beyond start-up);
 * - `awg status` as a CLI process through the daemon, next to `awg status --direct` (which
 *   observes the host itself) and `awg --version` (node start-up + module load).
 *
 * Unix sockets are file-system objects, not per network namespace: the clients run here.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DaemonClient } from '../src/daemon/client.js';
import { socketAnswers } from '../src/daemon/socket.js';
import { ensureDist, must, ROOT, sh, withBenchNetns } from './apply.bench.js';
import { measure, type Sample } from './lib.js';
import { wgKeyPair } from '../test/helpers/awg.js';

function keyPair(): { priv: string; pub: string } {
  const k = wgKeyPair(); // not generateKeyPairSync + export('jwk'): a Node 20 deadlock (test/helpers/awg.ts)
  return { priv: k.privateKey, pub: k.publicKey };
}

/** one WireGuard tunnel whose peer never answers (bench/sse.bench.ts uses it too) */
export function config(): string {
  const me = keyPair();
  const peer = keyPair();
  const allowed = Array.from({ length: 10 }, (_, i) => `10.210.${i}.0/24`).join(', ');
  return `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.priv}"
    addresses: [10.209.0.2/32]
    peers:
      - publicKey: "${peer.pub}"
        endpoint: 10.208.0.1:51820
        allowedIPs: [${allowed}]
`;
}

const BIN = join(ROOT, 'bin/awg.js');

export async function daemonApiBench(smoke: boolean): Promise<Sample[]> {
  await ensureDist();
  const runs = smoke ? 2 : 30;
  const cliRuns = smoke ? 2 : 20;
  return withBenchNetns(async (ns, dir) => {
    await must('ip', ['-n', ns, 'addr', 'add', '10.208.0.2/24', 'dev', 'lo']);
    const cfg = join(dir, 'awg.yaml');
    writeFileSync(cfg, config());
    const socket = join(dir, 'awg.sock');
    const state = join(dir, 'state');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWG_CGROUP_ROOT: `awgt-bench-${randomBytes(3).toString('hex')}`,
      AWG_UAPI_DIR: join(dir, 'uapi'),
      AWG_RESOLV_CONF: join(dir, 'resolv.conf'),
      AWG_DNS_MANAGER: 'static',
      NO_COLOR: '1',
    };
    writeFileSync(join(dir, 'resolv.conf'), 'nameserver 10.208.0.53\n');
    const daemon = spawn(
      'nsenter',
      [
        `--net=/var/run/netns/${ns}`,
        '--',
        process.execPath,
        BIN,
        'daemon',
        '--config',
        cfg,
        '--state-dir',
        state,
        '--socket',
        socket,
      ],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = '';
    daemon.stdout.on('data', (d: Buffer) => (log += d.toString()));
    daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<void>((r) => daemon.on('exit', () => r()));
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
      const objects = (await client.status()).objects.length;
      const note = `real daemon, 1 WireGuard tunnel, ${objects} owned objects`;
      const samples: Sample[] = [];
      samples.push(
        await measure('Status RPC, open connection', runs, () => client.status(), {
          warmup: 3,
          note,
        }),
      );
      client.close();
      samples.push(
        await measure(
          'connect + Status RPC (new client per call)',
          runs,
          async () => {
            const c = await DaemonClient.open(socket);
            try {
              await c.status();
            } finally {
              c.close();
            }
          },
          { warmup: 2, note },
        ),
      );
      const cli =
        (args: string[], inNs = false) =>
        async () => {
          const r = inNs
            ? await sh(
                'nsenter',
                [`--net=/var/run/netns/${ns}`, '--', process.execPath, BIN, ...args],
                { env },
              )
            : await sh(process.execPath, [BIN, ...args], { env });
          // status exits 2 for "not converged": still a complete round trip
          if (r.code !== 0 && r.code !== 2)
            throw new Error(`awg ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
          return r.stdout;
        };
      samples.push(
        await measure(
          'awg status (CLI process, through the daemon)',
          cliRuns,
          cli(['status', '--socket', socket]),
          { note: 'wall time of the whole process' },
        ),
      );
      samples.push(
        await measure(
          'awg status --json (CLI process, through the daemon)',
          cliRuns,
          cli(['status', '--json', '--socket', socket]),
        ),
      );
      const directView = String(
        await cli(['status', '--direct', '--state-dir', state], true)(),
      ).split('\n')[0];
      samples.push(
        await measure(
          'awg status --direct (CLI process, observes the namespace itself)',
          cliRuns,
          cli(['status', '--direct', '--state-dir', state], true),
          { note: `reference: no daemon involved; it reports "${directView}"` },
        ),
      );
      samples.push(
        await measure('awg --version (node start-up + module load)', cliRuns, cli(['--version']), {
          note: 'reference',
        }),
      );
      return samples;
    } finally {
      daemon.kill('SIGTERM');
      const t = setTimeout(() => daemon.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
  });
}
