/**
 * AmneziaWG at WireGuard's speed (Step 10 item 6): our engine on both ends, two tunnels
 * between the same namespaces in the same run — one plain WireGuard, one AmneziaWG with the
 * recommended-style parameters of test/netns/awg-awg-obfuscation.test.ts (Jc 4, S1–S4,
 * wide H ranges, an I1 packet; the S4 prefix and a random H4 header on every transport
 * packet). Each round runs iperf3 TCP A→B and B→A through each tunnel (WireGuard first in even
 * rounds, AmneziaWG in odd ones): the ratio AmneziaWG / WireGuard, and the A-side engine's CPU
 * per Gbit/s.
 *
 * Needs root and iperf3; runs `npm run build` output. `AWG_BENCH_ROUNDS`, `AWG_BENCH_SECONDS`
 * override 5 rounds of 5 s.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../test/helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsSpawn,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../test/helpers/netns.js';
import { cpuSeconds, pingEventually } from '../test/netns/interop-wg.js';
import { enginePid } from './dataplane.bench.js';
import { runIperf } from './dataplane-lib.js';
import { median, type Sample } from './lib.js';

const read = (p: string) => readFileSync(p, 'utf8');

const OBFUSCATION = `      jc: 4
      jmin: 40
      jmax: 70
      s1: 15
      s2: 18
      s3: 20
      s4: 8
      h1: "471800590-471800690"
      h2: "1246894907-1246895000"
      h3: "923637689-923637690"
      h4: "1769581055-1869581055"
      i1: "<b 0xc70000000108ce1bf31eec7d93360000449e><r 32><t>"
`;

interface Side {
  priv: string;
  pub: string;
}

/** Both tunnels of one side: `w` (wireguard) and `o` (amneziawg), one subnet each. */
function config(self: Side, peer: Side, host: 1 | 2, N: number, peerUnderlay?: string): string {
  const t = (kind: 'w' | 'o', port: number, subnet: number) => `  ${kind}${N}:
    type: ${kind === 'w' ? 'wireguard' : 'amneziawg'}
    privateKey: "${self.priv}"
    addresses: [10.200.${subnet}.${host}/24]
    listenPort: ${port}
${kind === 'o' ? `    obfuscation:\n${OBFUSCATION}` : ''}    peers:
      - publicKey: "${peer.pub}"
${peerUnderlay ? `        endpoint: ${peerUnderlay}:${port}\n` : ''}        allowedIPs: [10.200.${subnet}.${3 - host}/32]
`;
  return `version: 1\ntunnels:\n${t('w', 51830, N + 1)}${t('o', 51831, N + 2)}`;
}

export async function dataplaneAwgBench(smoke: boolean): Promise<Sample[]> {
  const rounds = smoke ? 1 : Number(process.env.AWG_BENCH_ROUNDS ?? 5);
  const seconds = smoke ? 1 : Number(process.env.AWG_BENCH_SECONDS ?? 5);
  await ensureDist();
  await sweepStaleNetns();
  const N = 180 + Math.floor(Math.random() * 6) * 3;
  const UA = `10.200.${N}.1`;
  const UB = `10.200.${N}.2`;
  const ka = wgKeyPair();
  const kb = wgKeyPair();
  const A: Side = { priv: ka.privateKey, pub: ka.publicKey };
  const B: Side = { priv: kb.privateKey, pub: kb.publicKey };
  let nsA = '';
  let nsB = '';
  const envs: AwgEnv[] = [];
  const servers: NsProcess[] = [];
  const load: number[] = [];
  try {
    nsA = await createNetns('bwa');
    nsB = await createNetns('bwb');
    await vethPair(nsA, nsB, { addrA: `${UA}/24`, addrB: `${UB}/24` });
    for (const [ns, self, peer, host, under] of [
      [nsB, B, A, 2, undefined],
      [nsA, A, B, 1, UB],
    ] as const) {
      const e = makeAwgEnv();
      envs.push(e);
      const cfg = writeConfig(e, 'c.yaml', config(self, peer, host, N, under));
      const r = await awg(ns, e, ['apply', '-f', cfg]);
      if (r.code !== 0) throw new Error(`awg apply failed:\n${r.stderr}`);
    }
    servers.push(
      nsSpawn(nsB, 'iperf3', ['-s', '-p', '5211']),
      nsSpawn(nsB, 'iperf3', ['-s', '-p', '5212']),
    );
    const kinds = [
      { name: 'wireguard', link: `awg-w${N}`, peer: `10.200.${N + 1}.2`, port: 5211 },
      { name: 'amneziawg', link: `awg-o${N}`, peer: `10.200.${N + 2}.2`, port: 5212 },
    ] as const;
    for (const k of kinds)
      if (!(await pingEventually(nsA, k.peer, 20_000))) throw new Error(`no tunnel to ${k.peer}`);

    const res: Record<string, number[]> = {};
    const put = (name: string, v: number) => (res[name] ??= []).push(v);
    for (let r = 0; r < rounds; r++) {
      load.push(loadavg()[0]!);
      const gbps: Record<string, number> = {};
      // which tunnel goes first alternates with the round, so neither always gets the
      // machine as the one before left it
      for (const k of r % 2 ? [...kinds].reverse() : kinds)
        for (const reverse of [false, true]) {
          const pid = enginePid(k.link);
          const c0 = cpuSeconds(pid, read);
          const out = await runIperf(nsA, k.peer, k.port, seconds, reverse);
          const c1 = cpuSeconds(pid, read);
          const j = JSON.parse(out.stdout || '{}') as {
            end?: { sum_received?: { bits_per_second: number; seconds: number } };
            error?: string;
          };
          const s = j.end?.sum_received;
          if (!s)
            throw new Error(
              `iperf3 through ${k.name} (${reverse ? 'B→A' : 'A→B'}, round ${r + 1}) failed: ${j.error ?? out.stderr}`,
            );
          const dir = reverse ? 'B→A' : 'A→B';
          gbps[`${k.name} ${dir}`] = s.bits_per_second / 1e9;
          put(`${k.name} TCP ${dir} throughput`, s.bits_per_second / 1e9);
          put(
            `${k.name} TCP ${dir} A-side engine CPU per Gbit/s`,
            (c1 - c0) / s.seconds / (s.bits_per_second / 1e9),
          );
        }
      for (const dir of ['A→B', 'B→A'])
        put(
          `ratio amneziawg/wireguard TCP ${dir}`,
          gbps[`amneziawg ${dir}`]! / gbps[`wireguard ${dir}`]!,
        );
    }
    const unit = (name: string) =>
      name.startsWith('ratio') ? '×' : name.includes('CPU') ? 'cores per Gbit/s' : 'Gbit/s';
    return Object.entries(res).map(([name, runs]) => ({
      name,
      unit: unit(name),
      runs,
      median: median(runs),
      note: `load ${load.map((l) => l.toFixed(1)).join('/')}, iperf3 -t ${seconds}`,
    }));
  } finally {
    for (const s of servers) await s.kill().catch(() => undefined);
    for (const [i, e] of envs.entries()) {
      await awg(i === 0 ? nsB : nsA, e, ['down']).catch(() => undefined);
      cleanupAwgEnv(e);
    }
    for (const ns of [nsA, nsB]) if (ns) await destroyNetns(ns);
  }
}
