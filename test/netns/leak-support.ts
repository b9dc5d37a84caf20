/**
 * Shared by the leak tests (issue #6, step 5): a four-namespace topology, the awg CLI from
 * dist/ (`bin/awg.js`, the shipped product), a server that only counts and answers, traffic
 * generators run as apps, and tcpdump on the client's underlay with a pcap classifier.
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
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { REPO_ROOT, cleanupAwgEnv, makeAwgEnv, wgKeyPair, type AwgEnv } from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  netnsPath,
  nsExec,
  nsSpawn,
  run,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';
import { runProcess } from '../../src/util/exec.js';
import { converged, upEvents, type Up } from './daemon-support.js';
import { isTransportTrain } from '../helpers/wire-classify.js';

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
const BIN = join(REPO_ROOT, 'bin/awg.js');

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
// the product: bin/awg.js (dist), inside a namespace, optionally in a private mount namespace
// whose /etc/resolv.conf is `resolvConf` bind-mounted (the host's file is never touched)

export interface CliOpts {
  /** run inside `unshare -m` with this file bind-mounted over /etc/resolv.conf */
  resolvConf?: string;
}

/** private API socket: `awg down` must never reach another test's (or the host's) daemon */
export function leakEnv(): AwgEnv {
  const e = makeAwgEnv();
  e.env.AWG_SOCKET = join(e.dir, 'api.sock');
  return e;
}

function argvOf(
  ns: string,
  e: AwgEnv,
  args: string[],
  o: CliOpts,
): [string, string[], NodeJS.ProcessEnv] {
  const node = [process.execPath, BIN, ...args];
  if (!o.resolvConf) return ['nsenter', [`--net=${netnsPath(ns)}`, '--', ...node], e.env];
  return [
    'nsenter',
    [
      `--net=${netnsPath(ns)}`,
      '--',
      'unshare',
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$0" /etc/resolv.conf && exec "$@"',
      o.resolvConf,
      ...node,
    ],
    // the real path inside the mount namespace
    { ...e.env, AWG_RESOLV_CONF: '' },
  ];
}

const STATEFUL = new Set(['diff', 'apply', 'down', 'status', 'up', 'exec']);
const withState = (e: AwgEnv, args: string[]) => {
  if (!STATEFUL.has(args[0]!)) return args;
  const i = args.indexOf('--');
  return i < 0
    ? [...args, '--state-dir', e.stateDir]
    : [...args.slice(0, i), '--state-dir', e.stateDir, ...args.slice(i)];
};

export async function awgCli(
  ns: string,
  e: AwgEnv,
  args: string[],
  o: CliOpts = {},
): Promise<{ code: number; out: string }> {
  const [cmd, argv, env] = argvOf(ns, e, withState(e, args), o);
  const r = await runProcess(cmd, argv, { env, timeoutMs: 90_000 });
  return { code: r.code, out: `exit ${r.code}\n${r.stdout}\n${r.stderr}` };
}

/** a long-running awg process (`up`, `exec … -- app`) inside `ns` */
export function awgSpawn(ns: string, e: AwgEnv, args: string[], o: CliOpts = {}): NsProcess {
  const [, argv, env] = argvOf(ns, e, withState(e, args), o);
  // argv = --net=… -- cmd …
  return nsSpawn(ns, argv[2]!, argv.slice(3), { env });
}

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
// the daemon (`awg up --json`), its events on stdout

export type Daemon = Omit<Up, 'mark'>;

export function startDaemon(ns: string, e: AwgEnv, cfg: string, o: CliOpts = {}): Daemon {
  const proc = awgSpawn(ns, e, ['up', '-f', cfg, '--json'], o);
  return { proc, ...upEvents(proc, 60_000) };
}

export { converged };

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitOutput(
  p: NsProcess,
  needle: string,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!p.output().includes(needle)) {
    if (Date.now() > end || p.child.exitCode !== null)
      throw new Error(`${what}: no "${needle}" within ${timeoutMs} ms:\n${p.output()}`);
    await sleep(20);
  }
}

/** Poll until `fn` holds (generous timeout; never a timing assertion). */
export async function eventually(
  fn: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(200);
  }
  throw new Error(`not true within ${timeoutMs} ms: ${what}`);
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

// ---------------------------------------------------------------------------------------
// apps: one round every `interval` ms of TCP+UDP to `target:7001`, DNS over UDP and TCP to
// `dns` (default: the first nameserver of /etc/resolv.conf, as the system resolver would
// use), and a TCP connection to `dns:853`. Every payload and query name carries `tag-round`.
// Prints `{round}` when a round starts and `{ok, round, answer?}` for every reply.

const SENDER = String.raw`
const net = require('net'), dgram = require('dgram'), fs = require('fs');
const [tag, target, dnsArg, what] = process.argv.slice(1);
const dns = dnsArg === 'system' ? /^nameserver\s+(\S+)/m.exec(fs.readFileSync('/etc/resolv.conf', 'utf8'))[1] : dnsArg;
const kinds = new Set((what || 'tcp,udp,dns-udp,dns-tcp,dot').split(','));
const log = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const u = dgram.createSocket(target.includes(':') ? 'udp6' : 'udp4'); u.on('error', () => {});
const d = dgram.createSocket(dns.includes(':') ? 'udp6' : 'udp4'); d.on('error', () => {});
u.on('message', (m) => log({ ok: 'udp', tag: m.toString() }));
const ansOf = (b) => b.length >= 4 ? b.subarray(b.length - 4).join('.') : '';
d.on('message', (m) => log({ ok: 'dns-udp', answer: ansOf(m) }));
function query(name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const id = Buffer.alloc(2); id.writeUInt16BE(Math.floor(Math.random() * 65535));
  return Buffer.concat([id, Buffer.from([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}
function tcp(host, port, payload, kind, parse) {
  const s = net.connect(port, host); s.setTimeout(3000, () => s.destroy());
  s.on('error', () => {}); let got = Buffer.alloc(0);
  s.on('connect', () => s.write(payload));
  s.on('data', (x) => { got = Buffer.concat([got, x]); });
  s.on('end', () => { if (got.length) log({ ok: kind, ...(parse ? { answer: parse(got) } : {}) }); s.destroy(); });
}
let round = 0;
function tick() {
  round++; log({ round });
  const p = tag + '-' + round;
  if (kinds.has('udp')) u.send(p, 7001, target);
  if (kinds.has('tcp')) tcp(target, 7001, p, 'tcp');
  const q = query(p + '.leak.test');
  if (kinds.has('dns-udp')) d.send(q, 53, dns);
  if (kinds.has('dns-tcp')) { const len = Buffer.alloc(2); len.writeUInt16BE(q.length); tcp(dns, 53, Buffer.concat([len, q]), 'dns-tcp', ansOf); }
  if (kinds.has('dot')) tcp(dns, 853, p, 'dot');
}
setInterval(tick, 150); tick();
`;

export interface App {
  proc: NsProcess;
  rounds(): number;
  oks(kind?: string): { ok: string; answer?: string; tag?: string }[];
  /** resolves once `n` more rounds have started than when it was called */
  moreRounds(n: number): Promise<void>;
}

function appOf(proc: NsProcess): App {
  const lines = () =>
    proc
      .output()
      .split('\n')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as { round?: number; ok?: string; answer?: string; tag?: string }];
        } catch {
          return [];
        }
      });
  const rounds = () => Math.max(0, ...lines().map((l) => l.round ?? 0));
  return {
    proc,
    rounds,
    oks: (kind) =>
      lines().filter((l): l is { ok: string } => l.ok !== undefined && (!kind || l.ok === kind)),
    async moreRounds(n) {
      const target = rounds() + n;
      await eventually(
        () => rounds() >= target,
        `${n} more rounds of the app (output: ${proc.output().slice(-500)})`,
        120_000,
      );
    },
  };
}

/** an app placed with `awg exec <placement…> -- node sender` (no window) */
export function execApp(
  t: Topo,
  e: AwgEnv,
  placement: string[],
  tag: string,
  target: string,
  dns: string,
  what?: string,
  o: CliOpts = {},
): App {
  return appOf(
    awgSpawn(
      t.client,
      e,
      [
        'exec',
        ...placement,
        '--',
        process.execPath,
        '-e',
        SENDER,
        tag,
        target,
        dns,
        ...(what ? [what] : []),
      ],
      o,
    ),
  );
}

/** an app that matches nothing (started without awg) */
export function rawApp(
  t: Topo,
  tag: string,
  target: string,
  dns: string,
  what?: string,
  o: CliOpts = {},
): App {
  const node = [process.execPath, '-e', SENDER, tag, target, dns, ...(what ? [what] : [])];
  if (!o.resolvConf) return appOf(nsSpawn(t.client, node[0]!, node.slice(1)));
  return appOf(
    nsSpawn(t.client, 'unshare', [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$0" /etc/resolv.conf && exec "$@"',
      o.resolvConf,
      ...node,
    ]),
  );
}

// ---------------------------------------------------------------------------------------
// capture on the client's underlay and classification

export interface Capture {
  stop(): Promise<Buffer>;
}

/** tcpdump on the client's underlay, or on another client device (`iface`, e.g. the TUN) */
export async function capture(t: Topo, dir: string, iface = UPLINK): Promise<Capture> {
  const file = join(dir, `cap-${randomBytes(3).toString('hex')}.pcap`);
  // -U: write each packet at once; -Z root: keep writing into our root-only temp dir
  const p = nsSpawn(t.client, 'tcpdump', [
    '-i',
    iface,
    '-n',
    '-U',
    '--immediate-mode',
    '-Z',
    'root',
    '-s',
    '0',
    '-w',
    file,
  ]);
  await waitOutput(p, 'listening on', 'tcpdump');
  return {
    async stop() {
      // let the last packets reach the file
      await sleep(300);
      p.child.kill('SIGINT');
      await p.exited;
      return readFileSync(file);
    },
  };
}

export interface Pkt {
  /** frame from the client (egress) */
  out: boolean;
  kind: 'arp' | 'ipv4' | 'ipv6' | 'other';
  src?: string;
  dst?: string;
  proto?: number;
  sport?: number;
  dport?: number;
  icmpType?: number;
  /** TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10) */
  tcpFlags?: number;
  payload?: Buffer;
  text: string;
  /** capture time, seconds since the epoch */
  time?: number;
}

const ip4 = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const ip6 = (b: Buffer, o: number) => {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(o + i).toString(16));
  return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
};
const mac = (b: Buffer, o: number) =>
  [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

const RAW_LINKTYPES = new Set([12, 101]);
const CLIENT_TUN_ADDRS = new Set([CLIENT_TUN, V6.clientTun]);

/**
 * classic libpcap, Ethernet or raw IP (a TUN: a frame is the client's egress when its source
 * is the client's tunnel address); IPv4/IPv6 with TCP, UDP, ICMP, ICMPv6 (hop-by-hop skipped)
 */
export function parsePcap(b: Buffer, clientMac: string): Pkt[] {
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d)
    throw new Error(`not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const nano = (le ? magic : b.readUInt32BE(0)) === 0xa1b23c4d;
  const raw = RAW_LINKTYPES.has(u32(20));
  if (u32(20) !== 1 && !raw) throw new Error(`link type ${u32(20)}, expected Ethernet or raw IP`);
  const out: Pkt[] = [];
  for (let o = 24; o + 16 <= b.length;) {
    const incl = u32(o + 8);
    const time = u32(o) + u32(o + 4) / (nano ? 1e9 : 1e6);
    let f = b.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    if (raw) {
      // give it an Ethernet header: the parsing below is the same
      if (f.length < 1) continue;
      const hdr = Buffer.alloc(14);
      hdr.writeUInt16BE(f[0]! >> 4 === 6 ? 0x86dd : 0x0800, 12);
      f = Buffer.concat([hdr, f]);
    }
    if (f.length < 14) continue;
    let isOut = mac(f, 6) === clientMac.toLowerCase();
    const et = f.readUInt16BE(12);
    if (raw)
      isOut =
        et === 0x0800
          ? CLIENT_TUN_ADDRS.has(ip4(f, 26))
          : f.length >= 54 && CLIENT_TUN_ADDRS.has(ip6(f, 22));
    const dir = isOut ? 'out' : 'in';
    if (et === 0x0806) {
      out.push({ out: isOut, kind: 'arp', text: `${dir} arp` });
      continue;
    }
    let p: Pkt;
    let l4: Buffer;
    if (et === 0x0800 && f.length >= 34) {
      const ip = f.subarray(14);
      const ihl = (ip[0]! & 0x0f) * 4;
      p = {
        out: isOut,
        kind: 'ipv4',
        src: ip4(ip, 12),
        dst: ip4(ip, 16),
        proto: ip[9]!,
        text: '',
        time,
      };
      l4 = ip.subarray(ihl, Math.min(ip.length, ip.readUInt16BE(2)));
    } else if (et === 0x86dd && f.length >= 54) {
      const ip = f.subarray(14);
      let nh = ip[6]!;
      let off = 40;
      while ((nh === 0 || nh === 43 || nh === 60) && off + 8 <= ip.length) {
        nh = ip[off]!;
        off += (ip[off + 1]! + 1) * 8;
      }
      p = {
        out: isOut,
        kind: 'ipv6',
        src: ip6(ip, 8),
        dst: ip6(ip, 24),
        proto: nh,
        text: '',
        time,
      };
      l4 = ip.subarray(off);
    } else {
      out.push({ out: isOut, kind: 'other', text: `${dir} ethertype 0x${et.toString(16)}` });
      continue;
    }
    if ((p.proto === 6 || p.proto === 17) && l4.length >= 4) {
      p.sport = l4.readUInt16BE(0);
      p.dport = l4.readUInt16BE(2);
      const hl = p.proto === 6 ? (l4.length >= 13 ? (l4[12]! >> 4) * 4 : 20) : 8;
      if (p.proto === 6 && l4.length >= 14) p.tcpFlags = l4[13]!;
      p.payload = Buffer.from(l4.subarray(hl));
    } else if ((p.proto === 1 || p.proto === 58) && l4.length >= 1) p.icmpType = l4[0]!;
    const pr =
      p.proto === 6
        ? 'tcp'
        : p.proto === 17
          ? 'udp'
          : p.proto === 1
            ? 'icmp'
            : p.proto === 58
              ? 'icmp6'
              : `proto ${p.proto}`;
    const flags =
      p.tcpFlags === undefined
        ? ''
        : ` [${[...'FSRPAU'].filter((_, i) => p.tcpFlags! & (1 << i)).join('')}]`;
    p.text = `${dir} ${pr} ${p.src}${p.sport !== undefined ? `:${p.sport}` : ''} > ${p.dst}${p.dport !== undefined ? `:${p.dport}` : ''}${flags}${p.icmpType !== undefined ? ` type ${p.icmpType}` : ''}${p.payload?.length ? ` len ${p.payload.length}` : ''}`;
    out.push(p);
  }
  return out;
}

const LAN4 = [
  [10, 8],
  [(172 << 8) | 16, 12],
  [(192 << 8) | 168, 16],
  [(169 << 8) | 254, 16],
  [224, 4],
] as const;

function inLan4(a: string): boolean {
  if (a === '255.255.255.255') return true;
  const n = a.split('.').map(Number);
  const v = ((n[0]! << 24) | (n[1]! << 16) | (n[2]! << 8) | n[3]!) >>> 0;
  return LAN4.some(([p, len]) => {
    const base = (len <= 8 ? p << 24 : len <= 16 ? p << 16 : p) >>> 0;
    const mask = (0xffffffff << (32 - len)) >>> 0;
    return (v & mask) >>> 0 === (base & mask) >>> 0;
  });
}
const inLan6 = (a: string) => /^(f[cd]|fe[89ab]|ff)/i.test(a);

/** a WireGuard message: type 1–4 then three zero bytes, sized as the protocol says */
function isWireGuard(p: Pkt): boolean {
  const b = p.payload;
  if (!b || b.length < 32) return false;
  const t = b.readUInt32LE(0);
  if (t === 1) return b.length === 148;
  if (t === 2) return b.length === 92;
  if (t === 3) return b.length === 64;
  return t === 4 && isTransportTrain(b);
}

export interface Verdict {
  /** egress frames that are not allowed (the leaks), as text */
  leaks: string[];
  /** egress WireGuard datagrams to the endpoint */
  wireguard: number;
  lan: number;
  all: Pkt[];
}

/**
 * The kill switch contract on the wire: every IP packet the client sends on its underlay is
 * encrypted WireGuard to the endpoint (a tunnel's port of it: `wgPorts`), DHCP, neighbour discovery (link-layer resolution like
 * ARP), or — with `allowLan` — to a private/link-local/multicast destination. Destinations in
 * `never` are leaks even under allowLan (a tunnelled app's server), and so is any payload that
 * carries one of the `secrets` (an app's tag in the clear).
 */
export function classify(
  pkts: Pkt[],
  o: {
    allowLan?: boolean;
    never?: string[];
    secrets?: string[];
    /** the endpoint's WireGuard ports of every tunnel the configs have (default: WG_PORT) */
    wgPorts?: readonly number[];
  } = {},
): Verdict {
  const wgPorts = o.wgPorts ?? [WG_PORT];
  const v: Verdict = { leaks: [], wireguard: 0, lan: 0, all: pkts };
  for (const p of pkts) {
    if (!p.out || p.kind === 'arp') continue;
    if (p.kind === 'other') {
      v.leaks.push(p.text);
      continue;
    }
    const clear = (o.secrets ?? []).some((s) => p.payload?.includes(s));
    if (
      p.proto === 17 &&
      p.dst === ENDPOINT &&
      wgPorts.includes(p.dport!) &&
      isWireGuard(p) &&
      !clear
    ) {
      v.wireguard++;
      continue;
    }
    if (p.proto === 17 && p.sport === 68 && p.dport === 67) continue;
    if (p.proto === 17 && p.sport === 546 && p.dport === 547) continue;
    if (p.proto === 58 && p.icmpType !== undefined && p.icmpType >= 133 && p.icmpType <= 136)
      continue;
    const lan = p.kind === 'ipv4' ? inLan4(p.dst!) : inLan6(p.dst!);
    if (o.allowLan && lan && !clear && !(o.never ?? []).includes(p.dst!)) {
      v.lan++;
      continue;
    }
    v.leaks.push(p.text);
  }
  return v;
}

/** the nft table and routes, for failure messages */
export async function diag(t: Topo): Promise<string> {
  const nft = await nsExec(t.client, 'nft', ['list', 'table', 'inet', 'awg'], { allowFail: true });
  const routes = await nsExec(t.client, 'ip', ['route', 'show', 'table', 'all'], {
    allowFail: true,
  });
  const rules = await nsExec(t.client, 'ip', ['rule'], { allowFail: true });
  return [nft.stdout || nft.stderr, rules.stdout, routes.stdout].join('\n----\n');
}
