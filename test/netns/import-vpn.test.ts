/**
 * AmneziaVPN `vpn://` keys end to end: a key as the apps make it (test/helpers/amnezia-key.ts)
 * for an AmneziaWG 1.0, 2.0 and 3.1 server is imported with `awg import`, applied with
 * `awg apply` in a namespace, and hands shake with the server in another namespace; then
 * `awg export --format vpn` → `awg import` gives the tunnel section back byte for byte.
 *
 * The server is upstream amneziawg-go when AWG_TEST_AMNEZIAWG_GO_DIR names a directory with
 * amneziawg-go-v0.2.12 (1.0), amneziawg-go-v0.2.19 (2.0) and amneziawg-go-v3.1 (3.1), set up
 * over its UAPI socket; without it, awg's own engine (`awg apply` of the server's side), as
 * the awg-awg tests do. Either way the test runs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseGet, uapiGet, uapiSet } from '../../src/resources/engine/uapi-client.js';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import { amneziaKey, awgParams } from '../helpers/amnezia-key.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
} from '../helpers/netns.js';
import { tunnelSection } from '../helpers/tunnel-ini.js';
import {
  AWG_GO_RUN_DIR,
  awgConfig,
  pingEventually,
  startAmneziawgGo,
  type WgGo,
} from './interop-wg.js';

const skip = requireNetnsPrereqs(['ping']);
const GO_DIR = process.env.AWG_TEST_AMNEZIAWG_GO_DIR;
const PORT = 51820;
const UNDER_A = '10.200.77.1';
const UNDER_B = '10.200.77.2';
const TUN_SERVER = '10.200.78.1';
const TUN_CLIENT = '10.200.78.2';

const GENERATIONS = [
  { gen: '1.0', binary: 'amneziawg-go-v0.2.12' },
  { gen: '2.0', binary: 'amneziawg-go-v0.2.19' },
  { gen: '3.1', binary: 'amneziawg-go-v3.1' },
] as const;

/** wg-quick names → the YAML's (server side in awg) */
function yamlParams(p: Record<string, string>): Record<string, number | string | boolean> {
  const out: Record<string, number | string | boolean> = {};
  for (const [k, v] of Object.entries(p)) {
    if (v === '') continue;
    const name = k[0]!.toLowerCase() + k.slice(1);
    out[name] = v === 'on' ? true : v === 'off' ? false : /^\d+$/.test(v) ? Number(v) : v;
  }
  return out;
}

/** wg-quick names → amneziawg-go's UAPI lines (snake case, the header key in hex) */
function uapiParams(p: Record<string, string>): string {
  const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
  return Object.entries(yamlParams(p))
    .map(([k, v]) => {
      const key = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
      return `${key}=${k === 'headerProtectionKey' ? hex(v as string) : String(v)}\n`;
    })
    .join('');
}

async function handshakeOf(sock: string): Promise<number> {
  return Number(parseGet(await uapiGet(sock)).peers[0]?.last_handshake_time_sec ?? 0);
}

describe.skipIf(skip)(
  `import-vpn: vpn:// keys import, apply and shake hands (server: ${GO_DIR ? 'amneziawg-go' : "awg's engine"})`,
  () => {
    let nsA = '';
    let nsB = '';
    let go: WgGo | undefined;
    let envA: AwgEnv | undefined;
    let envB: AwgEnv | undefined;

    beforeAll(async () => {
      await ensureDist();
      await sweepStaleNetns();
      if (GO_DIR)
        for (const g of GENERATIONS)
          expect(existsSync(join(GO_DIR, g.binary)), `${GO_DIR}/${g.binary}`).toBe(true);
    }, 300_000);

    afterEach(async () => {
      // everything, even after a failure: the server, both namespaces (their processes), the envs
      await go?.stop().catch(() => undefined);
      go = undefined;
      for (const ns of [nsA, nsB]) if (ns) await destroyNetns(ns).catch(() => undefined);
      nsA = nsB = '';
      cleanupAwgEnv(envA);
      cleanupAwgEnv(envB);
      envA = envB = undefined;
    });

    for (const { gen, binary } of GENERATIONS)
      it(`AmneziaWG ${gen}`, { timeout: 120_000 }, async () => {
        const tag = gen.replace('.', '');
        const client = wgKeyPair();
        const server = wgKeyPair();
        const hpk = wgKeyPair().privateKey;
        const params = awgParams(gen, hpk);
        nsA = await createNetns(`ivpn-a${tag}`);
        nsB = await createNetns(`ivpn-b${tag}`);
        await vethPair(nsA, nsB, { addrA: `${UNDER_A}/24`, addrB: `${UNDER_B}/24` });

        // the server
        let serverSock: string;
        if (GO_DIR) {
          go = await startAmneziawgGo(nsB, `ivpn${tag}`, join(GO_DIR, binary));
          serverSock = join(AWG_GO_RUN_DIR, `${go.iface}.sock`);
          const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
          const reply = await uapiSet(
            serverSock,
            `set=1\nprivate_key=${hex(server.privateKey)}\nlisten_port=${PORT}\n${uapiParams(params)}` +
              `public_key=${hex(client.publicKey)}\nallowed_ip=${TUN_CLIENT}/32\n\n`,
          );
          expect(reply).toContain('errno=0');
          await nsExec(nsB, 'ip', ['addr', 'add', `${TUN_SERVER}/24`, 'dev', go.iface]);
          await nsExec(nsB, 'ip', ['link', 'set', go.iface, 'mtu', '1420', 'up']);
        } else {
          envB = makeAwgEnv();
          const cfgB = writeConfig(
            envB,
            'server.yaml',
            awgConfig({
              tunnel: 'srv',
              privateKey: server.privateKey,
              address: `${TUN_SERVER}/24`,
              listenPort: PORT,
              peerPublicKey: client.publicKey,
              allowedIPs: [`${TUN_CLIENT}/32`],
              obfuscation: yamlParams(params),
            }),
          );
          const b = await awg(nsB, envB, ['apply', '-f', cfgB]);
          expect(b.code, show(b)).toBe(0);
          serverSock = join(envB.env.AWG_UAPI_DIR!, 'awg-srv.sock');
        }

        // the client: the key the server's app would share
        const key = amneziaKey([
          {
            gen,
            privateKey: client.privateKey,
            publicKey: client.publicKey,
            serverPublicKey: server.publicKey,
            clientIp: TUN_CLIENT,
            host: UNDER_B,
            port: PORT,
            dns1: TUN_SERVER,
            description: `vpn${tag}`,
            allowedIPs: ['10.200.78.0/24'],
            awg: params,
          },
        ]);
        envA = makeAwgEnv();
        const cfgA = join(envA.dir, 'client.yaml');
        const imp = await awg(nsA, envA, ['import', key, '-o', cfgA]);
        expect(imp.code, show(imp)).toBe(0);
        expect(imp.stderr).toContain(
          `(tunnel vpn${tag} from amnezia-awg${gen === '1.0' ? '' : '2'})`,
        );
        const yaml = readFileSync(cfgA, 'utf8');
        if (gen === '3.1') expect(yaml).toContain(`headerProtectionKey: ${hpk}`);
        if (gen !== '1.0') expect(yaml).toContain('h1: 471800590-471800690');

        const a = await awg(nsA, envA, ['apply', '-f', cfgA]);
        expect(a.code, show(a)).toBe(0);
        expect(await pingEventually(nsA, TUN_SERVER, 20_000)).toBe(true);
        expect(await handshakeOf(serverSock)).toBeGreaterThan(0);
        expect(
          await handshakeOf(join(envA.env.AWG_UAPI_DIR!, `awg-vpn${tag}.sock`)),
        ).toBeGreaterThan(0);

        // export → import: the same tunnel section, byte for byte
        const e = await awg(nsA, envA, ['export', '-f', cfgA, '--format', 'vpn']);
        expect(e.code, show(e)).toBe(0);
        const back = await awg(nsA, envA, ['import', e.stdout.trim()]);
        expect(back.code, show(back)).toBe(0);
        expect(tunnelSection(back.stdout)).toBe(tunnelSection(yaml));

        const d = await awg(nsA, envA, ['down']);
        expect(d.code, show(d)).toBe(0);
      });
  },
);
