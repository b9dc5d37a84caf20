/**
 * UDP through a proxy tunnel (the transparent UDP proxy, src/proxy/udp-redirect.ts) against
 * the same UDP sent directly and against a client that speaks SOCKS5 UDP ASSOCIATE to the
 * same dante itself, in the same run.
 *
 * Topology (test/netns/proxy-env.ts): client ns C → server ns S (dante :1090, UDP
 * ASSOCIATE) → target ns T (a UDP echo on :7000). In C, `awg apply` of a config with one
 * SOCKS5 tunnel (`udp: true`): the app runs under `awg exec --tunnel su`, so its UDP is
 * redirected to the detached engine, which opens an association per flow at dante.
 *
 * The app (one Node process per run and path) measures, on one socket:
 * - the first datagram's round trip (a new flow: for the proxied paths, the TCP connection to
 *   dante and the ASSOCIATE handshake);
 * - the round trip of 64-byte datagrams, one at a time (median and p90 of `pings`);
 * - echoed datagrams per second with `window` 1200-byte datagrams in flight for `seconds`
 *   (each echo sends the next; a datagram not echoed within 200 ms counts as lost and is
 *   replaced), and the payload rate one way.
 * For the transparent path also the engine's CPU time (utime + stime, USER_HZ 100) per
 * echoed datagram (each crosses the engine twice): the measure least moved by other load.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { median, percentile, type Sample } from './lib.js';
import {
  S4,
  T4,
  createTopology,
  destroyTopology,
  startDante,
  waitFor,
} from '../test/netns/proxy-env.js';
import { awg, cleanupAwgEnv, ensureDist, makeAwgEnv, writeConfig } from '../test/helpers/awg.js';
import { nsExec, nsSpawn } from '../test/helpers/netns.js';

const ECHO_PORT = 7000;

const ECHO = `
const u = require('node:dgram').createSocket('udp4');
u.on('message', (m, r) => u.send(m, r.port, r.address));
u.bind(${ECHO_PORT}, () => console.log('echo ready'));
`;

/** argv: mode (plain | socks), pings, window, seconds → one JSON line */
const APP = `
const dgram = require('node:dgram'), net = require('node:net');
const [mode, pings, windowSize, seconds] = [process.argv[1], +process.argv[2], +process.argv[3], +process.argv[4]];
const T = '${T4}', PORT = ${ECHO_PORT};
const head = Buffer.from([0, 0, 0, 1, ...T.split('.').map(Number), PORT >> 8, PORT & 255]);
async function socket() {
  const s = dgram.createSocket('udp4');
  if (mode === 'plain') { await new Promise((r) => s.connect(PORT, T, r)); return { s, send: (b) => s.send(b), strip: (m) => m }; }
  // SOCKS5 UDP ASSOCIATE by hand (no auth), as a proxy-aware client would
  const c = net.connect(1090, '${S4}');
  await new Promise((r) => c.once('connect', r));
  const read = (n) => new Promise((r) => { let b = Buffer.alloc(0); const on = (d) => { b = Buffer.concat([b, d]); if (b.length >= n) { c.off('data', on); r(b); } }; c.on('data', on); });
  c.write(Buffer.from([5, 1, 0])); await read(2);
  c.write(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
  const rep = await read(10);
  await new Promise((r) => s.connect(rep.readUInt16BE(8), '${S4}', r));
  return { s, c, send: (b) => s.send([head, b]), strip: (m) => m.subarray(10) };
}
(async () => {
  const t0 = performance.now();
  const k = await socket();
  const once = (b) => new Promise((res) => { k.s.once('message', (m) => res(k.strip(m))); k.send(b); });
  await once(Buffer.from('first'));
  const first = performance.now() - t0;
  const small = Buffer.alloc(64, 1);
  for (let i = 0; i < 20; i++) await once(small);
  const rtt = [];
  for (let i = 0; i < pings; i++) { const a = performance.now(); await once(small); rtt.push((performance.now() - a) * 1000); }
  const big = Buffer.alloc(1200, 2);
  let got = 0, lost = 0;
  const sentAt = new Map(); let seq = 0, done = false;
  const fire = () => { const b = Buffer.from(big); b.writeUInt32BE(seq, 0); sentAt.set(seq++, performance.now()); k.send(b); };
  k.s.on('message', (m) => { const b = k.strip(m); if (!sentAt.delete(b.readUInt32BE(0))) return; got++; if (!done) fire(); });
  const end = performance.now() + seconds * 1000;
  for (let i = 0; i < windowSize; i++) fire();
  await new Promise((res) => { const t = setInterval(() => {
    const now = performance.now();
    for (const [q, at] of sentAt) if (now - at > 200) { sentAt.delete(q); lost++; if (!done) fire(); }
    if (now >= end) { done = true; clearInterval(t); res(); }
  }, 20); });
  rtt.sort((a, b) => a - b);
  console.log(JSON.stringify({ first, rtt50: rtt[rtt.length >> 1], rtt90: rtt[Math.floor(rtt.length * 0.9)], pps: got / seconds, lost }));
  process.exit(0);
})();
`;

interface AppResult {
  first: number;
  rtt50: number;
  rtt90: number;
  pps: number;
  lost: number;
  /** the engine's CPU time during the run per echoed datagram (transparent path only) */
  engineUs?: number;
}

/** user + system CPU time of a process, µs */
function cpuUs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // fields 14 (utime) and 15 (stime), counted from 1; `rest` starts at field 3
  return ((Number(rest[11]) + Number(rest[12])) * 1e6) / 100;
}

function sample(name: string, unit: string, runs: number[], note?: string): Sample {
  return { name, unit, runs, median: median(runs), p90: percentile(runs, 90), note };
}

export async function proxyUdpBench(smoke: boolean): Promise<Sample[]> {
  if (process.getuid?.() !== 0) throw new Error('the proxy UDP benchmark needs root');
  const runs = smoke ? 1 : 5;
  const pings = smoke ? 20 : 500;
  const window = 32;
  const seconds = smoke ? 1 : 5;
  await ensureDist();
  const topo = await createTopology();
  const e = makeAwgEnv();
  try {
    const echo = nsSpawn(topo.t, process.execPath, ['-e', ECHO]);
    await waitFor(echo, 'echo ready', 'udp echo');
    await startDante(topo);
    const cfg = writeConfig(
      e,
      'bench.yaml',
      `version: 1\ntunnels:\n  su: { type: socks5, server: ${S4}, port: 1090, udp: true }\n`,
    );
    const applied = await awg(topo.c, e, ['apply', '-f', cfg], { timeoutMs: 120_000 });
    if (applied.code !== 0) throw new Error(`awg apply: ${applied.stderr}`);
    const args = (mode: string) => [
      process.execPath,
      '-e',
      APP,
      mode,
      String(pings),
      String(window),
      String(seconds),
    ];
    const paths: { name: string; run: () => Promise<string> }[] = [
      {
        name: 'direct (no proxy)',
        run: async () => (await nsExec(topo.c, args('plain')[0]!, args('plain').slice(1))).stdout,
      },
      {
        name: 'client speaks SOCKS5 UDP to dante',
        run: async () => (await nsExec(topo.c, args('socks')[0]!, args('socks').slice(1))).stdout,
      },
      {
        name: 'transparent (awg exec --tunnel su)',
        run: async () => {
          const pid = (
            JSON.parse(readFileSync(join(e.stateDir, 'engine-su.json'), 'utf8')) as { pid: number }
          ).pid;
          const c0 = cpuUs(pid);
          const r = await awg(
            topo.c,
            e,
            ['exec', '--tunnel', 'su', '--state-dir', e.stateDir, '--', ...args('plain')],
            { timeoutMs: 120_000 },
          );
          if (r.code !== 0) throw new Error(`awg exec: ${r.stderr}`);
          const res = JSON.parse(r.stdout.trim()) as AppResult;
          const datagrams = res.pps * seconds + pings + 21;
          return JSON.stringify({ ...res, engineUs: (cpuUs(pid) - c0) / datagrams });
        },
      },
    ];
    const got = new Map<string, AppResult[]>(paths.map((p) => [p.name, []]));
    for (let i = 0; i < runs; i++)
      for (const p of paths) got.get(p.name)!.push(JSON.parse((await p.run()).trim()) as AppResult);
    const rows: [string, string, (x: AppResult) => number | undefined, string?][] = [
      ['first datagram round trip', 'ms', (x) => x.first],
      ['64-byte round trip', 'µs', (x) => x.rtt50, `median of ${pings}`],
      ['64-byte round trip p90', 'µs', (x) => x.rtt90],
      ['1200-byte datagrams echoed', 'per s', (x) => x.pps, `${window} in flight for ${seconds} s`],
      ['payload one way', 'Mbit/s', (x) => (x.pps * 1200 * 8) / 1e6],
      ['datagrams lost', 'count', (x) => x.lost],
      [
        'engine CPU per echoed datagram',
        'µs',
        (x) => x.engineUs,
        'both directions; includes the run’s conntrack lookup and association set-up',
      ],
    ];
    const out: Sample[] = [];
    for (const p of paths) {
      const xs = got.get(p.name)!;
      for (const [what, unit, f, note] of rows) {
        const v = xs.map(f);
        if (v.every((n) => n !== undefined)) out.push(sample(`${p.name}: ${what}`, unit, v, note));
      }
    }
    return out;
  } finally {
    await awg(topo.c, e, ['down']).catch(() => undefined);
    await destroyTopology(topo);
    cleanupAwgEnv(e);
  }
}
