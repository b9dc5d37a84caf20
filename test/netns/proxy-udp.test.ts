/**
 * UDP through SOCKS5 UDP ASSOCIATE against a real dante server (microsocks has no UDP).
 * The relay (src/proxy/socks5-udp.ts) forwards a local port to one fixed destination — the
 * per-app-DNS use case — so the client sends to 127.0.0.1:RELAY and the UDP echo server in
 * the target namespace must see dante's external address, not the client's.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nsExec, nsSpawn, requireNetnsPrereqs, sweepStaleNetns } from '../helpers/netns.js';
import {
  BYPASS,
  C4,
  REDIRECT_PORT,
  S4,
  S4T,
  S6T,
  T4,
  T6,
  UDP_ECHO_PORT,
  createTopology,
  destroyTopology,
  loadGuard,
  startDante,
  startHarness,
  startTarget,
  stopHarnesses,
  waitFor,
  type Topology,
} from './proxy-env.js';

const skip = requireNetnsPrereqs(['nft', 'danted']);

/** one datagram to host:port from inside ns; resolves with the answer text ('' on timeout) */
async function udpAsk(ns: string, host: string, port: number, text: string): Promise<string> {
  const script = `
const s = require('node:dgram').createSocket(${JSON.stringify(host.includes(':') ? 'udp6' : 'udp4')});
const t = setTimeout(() => { s.close(); }, 5000);
s.on('message', (m) => { process.stdout.write(m.toString()); clearTimeout(t); s.close(); });
s.send(${JSON.stringify(text)}, ${port}, ${JSON.stringify(host)});`;
  return (await nsExec(ns, process.execPath, ['-e', script])).stdout;
}

describe.skipIf(skip)('proxy tunnels: UDP through SOCKS5 UDP ASSOCIATE (dante)', () => {
  let topo: Topology | undefined;

  beforeAll(async () => {
    await sweepStaleNetns();
    topo = await createTopology();
    await startTarget(topo.t);
    await startDante(topo);
    // only loopback and bypass-marked packets may leave the client namespace
    await loadGuard(topo.c);
  });
  afterEach(async () => {
    await stopHarnesses();
  });
  afterAll(async () => {
    await stopHarnesses();
    await destroyTopology(topo);
  });

  it('the guard drops the client’s own UDP (control)', async () => {
    expect(await udpAsk(topo!.c, T4, UDP_ECHO_PORT, 'direct')).toBe('');
  });

  it.each([
    ['IPv4', T4, S4T],
    ['IPv6', T6, S6T],
  ])('%s destination: the echo server sees the proxy’s address', async (_n, target, seen) => {
    const h = await startHarness(topo!.c, {
      listenPort: REDIRECT_PORT,
      upstreams: [{ type: 'socks5', server: S4, port: 1090 }],
      fallback: 'block',
      bypassMark: BYPASS,
      udp: {
        listenHost: '127.0.0.1',
        listenPort: 5300,
        target: { host: target, port: UDP_ECHO_PORT },
      },
    });
    const a = await udpAsk(topo!.c, '127.0.0.1', 5300, 'hello');
    expect(a).toBe(`${seen} hello`);
    expect(a).not.toContain(C4);
    const b = await udpAsk(topo!.c, '127.0.0.1', 5300, 'again');
    expect(b).toBe(`${seen} again`);
    const st = await h.stats();
    expect(st.udp?.datagrams).toMatchObject({ up: 2, down: 2, dropped: 0 });
    await h.stop();
  });

  it('ProxyTunnelRuntime (socks5, udp: true) carries the configured UDP forward', async () => {
    const h = await startHarness(topo!.c, {
      listenPort: REDIRECT_PORT,
      upstreams: [],
      fallback: 'block',
      bypassMark: BYPASS,
      udp: { listenHost: '127.0.0.1', listenPort: 5301, target: { host: T4, port: UDP_ECHO_PORT } },
      runtime: { tunnel: { type: 'socks5', server: S4, port: 1090, udp: true, dns: [] } },
    });
    expect(h.ready.udp?.port).toBe(5301);
    expect(await udpAsk(topo!.c, '127.0.0.1', 5301, 'rt')).toBe(`${S4T} rt`);
    expect((await h.stats()).udp?.datagrams).toMatchObject({ up: 1, down: 1 });
  });

  it('a forger on the network cannot inject replies into the relay (only the relay address, only the target)', async () => {
    const h = await startHarness(topo!.c, {
      listenPort: REDIRECT_PORT,
      upstreams: [{ type: 'socks5', server: S4, port: 1090 }],
      fallback: 'block',
      bypassMark: BYPASS,
      udp: { listenHost: '127.0.0.1', listenPort: 5302, target: { host: T4, port: UDP_ECHO_PORT } },
    });
    const go = join(topo!.dir, 'go');
    // the app: asks once, prints every datagram it gets, asks again when told to (a file), ends on the second echo
    const app = nsSpawn(topo!.c, process.execPath, [
      '-e',
      `
const fs = require('node:fs');
const s = require('node:dgram').createSocket('udp4');
let n = 0;
s.on('message', (m) => { console.log('got ' + m); if (++n === 1) { const t = setInterval(() => { if (fs.existsSync(${JSON.stringify(go)})) { clearInterval(t); s.send('q2', 5302, '127.0.0.1'); } }, 20); } else if (String(m).endsWith('q2')) process.exit(0); });
s.bind(0, '127.0.0.1', () => s.send('q1', 5302, '127.0.0.1'));
setTimeout(() => process.exit(3), 15000);`,
    ]);
    await waitFor(app, `got ${S4T} q1`, 'first echo');
    // the relay's UDP socket towards dante (the one that is not on loopback)
    const ss = (await nsExec(topo!.c, 'ss', ['-Huan'])).stdout
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[3] ?? '');
    const ports = ss
      .filter((a) => !a.startsWith('127.') && !a.startsWith('[::1]') && !a.endsWith(':5302'))
      .map((a) => Number(a.split(':').pop()))
      .filter((n) => n > 0);
    expect(ports.length, ss.join('\n')).toBeGreaterThan(0);
    // from S (a host on the path): well-formed SOCKS5 UDP frames "from the target" to each candidate port
    const frame = [
      0,
      0,
      0,
      1,
      ...T4.split('.').map(Number),
      UDP_ECHO_PORT >> 8,
      UDP_ECHO_PORT & 0xff,
      ...Buffer.from('FORGED'),
    ];
    await nsExec(topo!.s, process.execPath, [
      '-e',
      `
const s = require('node:dgram').createSocket('udp4');
const f = Buffer.from(${JSON.stringify(frame)});
let left = ${ports.length};
for (const p of ${JSON.stringify(ports)}) s.send(f, p, '${C4}', () => { if (--left === 0) s.close(); });`,
    ]);
    writeFileSync(go, '');
    expect(await app.exited, app.output()).toBe(0);
    expect(app.output()).toBe(`got ${S4T} q1\ngot ${S4T} q2\n`);
    expect(existsSync(go)).toBe(true);
    await h.stop();
  });

  it('an unreachable SOCKS server drops the datagrams and reports the failure', async () => {
    const h = await startHarness(topo!.c, {
      listenPort: REDIRECT_PORT,
      upstreams: [{ type: 'socks5', server: S4, port: 1099 }],
      fallback: 'block',
      bypassMark: BYPASS,
      udp: { listenHost: '127.0.0.1', listenPort: 5300, target: { host: T4, port: UDP_ECHO_PORT } },
    });
    expect(await udpAsk(topo!.c, '127.0.0.1', 5300, 'lost')).toBe('');
    const ev = h.events('associate-error');
    expect(ev.length).toBeGreaterThan(0);
    expect(ev[0]!.kind).toBe('unreachable');
    expect((await h.stats()).udp?.datagrams.dropped).toBeGreaterThan(0);
    await h.stop();
  });
});
