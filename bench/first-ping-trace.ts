import { createRequire } from "node:module"; const require = createRequire(import.meta.url);
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { awg, cleanupAwgEnv, ensureDist, makeAwgEnv, wgKeyPair, writeConfig } from './test/helpers/awg.js';
import { createNetns, destroyNetns, nsExec, nsSpawn, vethPair } from './test/helpers/netns.js';
import { awgConfig, pingEventually, startWireguardGo, wgGoAddress, wgSetconf, wgVia } from './test/netns/interop-wg.js';
await ensureDist();
const N = 230; const UA = `10.200.${N}.1`, UB = `10.200.${N}.2`; const T = (h: number) => `10.200.${N + 1}.${h}`;
const ka = wgKeyPair(), kb = wgKeyPair(); const work = mkdtempSync(join(tmpdir(), 'hs-'));
const nsA = await createNetns('hsa'), nsB = await createNetns('hsb');
const env = makeAwgEnv();
try {
  await vethPair(nsA, nsB, { addrA: `${UA}/24`, addrB: `${UB}/24` });
  const b = await startWireguardGo(nsB, 'whs0');
  await wgSetconf(nsB, b.iface, work, `[Interface]\nPrivateKey = ${kb.privateKey}\nListenPort = 51820\n[Peer]\nPublicKey = ${ka.publicKey}\nAllowedIPs = ${T(1)}/32\n`);
  await wgGoAddress(nsB, b.iface, `${T(2)}/24`);
  const cfg = writeConfig(env, 'a.yaml', awgConfig({ tunnel: 'hs', privateKey: ka.privateKey, address: `${T(1)}/24`, listenPort: 51823, peerPublicKey: kb.publicKey, endpoint: `${UB}:51820`, allowedIPs: [`${T(2)}/32`] }));
  const ap = await awg(nsA, env, ['apply', '-f', cfg], { extraEnv: true ? { AWG_PROBE_T: '1', AWG_WARMUP: process.env.W ?? '1' } : {} }); if (ap.code) throw new Error(ap.stderr);
  await pingEventually(nsA, T(2), 20000);
  for (let i = 0; i < 6; i++) {
    await wgVia(nsA, env.env.AWG_UAPI_DIR!, ['set', 'awg-hs', 'peer', kb.publicKey, 'remove']);
    await wgVia(nsA, env.env.AWG_UAPI_DIR!, ['set', 'awg-hs', 'peer', kb.publicKey, 'endpoint', `${UB}:51820`, 'allowed-ips', `${T(2)}/32`]);
    const td = nsSpawn(nsA, 'tcpdump', ['-l', '-n', '--immediate-mode', '-tt', '-i', 'any', 'icmp or udp']);
    await new Promise((r) => setTimeout(r, 600));
    const r = await nsExec(nsA, 'ping', ['-n', '-c', '1', '-W', '5', T(2)], { allowFail: true });
    await new Promise((r) => setTimeout(r, 300));
    await td.kill(500);
    console.log('ping', /time=([\d.]+)/.exec(r.stdout)?.[1]);
    const lines = td.output().split('\n').filter((l) => /^\d/.test(l));
    const t0 = Number(lines[0]?.split(' ')[0]);
    for (const l of lines) console.log(((Number(l.split(' ')[0]) - t0) * 1000).toFixed(3).padStart(8), l.slice(18, 110));
  }
  console.log(require("child_process").execSync(`grep -rh "^PROBE" ${env.env.AWG_STATE_DIR} 2>/dev/null | tail -40 || true`).toString());
} finally { await awg(nsA, env, ['down']).catch(() => 0); await destroyNetns(nsA); await destroyNetns(nsB); cleanupAwgEnv(env); }
