/**
 * Shared topology for the proxy netns tests and the Step 6 benchmark.
 *
 *   client ns C ── 10.200.71.0/24, fd00:200::71:0/120 ── proxy server ns S ── 10.200.72.0/24,
 *   fd00:200::72:0/120 ── target ns T
 *
 * S runs the real proxies (microsocks, tinyproxy, dante) and routes between C and T, so a
 * direct connection from C reaches T too: T's HTTP server answers with the peer address it
 * sees, which tells proxied (S's 10.200.72.1) from direct (C's 10.200.71.1) apart. C runs the
 * transparent proxy (proxy-harness.ts, a child process inside C) and the product's nft
 * table (renderTable) with a default-route mark and a `redirectPort`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderTable } from '../../src/resources/firewall/render.js';
import type { NftPolicy } from '../../src/resources/firewall/policy.js';
import {
  createNetns,
  destroyNetns,
  netnsPath,
  nsExec,
  nsSpawn,
  vethPair,
  type NsProcess,
} from '../helpers/netns.js';
import type { HarnessConfig } from './proxy-harness.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = join(ROOT, 'node_modules/tsx/dist/loader.mjs');

export const C4 = '10.200.71.1';
export const S4 = '10.200.71.2';
export const S4T = '10.200.72.1';
export const T4 = '10.200.72.2';
export const C6 = 'fd00:200::71:1';
export const S6 = 'fd00:200::71:2';
export const S6T = 'fd00:200::72:1';
export const T6 = 'fd00:200::72:2';
export const HTTP_PORT = 8080;
export const UDP_ECHO_PORT = 5353;

export const MASK = 0x00ff0000;
export const BYPASS = MASK;
export const TUNNEL_MARK = 0x00010000;
export const REDIRECT_PORT = 15001;

export interface Topology {
  c: string;
  s: string;
  t: string;
  dir: string;
}

export async function createTopology(): Promise<Topology> {
  const c = await createNetns('pxc');
  const s = await createNetns('pxs');
  const t = await createNetns('pxt');
  const dir = mkdtempSync(join(tmpdir(), 'awgt-proxy-'));
  await vethPair(c, s, { addrA: [`${C4}/24`, `${C6}/120`], addrB: [`${S4}/24`, `${S6}/120`] });
  await vethPair(s, t, { addrA: [`${S4T}/24`, `${S6T}/120`], addrB: [`${T4}/24`, `${T6}/120`] });
  await nsExec(s, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await nsExec(s, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
  await nsExec(c, 'ip', ['route', 'add', '10.200.72.0/24', 'via', S4]);
  await nsExec(c, 'ip', ['-6', 'route', 'add', 'fd00:200::72:0/120', 'via', S6]);
  await nsExec(t, 'ip', ['route', 'add', '10.200.71.0/24', 'via', S4T]);
  await nsExec(t, 'ip', ['-6', 'route', 'add', 'fd00:200::71:0/120', 'via', S6T]);
  return { c, s, t, dir };
}

export async function destroyTopology(topo: Topology | undefined): Promise<void> {
  if (!topo) return;
  for (const ns of [topo.c, topo.s, topo.t]) await destroyNetns(ns);
  rmSync(topo.dir, { recursive: true, force: true });
}

/** HTTP server in T: `/` answers the peer address; `/bytes?n=N` streams N bytes. UDP echo prefixes the peer. */
const TARGET_SERVER = `
const http = require('node:http');
const dgram = require('node:dgram');
const chunk = Buffer.alloc(65536, 120);
const srv = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/bytes') {
    let n = Number(u.searchParams.get('n') || 0);
    res.writeHead(200, { 'content-length': String(n) });
    const pump = () => {
      while (n > 0) {
        const c = n >= chunk.length ? chunk : chunk.subarray(0, n);
        n -= c.length;
        if (!res.write(c)) return res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  if (req.method === 'POST') {
    let n = 0;
    req.on('data', (d) => (n += d.length));
    req.on('end', () => res.end(String(n)));
    return;
  }
  res.end(req.socket.remoteAddress.replace(/^::ffff:/, ''));
});
srv.keepAliveTimeout = 1000;
srv.listen(${HTTP_PORT}, '::', () => console.log('http ready'));
const u = dgram.createSocket({ type: 'udp6' });
u.on('message', (m, r) => u.send(Buffer.concat([Buffer.from(r.address.replace(/^::ffff:/, '') + ' '), m]), r.port, r.address));
u.bind(${UDP_ECHO_PORT}, '::', () => console.log('udp ready'));
`;

export async function waitFor(p: NsProcess, text: string, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (p.output().includes(text)) return;
    if (p.child.exitCode !== null) throw new Error(`${what} exited: ${p.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${what} did not become ready: ${p.output()}`);
}

/** Waits until something accepts TCP on host:port inside ns. */
export async function waitTcp(ns: string, host: string, port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const r = await nsExec(ns, 'bash', ['-c', `exec 3<>/dev/tcp/${host}/${port}`], {
      allowFail: true,
    });
    if (r.code === 0) return;
    await new Promise((r2) => setTimeout(r2, 20));
  }
  throw new Error(`nothing listens on ${host}:${port} in ${ns}`);
}

export async function startTarget(t: string): Promise<NsProcess> {
  const p = nsSpawn(t, process.execPath, ['-e', TARGET_SERVER]);
  await waitFor(p, 'udp ready', 'target server');
  await waitFor(p, 'http ready', 'target server');
  return p;
}

export const USER = 'awguser';
export const PASS = 'pa55-w0rd';

export interface Proxies {
  socks: number;
  socksAuth: number;
  http: number;
  httpAuth: number;
  procs: NsProcess[];
}

function tinyproxyConf(dir: string, port: number, auth: boolean): string {
  const f = join(dir, `tinyproxy-${port}.conf`);
  writeFileSync(
    f,
    [
      'User nobody',
      'Group nogroup',
      `Port ${port}`,
      `Listen ${S4}`,
      'Timeout 60',
      'MaxClients 2000',
      'LogLevel Error',
      'DisableViaHeader Yes',
      'Allow 10.200.71.0/24',
      ...(auth ? [`BasicAuth ${USER} ${PASS}`] : []),
      '',
    ].join('\n'),
  );
  return f;
}

/** microsocks (no auth, auth) and tinyproxy (no auth, auth) in S. */
export async function startProxies(topo: Topology): Promise<Proxies> {
  const procs = [
    nsSpawn(topo.s, 'microsocks', ['-i', S4, '-p', '1080']),
    nsSpawn(topo.s, 'microsocks', ['-i', S4, '-p', '1081', '-u', USER, '-P', PASS]),
    nsSpawn(topo.s, 'tinyproxy', ['-d', '-c', tinyproxyConf(topo.dir, 8888, false)]),
    nsSpawn(topo.s, 'tinyproxy', ['-d', '-c', tinyproxyConf(topo.dir, 8889, true)]),
  ];
  for (const port of [1080, 1081, 8888, 8889]) await waitTcp(topo.s, S4, port);
  return { socks: 1080, socksAuth: 1081, http: 8888, httpAuth: 8889, procs };
}

/** dante with UDP ASSOCIATE on S4:`port` (default 1090; no auth), external addresses S4T and S6T. */
export async function startDante(topo: Topology, port = 1090): Promise<NsProcess> {
  const f = join(topo.dir, `danted-${port}.conf`);
  writeFileSync(
    f,
    [
      'logoutput: stderr',
      `internal: ${S4} port = ${port}`,
      `external: ${S4T}`,
      `external: ${S6T}`,
      'socksmethod: none',
      'clientmethod: none',
      'user.privileged: root',
      'user.unprivileged: nobody',
      'client pass { from: 10.200.71.0/24 to: 0/0 }',
      'socks pass { from: 10.200.71.0/24 to: 0/0 command: connect udpassociate }',
      'socks pass { from: 0/0 to: 10.200.71.0/24 command: udpreply }',
      '',
    ].join('\n'),
  );
  const p = nsSpawn(topo.s, 'danted', ['-f', f, '-p', join(topo.dir, `danted-${port}.pid`)]);
  await waitTcp(topo.s, S4, port);
  return p;
}

export function policy(
  opts: { killSwitch?: 'on' | 'off'; endpoints?: { address: string; port: number }[] } = {},
): NftPolicy {
  return {
    table: 'awgt_proxy',
    linkPrefix: 'awg-',
    fwmarkMask: MASK,
    bypassMark: BYPASS,
    killSwitch: opts.killSwitch ?? 'off',
    dnsLeakProtection: false,
    tunnels: [
      {
        name: 'px',
        mark: TUNNEL_MARK,
        endpoints: (opts.endpoints ?? []).map((e) => ({ ...e, protocol: 'tcp' as const })),
        resolvers: [],
        redirectPort: REDIRECT_PORT,
      },
    ],
    apps: [],
    defaultRoute: { mark: TUNNEL_MARK, ipv6: 'tunnel' },
    blockMarks: [],
  };
}

/**
 * A stand-in kill switch in the postrouting hook: only loopback and bypass-marked packets
 * leave C. The product's kill switch (filter_out, output hook) cannot be used with a proxy
 * tunnel today: in the output hook `oifname` is the device chosen BEFORE nat_out's redirect
 * re-routed the packet to lo, so the redirected SYN misses `oifname "lo" accept` and is
 * dropped (found by this test; reported to the lead).
 */
export const GUARD = `table inet awgt_guard {
	chain post {
		type filter hook postrouting priority filter; policy accept;
		oifname "lo" accept
		meta mark & 0x${MASK.toString(16)} == 0x${BYPASS.toString(16)} counter accept comment "bypass"
		counter drop comment "guard"
	}
}
`;

export async function loadGuard(ns: string): Promise<void> {
  await nsExec(ns, 'nft', ['delete', 'table', 'inet', 'awgt_guard'], { allowFail: true });
  await nsExec(ns, 'nft', ['-f', '-'], { input: GUARD });
}

/** Loads (replacing) the product's table for `p` in ns. */
export async function loadPolicy(ns: string, p: NftPolicy): Promise<void> {
  await nsExec(ns, 'nft', ['delete', 'table', 'inet', p.table], { allowFail: true });
  await nsExec(ns, 'nft', ['-f', '-'], { input: renderTable(p) });
}

export interface Harness {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  ready: { port: number; udp?: { address: string; port: number } };
  stats(): Promise<HarnessStats>;
  command(cmd: string, key: string): Promise<Record<string, unknown>>;
  events(name: string): Record<string, unknown>[];
  stop(): Promise<void>;
}

export interface HarnessStats {
  proxy: {
    connections: { active: number; total: number };
    bytes: { up: number; down: number };
    errors: Record<string, number>;
  };
  udp?: {
    datagrams: { up: number; down: number; dropped: number };
    errors: Record<string, number>;
  };
  health?: string;
  rss: number;
}

const harnesses = new Set<Harness>();

/** Starts proxy-harness.ts inside ns (nsenter) and waits for {ready}. */
export async function startHarness(ns: string, cfg: HarnessConfig): Promise<Harness> {
  const child = spawn(
    'nsenter',
    [
      `--net=${netnsPath(ns)}`,
      '--',
      process.execPath,
      '--import',
      `file://${TSX}`,
      join(ROOT, 'test/netns/proxy-harness.ts'),
      JSON.stringify(cfg),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT },
  );
  const lines: Record<string, unknown>[] = [];
  let err = '';
  let buf = '';
  const waiters: (() => void)[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        err += `${l}\n`;
      }
      for (const w of waiters.splice(0)) w();
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const waitKey = async (key: string, from: number): Promise<Record<string, unknown>> => {
    for (;;) {
      const hit = lines.slice(from).find((l) => key in l);
      if (hit) return hit;
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`harness exited: ${err}`);
      await Promise.race([
        new Promise<void>((r) => waiters.push(r)),
        exited,
        new Promise((r) => setTimeout(r, 200)),
      ]);
    }
  };
  const h: Harness = {
    child,
    lines,
    ready: { port: 0 },
    async command(cmd, key) {
      const from = lines.length;
      child.stdin!.write(`${cmd}\n`);
      return await waitKey(key, from);
    },
    async stats() {
      return (await h.command('stats', 'stats')).stats as HarnessStats;
    },
    events: (name) => lines.filter((l) => l.event === name),
    async stop() {
      harnesses.delete(h);
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin!.write('exit\n');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
    },
  };
  harnesses.add(h);
  h.ready = (await waitKey('ready', 0)).ready as Harness['ready'];
  return h;
}

export async function stopHarnesses(): Promise<void> {
  await Promise.all([...harnesses].map((h) => h.stop()));
}

/** curl inside ns; returns {code, body}. */
export async function curl(
  ns: string,
  args: string[],
  timeoutS = 10,
): Promise<{ code: number; body: string; stderr: string }> {
  const r = await nsExec(ns, 'curl', ['-sS', '--max-time', String(timeoutS), ...args], {
    allowFail: true,
    timeoutMs: (timeoutS + 5) * 1000,
  });
  return { code: r.code, body: r.stdout, stderr: r.stderr };
}

/** packets counted by the rules of our table (`inet awg`) in ns that carry this comment */
export async function nftCounter(ns: string, comment: string): Promise<number> {
  const j = JSON.parse(
    (await nsExec(ns, 'nft', ['-j', 'list', 'table', 'inet', 'awg'])).stdout,
  ) as {
    nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
  };
  let n = 0;
  for (const o of j.nftables)
    if (o.rule?.comment === comment) n += o.rule.expr.find((x) => x.counter)?.counter?.packets ?? 0;
  return n;
}
