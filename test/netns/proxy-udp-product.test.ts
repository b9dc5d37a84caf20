/**
 * UDP of apps routed to proxy tunnels, through the product: a YAML config → `awg apply`
 * (detached `awg engine` processes) or `awg up` (engines in the daemon) → nft redirect of the
 * tunnel's UDP → the engine's transparent UDP proxy (conntrack names each flow's destination)
 * → a SOCKS5 UDP association per flow at a real dante in the server namespace → UDP echo
 * servers in the target namespace that answer with the source they see (proxied: dante's
 * external 10.200.72.1 / fd00:200::72:1; direct: the client's 10.200.71.1). Apps are Node
 * dgram clients placed with `awg exec --tunnel/--rule`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detachedControlPath, detachedStats } from '../../src/resources/engine/proxy-detached.js';
import type { ProxyTunnelStatsRow } from '../../src/resources/engine/proxy-host.js';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  show,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import { converged, eventually, startUp, type Up } from './daemon-support.js';
import {
  C4,
  HTTP_PORT,
  S4,
  S4T,
  S6T,
  T4,
  T6,
  createTopology,
  destroyTopology,
  nftCounter,
  startDante,
  startProxies,
  startTarget,
  waitFor,
  type Topology,
} from './proxy-env.js';

const skip = requireNetnsPrereqs(['nft', 'danted', 'tinyproxy', 'microsocks', 'tcpdump']);

/** ports of the UDP echo servers in T */
const ECHO = [7000, 7001];
const URL_T = `http://${T4}:${HTTP_PORT}/`;
/** the killable dante of the fallback tests */
const KILLABLE = 1091;
/** the engines' UDP flows end after this long without traffic (AWG_TEST_PROXY_UDP_IDLE_MS) */
const IDLE_MS = 3000;

/** UDP echo in T on every ECHO port and 53, v4 and v6: answers `<source it sees> <payload>` */
const ECHO_SERVER = `
const dgram = require('node:dgram');
let n = 0;
for (const port of ${JSON.stringify([...ECHO, 53])}) {
  const u = dgram.createSocket({ type: 'udp6' });
  u.on('message', (m, r) => u.send(Buffer.concat([Buffer.from(r.address.replace(/^::ffff:/, '') + ' '), m]), r.port, r.address));
  u.bind(port, '::', () => { if (++n === ${ECHO.length + 1}) console.log('echo ready'); });
}
`;

/**
 * The app: one socket; a 1200-byte "initial" datagram to the first port, then a burst of
 * `burst` datagrams (50…1400 bytes, numbered) spread over every port; prints a JSON summary of
 * the replies: the sources they came from, the addresses the server saw, whether every
 * payload came back intact, and the local port.
 */
const QUIC_LIKE = `
const [host, burst] = [process.argv[1], Number(process.argv[2])];
const ports = ${JSON.stringify(ECHO)};
const s = require('node:dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
const sent = new Map();
const from = new Set(), seen = new Set();
let bad = 0, got = 0;
const payload = (i) => { const b = Buffer.alloc(i === 0 ? 1200 : 50 + ((i * 137) % 1350), 97 + (i % 26)); b.write('#' + i + '#'); return b; };
const done = () => { console.log(JSON.stringify({ got, want: sent.size, bad, from: [...from].sort(), seen: [...seen].sort(), local: s.address().port })); process.exit(0); };
s.on('message', (m, r) => {
  const sp = m.indexOf(32);
  seen.add(m.subarray(0, sp).toString());
  const body = m.subarray(sp + 1);
  const i = Number(/^#(\\d+)#/.exec(body.toString('latin1'))?.[1]);
  if (!sent.has(i) || !sent.get(i).equals(body)) bad++;
  from.add((r.address.includes(':') ? '[' + r.address + ']' : r.address) + ':' + r.port);
  if (++got === 1) for (let j = 1; j <= burst; j++) send(j);
  if (got === sent.size) done();
});
const send = (i) => { const p = payload(i); sent.set(i, p); s.send(p, ports[i % ports.length], host); };
setTimeout(done, 6000);
send(0);
`;

interface QuicResult {
  got: number;
  want: number;
  bad: number;
  from: string[];
  seen: string[];
  local: number;
}

/** the QUIC-like exchange from an app placed by `awg exec <placement>` in ns */
async function quicLike(
  ns: string,
  e: AwgEnv,
  placement: string[],
  host: string,
  burst: number,
): Promise<QuicResult> {
  const r = await awg(
    ns,
    e,
    [
      'exec',
      ...placement,
      '--state-dir',
      e.stateDir,
      '--',
      process.execPath,
      '-e',
      QUIC_LIKE,
      host,
      String(burst),
    ],
    { timeoutMs: 30_000 },
  );
  expect(r.code, show(r)).toBe(0);
  return JSON.parse(r.stdout.trim()) as QuicResult;
}

function config(o: { killSwitch: boolean; tunnels: string[]; destinationRule?: boolean }): string {
  const t: Record<string, string> = {
    su: `{ type: socks5, server: ${S4}, port: 1090, udp: true, dns: [${T4}] }`,
    sk: `{ type: socks5, server: ${S4}, port: ${KILLABLE}, udp: true }`,
    hp: `{ type: http, server: ${S4}, port: 8888 }`,
    sx: `{ type: socks5, server: ${S4}, port: 1080 }`,
  };
  const lines = ['version: 1', 'tunnels:', ...o.tunnels.map((n) => `  ${n}: ${t[n]}`)];
  const rules: string[] = [];
  if (o.tunnels.includes('sk'))
    rules.push(
      '  - { name: gd, match: { name: gd-app }, target: sk, fallback: allow-direct }',
      '  - { name: gb, match: { name: gb-app }, target: sk, fallback: block }',
    );
  if (o.tunnels.includes('hp'))
    rules.push(
      '  - { name: hd, match: { name: hd-app }, target: hp, fallback: allow-direct }',
      '  - { name: hb, match: { name: hb-app }, target: hp, fallback: block }',
    );
  // a destination-only allow-direct rule after the block rule gb: it names no sender, so its
  // redirect must not take gb's traffic (render-proxy.ts, first match)
  if (o.destinationRule)
    rules.push(`  - { name: dd, to: { cidrs: [${T4}/32] }, target: sk, fallback: allow-direct }`);
  if (rules.length) lines.push('rules:', ...rules);
  // IPv6 into the tunnels too (the default, `allow`, leaves it direct)
  lines.push('ipv6: tunnel');
  if (o.killSwitch) lines.push('killSwitch: on');
  return `${lines.join('\n')}\n`;
}

/** the first non-loopback link of ns (the veth to the proxy's namespace) */
async function underlay(ns: string): Promise<string> {
  return (JSON.parse((await nsExec(ns, 'ip', ['-j', 'link'])).stdout) as { ifname: string }[]).find(
    (l) => l.ifname !== 'lo',
  )!.ifname;
}

describe.skipIf(skip)('proxy tunnels carry UDP (awg apply, dante)', () => {
  let topo: Topology | undefined;
  let e: AwgEnv | undefined;
  let killable: NsProcess | undefined;
  const C = () => topo!.c;
  const E = () => e!;
  const sd = () => ['--state-dir', E().stateDir];
  const exec = (placement: string[], cmd: string[], timeoutMs = 30_000) =>
    awg(C(), E(), ['exec', ...placement, ...sd(), '--', ...cmd], { timeoutMs });
  const quic = (placement: string[], host: string, burst = 30) =>
    quicLike(C(), E(), placement, host, burst);
  /** the QUIC-like exchange of an app awg does not place (only destination rules take it) */
  const plainQuic = async (): Promise<QuicResult> =>
    JSON.parse(
      (await nsExec(C(), process.execPath, ['-e', QUIC_LIKE, T4, '5'])).stdout,
    ) as QuicResult;
  const curl = (placement: string[]) => exec(placement, ['curl', '-sS', '--max-time', '8', URL_T]);
  const stats = async (t: string): Promise<ProxyTunnelStatsRow> => {
    const s = await detachedStats(detachedControlPath(E().stateDir, t));
    if (!s) throw new Error(`engine ${t} does not answer`);
    return s;
  };
  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    topo = await createTopology();
    const echo = nsSpawn(topo.t, process.execPath, ['-e', ECHO_SERVER]);
    await waitFor(echo, 'echo ready', 'udp echo');
    await startTarget(topo.t);
    await startProxies(topo);
    await startDante(topo);
    killable = await startDante(topo, KILLABLE);
    e = makeAwgEnv();
    e.env.AWG_TEST_PROXY_UDP_IDLE_MS = String(IDLE_MS);
  }, 120_000);

  afterAll(async () => {
    try {
      if (topo && e) await awg(topo.c, e, ['down']);
    } finally {
      await killable?.kill();
      await destroyTopology(topo);
      cleanupAwgEnv(e);
    }
  }, 60_000);

  it('kill switch on: an app’s UDP to any address and port goes through dante (IPv4 and IPv6), replies come from the original destination, the underlay carries nothing but traffic with the proxy', async () => {
    const cfg = writeConfig(E(), 'ks.yaml', config({ killSwitch: true, tunnels: ['su'] }));
    const r = await awg(C(), E(), ['apply', '-f', cfg], { timeoutMs: 120_000 });
    expect(r.code, show(r)).toBe(0);
    const dump = nsSpawn(C(), 'tcpdump', [
      '-i',
      await underlay(C()),
      '-n',
      '-l',
      '-U',
      '--immediate-mode',
      'ip or (ip6 and not icmp6)',
    ]);
    let v4: QuicResult, v6: QuicResult;
    try {
      await waitFor(dump, 'listening on', 'tcpdump');
      v4 = await quic(['--tunnel', 'su'], T4);
      v6 = await quic(['--tunnel', 'su'], T6);
      await new Promise((res) => setTimeout(res, 500));
    } finally {
      await dump.kill();
    }
    // every datagram came back intact, from the address and port the app sent it to; the
    // server saw dante's external address
    expect(v4).toMatchObject({ got: 31, want: 31, bad: 0, seen: [S4T] });
    expect(v4.from).toEqual(ECHO.map((p) => `${T4}:${p}`));
    expect(v6).toMatchObject({ got: 31, want: 31, bad: 0, seen: [S6T] });
    expect(v6.from).toEqual(ECHO.map((p) => `[${T6}]:${p}`));
    // one socket, two destinations: two flows, two associations
    const st = await stats('su');
    expect(st.udp?.flows?.proxied).toBeGreaterThanOrEqual(4);
    expect(st.udp?.datagrams.down).toBeGreaterThanOrEqual(62);
    const packets = dump
      .output()
      .split('\n')
      .filter((l) => /^\d\d:\d\d:\d\d/.test(l));
    expect(packets.length, dump.output()).toBeGreaterThan(0);
    // nothing to T (or anywhere else) by the underlay: only C ↔ dante (TCP control, UDP relay)
    const other = packets.filter(
      (l) => !/ IP 10\.200\.71\.[12]\.\d+ > 10\.200\.71\.[12]\.\d+: /.test(l),
    );
    expect(other, dump.output()).toEqual([]);
    expect(packets.some((l) => / UDP, length /.test(l))).toBe(true);
  }, 180_000);

  it('UDP/53 to any resolver (here one that does not exist) goes to the tunnel’s `dns` server through the same UDP proxy, answered from the address asked', async () => {
    const script = `const s = require('dgram').createSocket('udp4');
s.on('message', (m, r) => { console.log(r.address + ':' + r.port + ' ' + m.toString()); process.exit(0); });
s.send('dnsq', 53, '10.200.72.99'); setTimeout(() => { console.log('TIMEOUT'); process.exit(4); }, 3000);`;
    const r = await exec(['--tunnel', 'su'], [process.execPath, '-e', script]);
    expect(r.stdout.trim(), show(r)).toBe(`10.200.72.99:53 ${S4T} dnsq`);
  }, 60_000);

  it('idle flows end after the idle timeout: their associations (TCP to dante) close', async () => {
    await quic(['--tunnel', 'su'], T4, 4);
    expect((await stats('su')).udp?.flows?.active).toBeGreaterThan(0);
    const controls = async () =>
      (await nsExec(C(), 'ss', ['-Htn', 'state', 'established', 'dst', `${S4}:1090`])).stdout
        .split('\n')
        .filter((l) => l.trim()).length;
    expect(await controls()).toBeGreaterThan(0);
    await eventually(
      async () => (await stats('su')).udp?.flows?.active === 0,
      'the UDP flows idle out',
      IDLE_MS * 5,
    );
    await eventually(async () => (await controls()) === 0, 'the associations closed', 10_000);
    const down = await awg(C(), E(), ['down']);
    expect(down.code, show(down)).toBe(0);
  }, 60_000);

  it('fallbacks: the proxy down → allow-direct sends directly, block drops; an HTTP tunnel’s UDP follows its rule’s fallback', async () => {
    const cfg = writeConfig(
      E(),
      'fb.yaml',
      config({ killSwitch: false, tunnels: ['sk', 'hp'], destinationRule: true }),
    );
    const v = await awg(C(), E(), ['validate', '-f', cfg]);
    expect(v.stdout + v.stderr).toMatch(
      /rules\[2\]\.target: HTTP CONNECT carries TCP only: this rule's UDP is sent directly \(fallback allow-direct\)/,
    );
    expect(v.stdout + v.stderr).toMatch(
      /rules\[3\]\.target: HTTP CONNECT carries TCP only: this rule's UDP is dropped \(fallback block\)/,
    );
    const r = await awg(C(), E(), ['apply', '-f', cfg], { timeoutMs: 120_000 });
    expect(r.code, show(r)).toBe(0);
    // proxy up: both rules through dante, and an app no rule places, which only dd takes
    for (const rule of ['gd', 'gb'])
      expect((await quic(['--rule', rule], T4, 5)).seen, rule).toEqual([S4T]);
    expect((await plainQuic()).seen).toEqual([S4T]);
    expect((await curl(['--rule', 'gb'])).stdout).toBe(S4T);
    // HTTP CONNECT carries no UDP: allow-direct → directly (the engine's socket), block → dropped
    const hd = await quic(['--rule', 'hd'], T4, 5);
    expect(hd).toMatchObject({ got: 6, bad: 0, seen: [C4] });
    expect(hd.from).toEqual(ECHO.map((p) => `${T4}:${p}`));
    const hbBefore = await nftCounter(C(), 'proxy-nontcp/hp');
    expect((await quic(['--rule', 'hb'], T4, 5)).got).toBe(0);
    expect(await nftCounter(C(), 'proxy-nontcp/hp')).toBeGreaterThan(hbBefore);
    // the proxy dies: allow-direct goes direct at once, block drops
    await killable!.kill();
    const gd = await quic(['--rule', 'gd'], T4, 5);
    expect(gd).toMatchObject({ got: 6, bad: 0, seen: [C4] });
    expect((await quic(['--rule', 'gb'], T4, 5)).got).toBe(0);
    // first match: the block rule's TCP is not redialled direct by dd's listener; dd's own is
    const gbTcp = await curl(['--rule', 'gb']);
    expect(gbTcp.code, show(gbTcp)).not.toBe(0);
    expect(gbTcp.stdout).not.toBe(C4);
    expect((await plainQuic()).seen).toEqual([C4]);
    const ddTcp = await nsExec(C(), 'curl', ['-sS', '--max-time', '8', URL_T], { allowFail: true });
    expect(ddTcp.stdout).toBe(C4);
    const st = await stats('sk');
    expect(st.udp?.flows?.direct).toBeGreaterThan(0);
    expect(st.udp?.errors?.blocked).toBeGreaterThan(0);
    // back up: through the proxy again
    killable = await startDante(topo!, KILLABLE);
    await eventually(
      async () => (await quic(['--rule', 'gd'], T4, 2)).seen.join() === S4T,
      'allow-direct through the proxy again (the health check notices first)',
      90_000,
    );
    expect((await quic(['--rule', 'gb'], T4, 2)).seen).toEqual([S4T]);
    const down = await awg(C(), E(), ['down']);
    expect(down.code, show(down)).toBe(0);
  }, 240_000);
});

describe.skipIf(skip)(
  'proxy tunnels carry UDP in the daemon (awg up): health switches UDP to the fallback',
  () => {
    let topo: Topology | undefined;
    let e: AwgEnv | undefined;
    let up: Up | undefined;
    let killable: NsProcess | undefined;
    const quic = (rule: string) => quicLike(topo!.c, e!, ['--rule', rule], T4, 3);
    const tunnelEvent = (state: string) => (ev: { type: string }) =>
      ev.type === 'tunnel' &&
      (ev as { tunnel?: string }).tunnel === 'sk' &&
      (ev as { state?: string }).state === state;

    beforeAll(async () => {
      await ensureDist();
      topo = await createTopology();
      const echo = nsSpawn(topo.t, process.execPath, ['-e', ECHO_SERVER]);
      await waitFor(echo, 'echo ready', 'udp echo');
      killable = await startDante(topo, KILLABLE);
      e = makeAwgEnv();
    }, 120_000);

    afterAll(async () => {
      try {
        await up?.proc.kill(5000);
        if (topo && e) await awg(topo.c, e, ['down']);
      } finally {
        await killable?.kill();
        await destroyTopology(topo);
        cleanupAwgEnv(e);
      }
    }, 60_000);

    it('up: through dante; down: allow-direct direct, block dropped; up again: through dante', async () => {
      const cfg = writeConfig(e!, 'up.yaml', config({ killSwitch: false, tunnels: ['sk'] }));
      up = startUp(topo!.c, e!, cfg);
      await up.waitEvent(converged, 0, 60_000);
      await up.waitEvent(tunnelEvent('up'), 0, 60_000);
      expect((await quic('gd')).seen).toEqual([S4T]);
      expect((await quic('gb')).seen).toEqual([S4T]);
      const from = up.mark();
      await killable!.kill();
      await up.waitEvent(tunnelEvent('down'), from, 60_000);
      await up.waitEvent(converged, from, 60_000);
      // the rules' firewall actions switched: allow-direct unmarked (the kernel sends it), block dropped
      const gd = await quic('gd');
      expect(gd).toMatchObject({ got: 4, bad: 0, seen: [C4] });
      expect((await quic('gb')).got).toBe(0);
      const again = up.mark();
      killable = await startDante(topo!, KILLABLE);
      await up.waitEvent(tunnelEvent('up'), again, 90_000);
      await up.waitEvent(converged, again, 60_000);
      await eventually(
        async () => (await quic('gb')).seen.join() === S4T,
        'block rule through dante again',
        30_000,
      );
      expect((await quic('gd')).seen).toEqual([S4T]);
    }, 300_000);
  },
);
