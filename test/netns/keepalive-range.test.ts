/**
 * AmneziaWG 3.x persistent keepalive ranges end to end: a .conf with
 * `PersistentKeepalive = 1-2` is imported with `awg import` (an amneziawg tunnel whose peer
 * has `persistentKeepalive: 1-2`), applied with `awg apply` in a namespace, and with no
 * traffic of ours the keepalives alone make the handshake and keep arriving at the server in
 * another namespace; the server's peer has a range too, so keepalives come back.
 *
 * The server is upstream amneziawg-go v3.1 when AWG_TEST_AMNEZIAWG_GO_DIR names a directory
 * with amneziawg-go-v3.1 (set up over its UAPI socket, `persistent_keepalive_interval=1-2`);
 * without it, awg's own engine (`awg apply` of the server's side). Either way the test runs.
 * It waits for counters (polled with a deadline), never for a fixed time.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
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
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
} from '../helpers/netns.js';
import { AWG_GO_RUN_DIR, startAmneziawgGo, waitFor, type WgGo } from './interop-wg.js';

const skip = requireNetnsPrereqs();
const GO_DIR = process.env.AWG_TEST_AMNEZIAWG_GO_DIR;
const BINARY = 'amneziawg-go-v3.1';
const PORT = 51820;
const UNDER_A = '10.200.91.1';
const UNDER_B = '10.200.91.2';
const TUN_SERVER = '10.200.92.1';
const TUN_CLIENT = '10.200.92.2';
/** a keepalive message: 16-byte header + 16-byte tag, no payload */
const KEEPALIVE = 32;

interface PeerCounters {
  handshake: number;
  rx: number;
  keepalive: string | undefined;
}

async function peerOf(sock: string): Promise<PeerCounters> {
  const p = parseGet(await uapiGet(sock)).peers[0];
  return {
    handshake: Number(p?.last_handshake_time_sec ?? 0),
    rx: Number(p?.rx_bytes ?? 0),
    keepalive: p?.persistent_keepalive_interval as string | undefined,
  };
}

describe.skipIf(skip)(
  `keepalive range: PersistentKeepalive = 1-2 imports, applies and keeps the tunnel alive (server: ${GO_DIR ? 'amneziawg-go v3.1' : "awg's engine"})`,
  () => {
    let nsA = '';
    let nsB = '';
    let go: WgGo | undefined;
    let envA: AwgEnv | undefined;
    let envB: AwgEnv | undefined;

    beforeAll(async () => {
      await ensureDist();
      await sweepStaleNetns();
      if (GO_DIR) expect(existsSync(join(GO_DIR, BINARY)), `${GO_DIR}/${BINARY}`).toBe(true);
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

    it(
      'keepalives alone make the handshake and keep coming, both ways',
      { timeout: 120_000 },
      async () => {
        const client = wgKeyPair();
        const server = wgKeyPair();
        nsA = await createNetns('kar-a');
        nsB = await createNetns('kar-b');
        await vethPair(nsA, nsB, { addrA: `${UNDER_A}/24`, addrB: `${UNDER_B}/24` });

        // the server: its peer (the client) has a keepalive range too
        let serverSock: string;
        if (GO_DIR) {
          go = await startAmneziawgGo(nsB, 'kar-srv', join(GO_DIR, BINARY));
          serverSock = join(AWG_GO_RUN_DIR, `${go.iface}.sock`);
          const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
          const reply = await uapiSet(
            serverSock,
            `set=1\nprivate_key=${hex(server.privateKey)}\nlisten_port=${PORT}\n` +
              `public_key=${hex(client.publicKey)}\npersistent_keepalive_interval=1-2\n` +
              `allowed_ip=${TUN_CLIENT}/32\n\n`,
          );
          expect(reply).toContain('errno=0');
          await nsExec(nsB, 'ip', ['addr', 'add', `${TUN_SERVER}/24`, 'dev', go.iface]);
          await nsExec(nsB, 'ip', ['link', 'set', go.iface, 'up']);
        } else {
          envB = makeAwgEnv();
          const cfgB = writeConfig(
            envB,
            'server.yaml',
            `version: 1
tunnels:
  srv:
    type: amneziawg
    privateKey: "${server.privateKey}"
    addresses: [${TUN_SERVER}/24]
    listenPort: ${PORT}
    peers:
      - publicKey: "${client.publicKey}"
        allowedIPs: [${TUN_CLIENT}/32]
        persistentKeepalive: 1-2
`,
          );
          const b = await awg(nsB, envB, ['apply', '-f', cfgB]);
          expect(b.code, show(b)).toBe(0);
          serverSock = join(envB.env.AWG_UAPI_DIR!, 'awg-srv.sock');
        }

        // the client: a .conf with the range, imported and applied
        envA = makeAwgEnv();
        const conf = join(envA.dir, 'kar.conf');
        writeFileSync(
          conf,
          `[Interface]\nPrivateKey = ${client.privateKey}\nAddress = ${TUN_CLIENT}/24\n\n` +
            `[Peer]\nPublicKey = ${server.publicKey}\nEndpoint = ${UNDER_B}:${PORT}\n` +
            `AllowedIPs = 10.200.92.0/24\nPersistentKeepalive = 1-2\n`,
        );
        const cfgA = join(envA.dir, 'client.yaml');
        const imp = await awg(nsA, envA, ['import', conf, '-o', cfgA]);
        expect(imp.code, show(imp)).toBe(0);
        const yaml = readFileSync(cfgA, 'utf8');
        expect(yaml).toContain('type: amneziawg');
        expect(yaml).toContain('persistentKeepalive: 1-2');
        const a = await awg(nsA, envA, ['apply', '-f', cfgA]);
        expect(a.code, show(a)).toBe(0);
        const clientSock = join(envA.env.AWG_UAPI_DIR!, 'awg-kar.sock');

        // no traffic of ours: the first keepalive starts the handshake
        expect(
          await waitFor(async () => (await peerOf(serverSock)).handshake > 0, 20_000),
          'a handshake, made by the keepalive alone',
        ).toBe(true);
        // then at least three more keepalives each way (a range of 1-2 s: a few seconds)
        const s0 = await peerOf(serverSock);
        const c0 = await peerOf(clientSock);
        expect(
          await waitFor(async () => (await peerOf(serverSock)).rx >= s0.rx + 3 * KEEPALIVE, 20_000),
          'keepalives from the client reach the server',
        ).toBe(true);
        expect(
          await waitFor(async () => (await peerOf(clientSock)).rx >= c0.rx + 3 * KEEPALIVE, 20_000),
          'keepalives from the server reach the client',
        ).toBe(true);

        // the engines hold the range as configured, and so does the applied state
        expect((await peerOf(clientSock)).keepalive).toBe('1-2');
        expect((await peerOf(serverSock)).keepalive).toBe('1-2');
        const st = await awg(nsA, envA, ['status', '--json']);
        expect(st.stdout, show(st)).toContain('"persistentKeepalive": "1-2"');

        const d = await awg(nsA, envA, ['down']);
        expect(d.code, show(d)).toBe(0);
      },
    );
  },
);
