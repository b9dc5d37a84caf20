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
 * Needs root, wireguard-go, wg, tcpdump; runs `npm run build` output. Not part of `npm run bench`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { awg, cleanupAwgEnv, ensureDist, makeAwgEnv, wgKeyPair, writeConfig } from '../test/helpers/awg.js';
import { createNetns, destroyNetns, nsExec, nsSpawn, vethPair } from '../test/helpers/netns.js';
import { awgConfig, pingEventually, startWireguardGo, wgGoAddress, wgSetconf, wgVia } from '../test/netns/interop-wg.js';

await ensureDist();
const N = 230 + Math.floor(Math.random() * 10) * 2;
const UA = `10.200.${N}.1`;
const UB = `10.200.${N}.2`;
const T = (h: number) => `10.200.${N + 1}.${h}`;
const ka = wgKeyPair();
const kb = wgKeyPair();
const work = mkdtempSync(join(tmpdir(), 'awgt-fpt-'));
const nsA = await createNetns('fpa');
const nsB = await createNetns('fpb');
const env = makeAwgEnv();
try {
  await vethPair(nsA, nsB, { addrA: `${UA}/24`, addrB: `${UB}/24` });
  const b = await startWireguardGo(nsB, 'wfpt0');
  await wgSetconf(nsB, b.iface, work, `[Interface]\nPrivateKey = ${kb.privateKey}\nListenPort = 51820\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = ${T(1)}/32\n`);
  await wgGoAddress(nsB, b.iface, `${T(2)}/24`);
  const cfg = writeConfig(env, 'a.yaml', awgConfig({ tunnel: 'fpt', privateKey: ka.privateKey, address: `${T(1)}/24`, listenPort: 51823, peerPublicKey: kb.publicKey, endpoint: `${UB}:51820`, allowedIPs: [`${T(2)}/32`] }));
  const ap = await awg(nsA, env, ['apply', '-f', cfg], {
    extraEnv: {
      ...(process.env.AWG_WARMUP ? { AWG_WARMUP: process.env.AWG_WARMUP } : {}),
      ...(process.env.AWG_HANDSHAKE_PREPARE ? { AWG_HANDSHAKE_PREPARE: process.env.AWG_HANDSHAKE_PREPARE } : {}),
    },
  });
  if (ap.code) throw new Error(ap.stderr);
  if (!(await pingEventually(nsA, T(2), 20_000))) throw new Error('no tunnel');
  for (let i = 0; i < 6; i++) {
    await wgVia(nsA, env.env.AWG_UAPI_DIR!, ['set', 'awg-fpt', 'peer', kb.publicKey, 'remove']);
    await wgVia(nsA, env.env.AWG_UAPI_DIR!, ['set', 'awg-fpt', 'peer', kb.publicKey, 'endpoint', `${UB}:51820`, 'allowed-ips', `${T(2)}/32`]);
    const td = nsSpawn(nsA, 'tcpdump', ['-l', '-n', '--immediate-mode', '-tt', '-i', 'any', 'icmp or udp']);
    await new Promise((r) => setTimeout(r, 600));
    const r = await nsExec(nsA, 'ping', ['-n', '-c', '1', '-W', '5', T(2)], { allowFail: true });
    await new Promise((r) => setTimeout(r, 300));
    await td.kill(500);
    const lines = td.output().split('\n').filter((l) => /^\d+\.\d+ /.test(l));
    const t0 = Number(lines[0]?.split(' ')[0]);
    const marks = lines.map((l) => ((Number(l.split(' ')[0]) - t0) * 1000).toFixed(2));
    console.log(`ping ${/time=([\d.]+)/.exec(r.stdout)?.[1] ?? '(lost)'} ms; packets at ${marks.join(' / ')} ms`);
  }
} finally {
  await awg(nsA, env, ['down']).catch(() => undefined);
  await destroyNetns(nsA);
  await destroyNetns(nsB);
  cleanupAwgEnv(env);
  rmSync(work, { recursive: true, force: true });
}
