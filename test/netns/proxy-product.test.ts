/**
 * Proxy tunnels through the product: a YAML config → `awg apply` (detached `awg engine`
 * processes) or `awg up` (engines in the daemon) → the rendered nft table → the transparent
 * proxy → real upstreams in a server namespace (microsocks with and without auth, dante for
 * UDP ASSOCIATE, tinyproxy for HTTP CONNECT) → servers in a third namespace that report the
 * source address they see (proxied: the proxy's 10.200.72.1; direct: the client's 10.200.71.1).
 * Apps are placed with `awg exec --tunnel/--rule/--direct`.
 */
import { readableLine } from '../../src/util/log.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import {
  C4,
  HTTP_PORT,
  PASS,
  S4,
  S4T,
  T4,
  UDP_ECHO_PORT,
  USER,
  createTopology,
  destroyTopology,
  nftCounter as nftCounterIn,
  startDante,
  startProxies,
  startTarget,
  waitFor,
  waitTcp,
  type Topology,
} from './proxy-env.js';
import { converged, startUp, eventually, type Up } from './daemon-support.js';

const skip = requireNetnsPrereqs(['nft', 'curl', 'microsocks', 'tinyproxy', 'danted', 'tcpdump']);
const KILLABLE = 1085;
const URL_T = `http://${T4}:${HTTP_PORT}/`;

/** DNS server on port 53 (UDP and TCP) in T: any A query is answered with the asker's IPv4 address. */
const DNS_SERVER = `
const dgram = require('node:dgram');
const net = require('node:net');
function answer(q, peer) {
  let o = 12;
  while (q[o] !== 0) o += q[o] + 1;
  const qend = o + 5;
  const ip = peer.replace(/^::ffff:/, '').split('.').map(Number);
  const head = Buffer.from(q.subarray(0, qend));
  head.writeUInt16BE(0x8180, 2); head.writeUInt16BE(1, 4); head.writeUInt16BE(1, 6);
  head.writeUInt16BE(0, 8); head.writeUInt16BE(0, 10);
  return Buffer.concat([head, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, ...ip])]);
}
const u = dgram.createSocket({ type: 'udp6' });
u.on('message', (m, r) => { console.log('udp from ' + r.address.replace(/^::ffff:/, '')); u.send(answer(m, r.address), r.port, r.address); });
u.bind(53, '::', () => console.log('dns udp ready'));
net.createServer((s) => {
  let buf = Buffer.alloc(0);
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
    console.log('tcp from ' + s.remoteAddress.replace(/^::ffff:/, ''));
    const a = answer(buf.subarray(2), s.remoteAddress);
    const l = Buffer.alloc(2); l.writeUInt16BE(a.length);
    s.end(Buffer.concat([l, a]));
  });
  s.on('error', () => {});
}).listen(53, '::', () => console.log('dns tcp ready'));
`;

/** c-ares (Node's Resolver) over UDP (more resolvers in proxy-dns.test.ts) */
const RESOLVE = `const r = new (require('dns').promises.Resolver)({ timeout: 3000, tries: 1 }); r.setServers(['${T4}']);
r.resolve4('who.test').then((a) => console.log(a.join(',')), (e) => { console.log('ERR ' + e.code); process.exit(3); });`;

/** one datagram to T's UDP echo; prints the echo or TIMEOUT */
const UDP_PROBE = `const s = require('dgram').createSocket('udp4'); s.on('message', (m) => { console.log(String(m)); process.exit(0); });
s.send('probe', ${UDP_ECHO_PORT}, '${T4}'); setTimeout(() => { console.log('TIMEOUT'); process.exit(4); }, 3000);`;

function config(o: { passFile: string; killSwitch?: boolean; only?: string[] }): string {
  const tunnels: Record<string, string> = {
    sx: `{ type: socks5, server: ${S4}, port: 1080 }`,
    sa: `{ type: socks5, server: ${S4}, port: 1081, auth: { username: ${USER}, password: { file: ${o.passFile} } } }`,
    hp: `{ type: http, server: ${S4}, port: 8888, dns: [${T4}] }`,
    su: `{ type: socks5, server: ${S4}, port: 1090, udp: true, dns: [${T4}] }`,
    sk: `{ type: socks5, server: ${S4}, port: ${KILLABLE} }`,
  };
  const names = o.only ?? Object.keys(tunnels);
  const lines = ['version: 1', 'tunnels:', ...names.map((n) => `  ${n}: ${tunnels[n]}`)];
  if (names.includes('sk'))
    lines.push(
      'rules:',
      '  - { name: kd, match: { name: kd-app }, target: sk, fallback: allow-direct }',
      '  - { name: kb, match: { name: kb-app }, target: sk, fallback: block }',
    );
  if (o.killSwitch) lines.push('killSwitch: on');
  return `${lines.join('\n')}\n`;
}

describe.skipIf(skip)(
  'proxy tunnels through the product (awg apply, awg exec, real upstreams)',
  () => {
    let topo: Topology | undefined;
    let e: AwgEnv | undefined;
    let killable: NsProcess | undefined;
    let dns: NsProcess | undefined;
    const C = () => topo!.c;
    const E = () => e!;
    const sd = () => ['--state-dir', E().stateDir];
    let cfg = '';

    /** `awg exec <placement> -- cmd…` in C */
    const exec = (placement: string[], cmd: string[], timeoutMs = 30_000) =>
      awg(C(), E(), ['exec', ...placement, ...sd(), '--', ...cmd], { timeoutMs });
    const curl = (placement: string[], url = URL_T, extra: string[] = []) =>
      exec(placement, ['curl', '-sS', '--max-time', '8', ...extra, url]);

    const nftCounter = (comment: string) => nftCounterIn(C(), comment);

    beforeAll(async () => {
      await ensureDist();
      await sweepStaleNetns();
      topo = await createTopology();
      await startTarget(topo.t);
      dns = nsSpawn(topo.t, process.execPath, ['-e', DNS_SERVER]);
      await waitFor(dns, 'dns tcp ready', 'dns server');
      await waitFor(dns, 'dns udp ready', 'dns server');
      await startProxies(topo);
      await startDante(topo);
      killable = nsSpawn(topo.s, 'microsocks', ['-i', S4, '-p', String(KILLABLE)]);
      await waitTcp(topo.s, S4, KILLABLE);
      e = makeAwgEnv();
      writeFileSync(join(e.dir, 'sa.pass'), 'not-the-password\n', { mode: 0o600 });
      cfg = writeConfig(e, 'proxy.yaml', config({ passFile: 'sa.pass' }));
    }, 120_000);

    afterAll(async () => {
      try {
        if (topo && e) await awg(topo.c, e, ['down']);
      } finally {
        await killable?.kill();
        await dns?.kill();
        await destroyTopology(topo);
        cleanupAwgEnv(e);
      }
    }, 60_000);

    it('apply starts one detached engine per proxy tunnel; a second apply changes nothing', async () => {
      const r = await awg(C(), E(), ['apply', '-f', cfg], { timeoutMs: 120_000 });
      expect(r.code, show(r)).toBe(0);
      expect(r.mutations.filter((m) => m.includes('awg engine')).length, show(r)).toBe(5);
      const again = await awg(C(), E(), ['diff', '-f', cfg]);
      expect(again.code, show(again)).toBe(0);
      const ports = (await nsExec(C(), 'ss', ['-Htlnp'])).stdout;
      expect(ports).toMatch(/:152\d\d\b/);
    }, 180_000);

    it('a matched app reaches the server through SOCKS5 and HTTP CONNECT; an unmatched one goes direct', async () => {
      for (const t of ['sx', 'hp', 'su']) {
        const r = await curl(['--tunnel', t]);
        expect(r.code, `${t}: ${show(r)}`).toBe(0);
        expect(r.stdout, t).toBe(S4T);
      }
      const d = await curl(['--direct']);
      expect(d.stdout, show(d)).toBe(C4);
      const plain = await nsExec(C(), 'curl', ['-sS', '--max-time', '8', URL_T], {
        allowFail: true,
      });
      expect(plain.stdout).toBe(C4);
      expect(await nftCounter('proxy/sx')).toBeGreaterThan(0);
    }, 120_000);

    it('DNS of a proxy tunnel: UDP through SOCKS5 UDP ASSOCIATE (udp: true), UDP forwarded as DNS over TCP through HTTP CONNECT', async () => {
      const viaUdp = await exec(['--tunnel', 'su'], [process.execPath, '-e', RESOLVE]);
      expect(viaUdp.stdout.trim(), show(viaUdp)).toBe(S4T);
      expect(dns!.output()).toContain(`udp from ${S4T}`);
      const viaTcp = await exec(['--tunnel', 'hp'], [process.execPath, '-e', RESOLVE]);
      expect(viaTcp.stdout.trim(), show(viaTcp)).toBe(S4T);
      expect(dns!.output()).toContain(`tcp from ${S4T}`);
      const direct = await exec(['--direct'], [process.execPath, '-e', RESOLVE]);
      expect(direct.stdout.trim(), show(direct)).toBe(C4);
    }, 60_000);

    it('UDP of an app in a tunnel without udp: true (strict) is dropped, not sent direct', async () => {
      const before = await nftCounter('proxy-nontcp/sx');
      const r = await exec(['--tunnel', 'sx'], [process.execPath, '-e', UDP_PROBE]);
      expect(r.stdout.trim(), show(r)).toBe('TIMEOUT');
      expect(await nftCounter('proxy-nontcp/sx')).toBeGreaterThan(before);
      const d = await exec(['--direct'], [process.execPath, '-e', UDP_PROBE]);
      expect(d.stdout.trim(), show(d)).toBe(`${C4} probe`);
    }, 60_000);

    it('wrong credentials: the connection fails and the engine log names the cause; the right password restarts the engine', async () => {
      const bad = await curl(['--tunnel', 'sa']);
      expect(bad.code, show(bad)).not.toBe(0);
      const log = join(E().stateDir, 'logs', 'engine-sa.log');
      // the engine log is JSON lines (util/log.ts); read it as a person would
      const logText = () => readFileSync(log, 'utf8').split('\n').map(readableLine).join('\n');
      await eventually(
        async () =>
          /warn .*auth-failed: SOCKS5 proxy .* refused the credentials of user "awguser"/.test(
            logText(),
          ),
        'auth-failed in the engine log',
      );
      writeFileSync(join(E().dir, 'sa.pass'), `${PASS}\n`);
      const plan = await awg(C(), E(), ['diff', '-f', cfg]);
      expect(plan.code, show(plan)).toBe(2);
      const r = await awg(C(), E(), ['apply', '-f', cfg], { timeoutMs: 120_000 });
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout + r.stderr).not.toContain(PASS);
      const good = await curl(['--tunnel', 'sa']);
      expect(good.stdout, show(good)).toBe(S4T);
      const none = await awg(C(), E(), ['diff', '-f', cfg]);
      expect(none.code, show(none)).toBe(0);
    }, 180_000);

    it('upstream killed mid-transfer: the transfer fails; then allow-direct redials direct and block fails', async () => {
      expect((await curl(['--rule', 'kd'])).stdout).toBe(S4T);
      expect((await curl(['--rule', 'kb'])).stdout).toBe(S4T);
      // What the kernel buffers between the server and curl still arrives after the cut. With
      // receive buffers autotuned up to tcp_rmem's maximum (32 MiB on recent kernels) curl's and
      // the engine's sockets can hold ~60 MiB: a minute at curl's 1 MiB/s, so curl's own timeout
      // came first (CI). Capped at 1 MiB in C, a few seconds' worth remain.
      const rmem = (await nsExec(C(), 'sysctl', ['-n', 'net.ipv4.tcp_rmem'])).stdout
        .trim()
        .split(/\s+/)
        .join(' ');
      await nsExec(C(), 'sysctl', ['-qw', 'net.ipv4.tcp_rmem=4096 131072 1048576']);
      let cut: Awaited<ReturnType<typeof exec>>;
      try {
        const big = exec(
          ['--rule', 'kb'],
          [
            'curl',
            '-sS',
            '--max-time',
            '60',
            '--limit-rate',
            '1M',
            '-o',
            '/dev/null',
            '-w',
            '%{size_download}',
            `${URL_T}bytes?n=200000000`,
          ],
          90_000,
        );
        // kill once the transfer runs
        await new Promise((r) => setTimeout(r, 3000));
        await killable!.kill();
        cut = await big;
      } finally {
        await nsExec(C(), 'sysctl', ['-qw', `net.ipv4.tcp_rmem=${rmem}`]);
      }
      expect(cut.code, show(cut)).not.toBe(0);
      // cut by the reset, not by curl's own timeout (28)
      expect(cut.code, show(cut)).not.toBe(28);
      expect(Number(cut.stdout)).toBeGreaterThan(0);
      const kd = await curl(['--rule', 'kd']);
      expect(kd.stdout, show(kd)).toBe(C4);
      const kb = await curl(['--rule', 'kb']);
      expect(kb.code, show(kb)).not.toBe(0);
      expect(kb.stdout).not.toBe(C4);
    }, 180_000);

    it('awg down stops the engines and removes the table', async () => {
      const r = await awg(C(), E(), ['down']);
      expect(r.code, show(r)).toBe(0);
      const ports = (await nsExec(C(), 'ss', ['-Htlnp'])).stdout;
      expect(ports).not.toMatch(/:152\d\d\b/);
      expect((await nsExec(C(), 'nft', ['list', 'tables'])).stdout).not.toContain('inet awg');
      expect(readFileSync(join(E().stateDir, 'logs', 'engine-sx.log'), 'utf8')).toContain(
        'transparent proxy on',
      );
    }, 60_000);

    it('kill switch on: the app works through the proxy and the underlay carries nothing but TCP to the proxy', async () => {
      const ks = writeConfig(
        E(),
        'ks.yaml',
        config({ passFile: 'sa.pass', killSwitch: true, only: ['sx'] }),
      );
      const r = await awg(C(), E(), ['apply', '-f', ks], { timeoutMs: 120_000 });
      expect(r.code, show(r)).toBe(0);
      const dev = (
        JSON.parse((await nsExec(C(), 'ip', ['-j', 'link'])).stdout) as { ifname: string }[]
      ).find((l) => l.ifname !== 'lo')!.ifname;
      const dump = nsSpawn(C(), 'tcpdump', [
        '-i',
        dev,
        '-n',
        '-l',
        '-U',
        '--immediate-mode',
        'ip or (ip6 and not icmp6)',
      ]);
      try {
        await waitFor(dump, 'listening on', 'tcpdump');
        const ok = await curl(['--tunnel', 'sx']);
        expect(ok.stdout, show(ok)).toBe(S4T);
        expect(
          (await exec(['--tunnel', 'sx'], [process.execPath, '-e', UDP_PROBE])).stdout.trim(),
        ).toBe('TIMEOUT');
        const direct = await curl(['--direct']);
        expect(direct.code, show(direct)).not.toBe(0);
        await nsExec(C(), 'curl', ['-sS', '--max-time', '3', URL_T], { allowFail: true });
        await new Promise((res) => setTimeout(res, 500));
      } finally {
        await dump.kill();
      }
      const packets = dump
        .output()
        .split('\n')
        .filter((l) => /^\d\d:\d\d:\d\d/.test(l));
      expect(packets.length, dump.output()).toBeGreaterThan(0);
      const other = packets.filter(
        (l) => !l.includes(`${S4}.1080`) || !/ IP /.test(l) || !/Flags \[/.test(l),
      );
      expect(other, dump.output()).toEqual([]);
      const down = await awg(C(), E(), ['down']);
      expect(down.code, show(down)).toBe(0);
    }, 180_000);
  },
);

describe.skipIf(skip)('proxy tunnels in the daemon (awg up): health events and stats', () => {
  let topo: Topology | undefined;
  let e: AwgEnv | undefined;
  let up: Up | undefined;
  let killable: NsProcess | undefined;
  const curlRule = (rule: string) =>
    awg(topo!.c, e!, [
      'exec',
      '--rule',
      rule,
      '--state-dir',
      e!.stateDir,
      '--',
      'curl',
      '-sS',
      '--max-time',
      '8',
      URL_T,
    ]);
  const tunnelEvent = (name: string, state: string) => (ev: { type: string }) =>
    ev.type === 'tunnel' &&
    (ev as { tunnel?: string }).tunnel === name &&
    (ev as { state?: string }).state === state;

  beforeAll(async () => {
    await ensureDist();
    topo = await createTopology();
    await startTarget(topo.t);
    await startProxies(topo);
    killable = nsSpawn(topo.s, 'microsocks', ['-i', S4, '-p', String(KILLABLE)]);
    await waitTcp(topo.s, S4, KILLABLE);
    e = makeAwgEnv();
  }, 120_000);

  afterAll(async () => {
    try {
      await killable?.kill();
      await up?.proc.kill(5000);
      if (topo && e) await awg(topo.c, e, ['down']);
    } finally {
      await destroyTopology(topo);
      cleanupAwgEnv(e);
    }
  }, 60_000);

  it('engines run in the daemon; wrong credentials become an auth-failed error event; traffic flows through the good tunnel', async () => {
    writeFileSync(join(e!.dir, 'bad.pass'), 'wrong\n', { mode: 0o600 });
    const cfg = writeConfig(
      e!,
      'up.yaml',
      `version: 1\ntunnels:\n  sx: { type: socks5, server: ${S4}, port: 1080 }\n  sa: { type: socks5, server: ${S4}, port: 1081, auth: { username: ${USER}, password: { file: bad.pass } } }\n  sk: { type: socks5, server: ${S4}, port: ${KILLABLE} }\n` +
        'rules:\n  - { name: kd, match: { name: kd-app }, target: sk, fallback: allow-direct }\n  - { name: kb, match: { name: kb-app }, target: sk, fallback: block }\n',
    );
    up = startUp(topo!.c, e!, cfg);
    await up.waitEvent(converged, 0, 60_000);
    await up.waitEvent(
      (ev) =>
        ev.type === 'error' &&
        /tunnel sa: the proxy refused our credentials/.test(
          String((ev as { message?: string }).message),
        ),
      0,
      60_000,
    );
    const r = await awg(topo!.c, e!, [
      'exec',
      '--tunnel',
      'sx',
      '--state-dir',
      e!.stateDir,
      '--',
      'curl',
      '-sS',
      '--max-time',
      '8',
      URL_T,
    ]);
    expect(r.stdout, show(r)).toBe(S4T);
    // hosted by the daemon, not by detached `awg engine` processes: the record names the
    // daemon (direct-mode observation sees it; nothing outside the daemon may stop it)
    const rec = JSON.parse(readFileSync(join(e!.stateDir, 'engine-sx.json'), 'utf8')) as {
      host?: string;
      pid: number;
    };
    expect(rec.host).toBe('daemon');
    expect(readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0')).toContain('up');
  }, 180_000);

  it('upstream down → the daemon switches the rules to their fallbacks; back up → through the proxy again', async () => {
    await up!.waitEvent(tunnelEvent('sk', 'up'), 0, 60_000);
    expect((await curlRule('kd')).stdout).toBe(S4T);
    const from = up!.mark();
    await killable!.kill();
    await up!.waitEvent(tunnelEvent('sk', 'down'), from, 60_000);
    await up!.waitEvent(converged, from, 60_000);
    const kd = await curlRule('kd');
    expect(kd.stdout, show(kd)).toBe(C4);
    const kb = await curlRule('kb');
    expect(kb.code, show(kb)).not.toBe(0);
    const again = up!.mark();
    killable = nsSpawn(topo!.s, 'microsocks', ['-i', S4, '-p', String(KILLABLE)]);
    await waitTcp(topo!.s, S4, KILLABLE);
    await up!.waitEvent(tunnelEvent('sk', 'up'), again, 90_000);
    await up!.waitEvent(converged, again, 60_000);
    await eventually(
      async () => (await curlRule('kb')).stdout === S4T,
      'kb through the proxy again',
      30_000,
    );
  }, 240_000);
});
