/**
 * The leak tests' four-namespace topology (issue #6, step 5), its server that only counts and
 * answers, and the configs of its WireGuard peer and of the client's tunnel.
 *
 *   client ──uplink── router ──── peer   (WireGuard peer via `awg apply`, endpoint 10.200.2.2)
 *   10.200.1.2     10.200.1.1 ─┐   10.200.2.2, tunnel 10.200.50.2
 *                              └── server 10.200.3.2 (tunnelled app's target), 10.200.3.3
 *                                  (unmatched app's target), 10.200.3.53 (tunnel resolver),
 *                                  10.200.4.53 (a resolver outside the tunnel)
 * The router also answers DNS on 10.200.1.1 (an on-link LAN resolver, as a home router does).
 * The server sees the path a packet took: source 10.200.50.1 through the tunnel, 10.200.1.2
 * direct. Every address is in 10.200.0.0/16 (and so RFC 1918: "LAN" for `allowLan`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { cleanupAwgEnv, makeAwgEnv, wgKeyPair, type AwgEnv } from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  run,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';
import { awgCli, waitOutput } from './leak-cli.js';

export const CLIENT_UL = '10.200.1.2';
export const ROUTER_UL = '10.200.1.1';
export const ENDPOINT = '10.200.2.2';
export const WG_PORT = 51820;
export const SERVER_TUN_TARGET = '10.200.3.2';
export const SERVER_RAW_TARGET = '10.200.3.3';
export const TUNNEL_RESOLVER = '10.200.3.53';
export const OTHER_RESOLVER = '10.200.4.53';
export const LAN_RESOLVER = ROUTER_UL;
export const CLIENT_TUN = '10.200.50.1';
export const PEER_TUN = '10.200.50.2';
export const APP_PORT = 7001;
export const UPLINK = 'awgt-uplink';
/** IPv6 (buildTopo with v6): /112 subnets inside the test range fd00:200::/64 */
export const V6 = {
  clientUl: 'fd00:200::1:2',
  routerUl: 'fd00:200::1:1',
  peer: 'fd00:200::2:2',
  serverTun: 'fd00:200::3:2',
  serverRaw: 'fd00:200::3:3',
  clientTun: 'fd00:200::50:1',
  peerTun: 'fd00:200::50:2',
};

export interface Topo {
  client: string;
  router: string;
  peer: string;
  server: string;
  keys: {
    client: { privateKey: string; publicKey: string };
    peer: { privateKey: string; publicKey: string };
  };
  /** the peer's own awg environment */
  pe: AwgEnv;
  /** MAC of the client's underlay interface: frames from it are the client's egress */
  clientMac: string;
  servers: NsProcess[];
}

const sysctl = (ns: string, kv: string) => nsExec(ns, 'sysctl', ['-qw', kv]);

export async function buildTopo(tag: string, o: { v6?: boolean } = {}): Promise<Topo> {
  const client = await createNetns(`${tag}-c`);
  const router = await createNetns(`${tag}-r`);
  const peer = await createNetns(`${tag}-p`);
  const server = await createNetns(`${tag}-s`);
  const v6 = (a: string) => (o.v6 ? [`${a}/112`] : []);
  await vethPair(client, router, {
    addrA: [`${CLIENT_UL}/24`, ...v6(V6.clientUl)],
    addrB: [`${ROUTER_UL}/24`, ...v6(V6.routerUl)],
    nameA: UPLINK,
    nameB: 'awgt-r-c',
  });
  await vethPair(router, peer, {
    addrA: ['10.200.2.1/24', ...v6('fd00:200::2:1')],
    addrB: [`${ENDPOINT}/24`, ...v6(V6.peer)],
    nameA: 'awgt-r-p',
    nameB: 'awgt-p-r',
  });
  await vethPair(router, server, {
    addrA: ['10.200.3.1/24', ...v6('fd00:200::3:1')],
    addrB: [`${SERVER_TUN_TARGET}/24`, ...v6(V6.serverTun)],
    nameA: 'awgt-r-s',
    nameB: 'awgt-s-r',
  });
  if (o.v6) {
    await run('ip', [
      '-n',
      server,
      '-6',
      'addr',
      'add',
      `${V6.serverRaw}/128`,
      'dev',
      'awgt-s-r',
      'nodad',
    ]);
    await run('ip', ['-n', client, '-6', 'route', 'add', 'default', 'via', V6.routerUl]);
    await run('ip', ['-n', peer, '-6', 'route', 'add', 'default', 'via', 'fd00:200::2:1']);
    await run('ip', ['-n', server, '-6', 'route', 'add', 'default', 'via', 'fd00:200::3:1']);
    await run('ip', ['-n', router, '-6', 'route', 'add', 'fd00:200::50:0/112', 'via', V6.peer]);
    for (const ns of [router, peer]) await sysctl(ns, 'net.ipv6.conf.all.forwarding=1');
  }
  for (const a of [SERVER_RAW_TARGET, TUNNEL_RESOLVER, OTHER_RESOLVER])
    await run('ip', ['-n', server, 'addr', 'add', `${a}/32`, 'dev', 'awgt-s-r']);
  await run('ip', ['-n', client, 'route', 'add', 'default', 'via', ROUTER_UL]);
  await run('ip', ['-n', peer, 'route', 'add', 'default', 'via', '10.200.2.1']);
  await run('ip', ['-n', server, 'route', 'add', 'default', 'via', '10.200.3.1']);
  await run('ip', ['-n', router, 'route', 'add', '10.200.4.0/24', 'via', SERVER_TUN_TARGET]);
  await run('ip', ['-n', router, 'route', 'add', '10.200.50.0/24', 'via', ENDPOINT]);
  for (const ns of [router, peer]) {
    await sysctl(ns, 'net.ipv4.ip_forward=1');
    await sysctl(ns, 'net.ipv4.conf.all.rp_filter=0');
    await sysctl(ns, 'net.ipv4.conf.default.rp_filter=0');
  }
  const link = JSON.parse((await nsExec(client, 'ip', ['-j', 'link', 'show', UPLINK])).stdout) as {
    address: string;
  }[];
  const keys = { client: wgKeyPair(), peer: wgKeyPair() };
  const t: Topo = {
    client,
    router,
    peer,
    server,
    keys,
    pe: makeAwgEnv(),
    clientMac: link[0]!.address,
    servers: [],
  };
  t.servers.push(
    startResponder(server, [
      SERVER_TUN_TARGET,
      SERVER_RAW_TARGET,
      TUNNEL_RESOLVER,
      OTHER_RESOLVER,
      ...(o.v6 ? [V6.serverTun, V6.serverRaw] : []),
    ]),
  );
  t.servers.push(startResponder(router, [LAN_RESOLVER]));
  for (const s of t.servers) await waitOutput(s, 'listening', 'responder');
  return t;
}

export async function destroyTopo(t: Topo | undefined): Promise<void> {
  if (!t) return;
  await awgCli(t.peer, t.pe, ['down']).catch(() => undefined);
  for (const ns of [t.client, t.router, t.peer, t.server]) await destroyNetns(ns);
  // the peer's private environment (config, state, UAPI dir, cgroup subtree): it was left in
  // /tmp after every run
  cleanupAwgEnv(t.pe);
}
// ---------------------------------------------------------------------------------------
// the peer (`awg apply` in its namespace) and the client's config

export async function startPeer(t: Topo): Promise<void> {
  const cfg = join(t.pe.dir, 'peer.yaml');
  writeFileSync(
    cfg,
    `version: 1
tunnels:
  srv:
    type: wireguard
    privateKey: "${t.keys.peer.privateKey}"
    addresses: [${PEER_TUN}/24, ${V6.peerTun}/112]
    listenPort: ${WG_PORT}
    peers:
      - publicKey: "${t.keys.client.publicKey}"
        allowedIPs: [${CLIENT_TUN}/32, ${V6.clientTun}/128]
`,
  );
  let r = await awgCli(t.peer, t.pe, ['apply', '-f', cfg]);
  // the detached engine must say `ready` within 5 s; on a loaded 2-core box retry
  for (let i = 0; i < 2 && r.code !== 0 && r.out.includes('did not become ready'); i++)
    r = await awgCli(t.peer, t.pe, ['apply', '-f', cfg]);
  expect(r.code, r.out).toBe(0);
}

export interface ClientCfg {
  killSwitch: string;
  dns?: string;
  default?: string;
  /** extra rules (YAML list items) */
  rules?: string;
  /** `ipv6:` mode; the tunnel gets a v6 address and ::/0 */
  ipv6?: string;
  /** the tunnel has no `dns:` (nothing to DNAT a tunnelled app's queries to) */
  noTunnelDns?: boolean;
}

/** tunnel `vpn` to the topology's peer (YAML lines under `tunnels:`) */
export function vpnTunnel(t: Topo, c: Pick<ClientCfg, 'ipv6' | 'noTunnelDns'> = {}): string {
  return `  vpn:
    type: wireguard
    privateKey: "${t.keys.client.privateKey}"
    addresses: [${CLIENT_TUN}/24${c.ipv6 ? `, ${V6.clientTun}/112` : ''}]
${c.noTunnelDns ? '' : `    dns: [${TUNNEL_RESOLVER}]\n`}    peers:
      - publicKey: "${t.keys.peer.publicKey}"
        endpoint: ${ENDPOINT}:${WG_PORT}
        allowedIPs: [0.0.0.0/0${c.ipv6 ? ', ::/0' : ''}]
        persistentKeepalive: 5
`;
}

export function clientConfig(t: Topo, c: ClientCfg): string {
  return `version: 1
tunnels:
${vpnTunnel(t, c)}${c.rules ? `rules:\n${c.rules}` : ''}default: ${c.default ?? 'direct'}
killSwitch: ${c.killSwitch}
${c.dns ? `dns: ${c.dns}\n` : ''}${c.ipv6 ? `ipv6: ${c.ipv6}\n` : ''}`;
}
// ---------------------------------------------------------------------------------------
// the server: counts and answers, nothing else. One JSON line per request:
// {p: tcp|udp|dns-udp|dns-tcp|dot, l: local addr, r: remote addr, tag}

const RESPONDER = String.raw`
const net = require('net'), dgram = require('dgram');
const addrs = process.argv.slice(1);
const log = (o) => process.stdout.write(JSON.stringify(o) + '\n');
// a DNS answer: the query with QR+RA set and one A record naming the resolver that answered
function answer(q, l) {
  let o = 12; while (o < q.length && q[o] !== 0) o += q[o] + 1; o += 5;
  const h = Buffer.from(q.subarray(0, o)); h[2] |= 0x80; h[3] = 0x80; h.writeUInt16BE(1, 6); h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, ...l.split('.').map(Number)]);
  return Buffer.concat([h, rr]);
}
const qname = (q) => { const p = []; for (let o = 12; o < q.length && q[o] !== 0; o += q[o] + 1) p.push(q.subarray(o + 1, o + 1 + q[o]).toString()); return p.join('.'); };
let pending = 0;
const ready = () => { if (--pending === 0) log({ listening: true }); };
for (const a of addrs) {
  for (const port of [7001, 53, 853]) {
    pending += 2;
    const u = dgram.createSocket(a.includes(':') ? 'udp6' : 'udp4');
    u.on('message', (m, r) => {
      if (port === 53) { log({ p: 'dns-udp', l: a, r: r.address, tag: qname(m) }); u.send(answer(m, a), r.port, r.address); }
      else { log({ p: 'udp', l: a + ':' + port, r: r.address, tag: m.toString() }); u.send(m, r.port, r.address); }
    });
    u.bind(port, a, ready);
    net.createServer((s) => {
      let buf = Buffer.alloc(0);
      s.on('error', () => {});
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (port === 53) {
          if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
          const q = buf.subarray(2, 2 + buf.readUInt16BE(0));
          log({ p: 'dns-tcp', l: a, r: s.remoteAddress, tag: qname(q) });
          const ans = answer(q, a); const len = Buffer.alloc(2); len.writeUInt16BE(ans.length);
          s.end(Buffer.concat([len, ans]));
        } else {
          log({ p: port === 853 ? 'dot' : 'tcp', l: a + ':' + port, r: s.remoteAddress, tag: buf.toString() });
          s.end(buf);
        }
      });
    }).listen(port, a, ready);
  }
}
`;

function startResponder(ns: string, addrs: string[]): NsProcess {
  return nsSpawn(ns, process.execPath, ['-e', RESPONDER, ...addrs]);
}

export interface Hit {
  p: string;
  l: string;
  r: string;
  tag: string;
}

export function hits(t: Topo): Hit[] {
  return t.servers.flatMap((s) =>
    s
      .output()
      .split('\n')
      .flatMap((l) => {
        try {
          const j = JSON.parse(l) as Partial<Hit>;
          return j.p ? [j as Hit] : [];
        } catch {
          return [];
        }
      }),
  );
}
