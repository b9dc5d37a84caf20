/**
 * `ipv6: tunnel | block | allow` end to end, for an app placed with `awg exec --tunnel`:
 * - tunnel: its IPv6 connection reaches the server through the tunnel (the server sees the
 *   client's tunnel address) and no IPv6 packet of it crosses the underlay in clear;
 * - block: its IPv6 connection fails and nothing of it leaves on the underlay;
 * - allow: its IPv6 goes direct (the server sees the underlay address) while its IPv4 still
 *   goes through the tunnel.
 * Topology: client ⇄ veth ⇄ peer; the peer runs an awg WireGuard peer (`awg apply`) and a TCP
 * server on fd00:200::99:1 (its loopback) and 10.200.99.1 that prints each remote address.
 * Addresses stay inside 10.200.0.0/16 and fd00:200::/64.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  nsSpawn,
  requireNetnsPrereqs,
  run,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['nft', 'tcpdump']);

const C6 = 'fd00:200::9:1';
const P6 = 'fd00:200::9:2';
const SRV6 = 'fd00:200::99:1';
const SRV4 = '10.200.99.1';
const TUN6_C = 'fd00:200::51:1';
const TUN6_P = 'fd00:200::51:2';
const PORT = 7070;

const SERVER = `const net=require('net');for (const h of ['${SRV6}','${SRV4}']) net.createServer((s)=>{console.log('from '+s.remoteAddress);s.end('ok\\n')}).listen(${PORT},h);`;
const client = (host: string) =>
  `const s=require('net').connect(${PORT},'${host}');s.setTimeout(4000,()=>{console.log('timeout');process.exit(3)});s.on('data',(d)=>{process.stdout.write(d);process.exit(0)});s.on('error',(e)=>{console.log(e.code);process.exit(2)});`;

describe.skipIf(skip)('ipv6 modes for a tunnelled app', () => {
  let c = '';
  let p = '';
  let cIf = '';
  let ce: AwgEnv;
  let pe: AwgEnv;
  let server: NsProcess;
  const keys = { client: wgKeyPair(), peer: wgKeyPair() };

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    c = await createNetns('v6-c');
    p = await createNetns('v6-p');
    const v = await vethPair(c, p, {
      addrA: ['10.200.9.1/24', `${C6}/112`],
      addrB: ['10.200.9.2/24', `${P6}/112`],
    });
    cIf = v.ifA;
    await run('ip', ['-n', p, 'addr', 'add', `${SRV4}/32`, 'dev', 'lo']);
    await run('ip', ['-n', p, '-6', 'addr', 'add', `${SRV6}/128`, 'dev', 'lo']);
    await run('ip', ['-n', c, 'route', 'add', 'default', 'via', '10.200.9.2']);
    await run('ip', ['-n', c, '-6', 'route', 'add', 'default', 'via', P6]);
    pe = makeAwgEnv();
    const peerCfg = writeConfig(
      pe,
      'peer.yaml',
      `version: 1
tunnels:
  srv:
    type: wireguard
    privateKey: "${keys.peer.privateKey}"
    addresses: [10.200.51.2/24, ${TUN6_P}/112]
    listenPort: 51820
    peers:
      - publicKey: "${keys.client.publicKey}"
        allowedIPs: [10.200.51.1/32, ${TUN6_C}/128]
ipv6: tunnel
`,
    );
    const r = await awg(p, pe, ['apply', '-f', peerCfg]);
    expect(r.code, show(r)).toBe(0);
    server = nsSpawn(p, process.execPath, ['-e', SERVER]);
  }, 60_000);

  afterAll(async () => {
    await server?.kill(500);
    if (c) await awg(c, ce, ['down']).catch(() => undefined);
    if (p) await awg(p, pe, ['down']).catch(() => undefined);
    if (c) await destroyNetns(c);
    if (p) await destroyNetns(p);
    cleanupAwgEnv(ce);
    cleanupAwgEnv(pe);
  });

  const clientCfg = (mode: string) => `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${keys.client.privateKey}"
    addresses: [10.200.51.1/24, ${TUN6_C}/112]
    peers:
      - publicKey: "${keys.peer.publicKey}"
        endpoint: 10.200.9.2:51820
        persistentKeepalive: 5
        allowedIPs: [10.200.51.0/24, ${SRV4}/32, ${TUN6_P}/128, ${SRV6}/128]
ipv6: ${mode}
`;

  /** run the client through `awg exec --tunnel vpn` while capturing IPv6 TCP to the server on the underlay */
  async function connect(host: string): Promise<{ out: string; clearV6: number; diag: string }> {
    const cap = nsSpawn(c, 'tcpdump', [
      '-n',
      '-l',
      '--immediate-mode',
      '-i',
      cIf,
      `ip6 and tcp port ${PORT}`,
    ]);
    await new Promise((r) => setTimeout(r, 600));
    const r = await awg(c, ce, [
      'exec',
      '--state-dir',
      ce.stateDir,
      '--tunnel',
      'vpn',
      '--',
      process.execPath,
      '-e',
      client(host),
    ]);
    await new Promise((r2) => setTimeout(r2, 300));
    await cap.kill(500);
    const clearV6 = cap
      .output()
      .split('\n')
      .filter((l) => l.includes(`.${PORT}`)).length;
    return { out: r.stdout.trim(), clearV6, diag: show(r) };
  }

  const serverSaw = () => server.output().trim().split('\n').at(-1) ?? '';

  for (const mode of ['tunnel', 'block', 'allow'] as const) {
    it(`ipv6: ${mode}`, async () => {
      ce = makeAwgEnv();
      const a = await awg(c, ce, ['apply', '-f', writeConfig(ce, 'client.yaml', clientCfg(mode))]);
      expect(a.code, show(a)).toBe(0);
      try {
        // IPv4 always goes through the tunnel (the server sees the client's tunnel address)
        const v4 = await connect(SRV4);
        expect(v4.out, `${v4.diag}\nserver: ${server.output()}`).toBe('ok');
        expect(serverSaw()).toBe('from 10.200.51.1');

        const v6 = await connect(SRV6);
        if (mode === 'tunnel') {
          expect(v6.out).toBe('ok');
          expect(serverSaw()).toBe(`from ${TUN6_C}`);
          expect(v6.clearV6).toBe(0);
        } else if (mode === 'block') {
          expect(v6.out).not.toBe('ok');
          expect(v6.clearV6).toBe(0);
        } else {
          expect(v6.out).toBe('ok');
          expect(serverSaw()).toBe(`from ${C6}`);
          expect(v6.clearV6).toBeGreaterThan(0);
        }
        // an app outside awg's cgroups always goes direct (split tunnel)
        const plain = await nsExec(c, process.execPath, ['-e', client(SRV6)], { allowFail: true });
        expect(plain.stdout.trim()).toBe('ok');
        expect(serverSaw()).toBe(`from ${C6}`);
      } finally {
        const d = await awg(c, ce, ['down']);
        expect(d.code, show(d)).toBe(0);
        cleanupAwgEnv(ce);
      }
    }, 90_000);
  }
});
