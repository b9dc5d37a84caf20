/**
 * DNS of proxy tunnels with the resolvers people use: glibc (getent, curl, Python's
 * socket.getaddrinfo, Node's dns.lookup) and musl (a static getaddrinfo client built with
 * musl-gcc when musl-tools is installed), run through `awg exec --tunnel` as a user would.
 *
 * Each client reads a private resolv.conf (bind-mounted over /etc/resolv.conf in a private
 * mount namespace: `unshare -m`, so the host's file is never touched) naming a resolver that
 * does not exist (10.200.72.99 / fd00:200::72:99): only the firewall's UDP/53 redirect to the
 * engine and the engine's forwarding to the tunnel's resolver (T4, reached only through the
 * proxy: the DNS server logs the proxy's address S4T) can answer. `--direct` gets nothing.
 *
 * The DNS server in T answers `who.test` with the asker's IPv4 address (S4T when the query
 * came through the proxy), `web.test` with T4 (the HTTP server), `big.test` with 40 A records
 * (a 652-byte answer: more than a plain UDP client takes, so the engine cuts it with TC=1 and
 * glibc repeats over TCP; musl ≤ 1.2.3 never retries over TCP and keeps what fits), AAAA with
 * NOERROR/no data, anything else NXDOMAIN.
 */
import { existsSync, writeFileSync } from 'node:fs';
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
  run,
  sweepStaleNetns,
  type NsProcess,
} from '../helpers/netns.js';
import {
  C4,
  HTTP_PORT,
  S4,
  S4T,
  T4,
  createTopology,
  destroyTopology,
  startDante,
  startProxies,
  startTarget,
  waitFor,
  type Topology,
} from './proxy-env.js';

const skip = requireNetnsPrereqs([
  'nft',
  'curl',
  'microsocks',
  'tinyproxy',
  'danted',
  'getent',
  'unshare',
  'ss',
]);
const MUSL_GCC = ['/usr/bin/musl-gcc', '/usr/local/bin/musl-gcc'].find((p) => existsSync(p));
const PYTHON = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p));
const BIG = 40;

const DNS_SERVER = `
const dgram = require('node:dgram');
const net = require('node:net');
function answer(q, peer) {
  let o = 12; const labels = [];
  while (q[o] !== 0) { labels.push(q.subarray(o + 1, o + 1 + q[o]).toString().toLowerCase()); o += q[o] + 1; }
  const name = labels.join('.');
  const qtype = q.readUInt16BE(o + 1);
  const head = Buffer.from(q.subarray(0, o + 5));
  const v4 = (s) => s.split('.').map(Number);
  let rrs = [];
  let rcode = 0;
  if (name === 'who.test' || name === 'web.test' || name === 'big.test') {
    if (qtype === 1) {
      const ips = name === 'who.test' ? [v4(peer.replace(/^::ffff:/, ''))] : name === 'web.test' ? [v4('${T4}')]
        : Array.from({ length: ${BIG} }, (_, i) => [10, 200, 73, i + 1]);
      rrs = ips.map((ip) => Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip]));
    }
  } else rcode = 3;
  head.writeUInt16BE(0x8180 | rcode, 2); head.writeUInt16BE(1, 4); head.writeUInt16BE(rrs.length, 6);
  head.writeUInt16BE(0, 8); head.writeUInt16BE(0, 10);
  console.log('q ' + name + ' ' + qtype + ' from ' + peer.replace(/^::ffff:/, ''));
  return Buffer.concat([head, ...rrs]);
}
const u = dgram.createSocket({ type: 'udp6' });
u.on('message', (m, r) => { process.stdout.write('udp '); u.send(answer(m, r.address), r.port, r.address); });
u.bind(53, '::', () => console.log('dns udp ready'));
net.createServer((s) => {
  let buf = Buffer.alloc(0);
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const n = buf.readUInt16BE(0);
      process.stdout.write('tcp ');
      const a = answer(buf.subarray(2, 2 + n), s.remoteAddress);
      buf = buf.subarray(2 + n);
      const l = Buffer.alloc(2); l.writeUInt16BE(a.length);
      s.write(Buffer.concat([l, a]));
    }
  });
  s.on('error', () => {});
}).listen(53, '::', () => console.log('dns tcp ready'));
`;

/** a static musl getaddrinfo client: prints the IPv4 addresses, comma-separated, or ERR … */
const GAI_C = `#include <stdio.h>
#include <string.h>
#include <netdb.h>
#include <arpa/inet.h>
int main(int argc, char **argv) {
  struct addrinfo h, *r, *p; char b[64]; int n = 0;
  memset(&h, 0, sizeof h); h.ai_family = AF_INET; h.ai_socktype = SOCK_STREAM;
  int e = getaddrinfo(argv[1], 0, &h, &r);
  if (e) { printf("ERR %s\\n", gai_strerror(e)); return 2; }
  for (p = r; p; p = p->ai_next) { inet_ntop(AF_INET, &((struct sockaddr_in *)p->ai_addr)->sin_addr, b, sizeof b); printf("%s%s", n++ ? "," : "", b); }
  printf("\\n"); return 0;
}
`;

const NODE_LOOKUP = (name: string) =>
  `require('dns').lookup('${name}', { family: 4, all: true }, (e, a) => { if (e) { console.log('ERR ' + e.code); process.exit(2); } console.log(a.map((x) => x.address).join(',')); });`;
const PY_LOOKUP = (name: string) =>
  `import socket\nprint(",".join(sorted({a[4][0] for a in socket.getaddrinfo("${name}", 80, socket.AF_INET, socket.SOCK_STREAM)}, key=lambda s: tuple(map(int, s.split("."))))))`;

describe.skipIf(skip)(
  'proxy tunnel DNS with real resolvers (glibc, musl, Node, Python, curl)',
  () => {
    let topo: Topology | undefined;
    let e: AwgEnv | undefined;
    let dns: NsProcess | undefined;
    let musl: string | undefined;
    const resolv4 = () => join(e!.dir, 'resolv4.conf');
    const resolv6 = () => join(e!.dir, 'resolv6.conf');

    /** `awg exec <placement> -- unshare -m sh -c 'mount --bind RESOLV /etc/resolv.conf; exec cmd…'` in C */
    const exec = (placement: string[], cmd: string[], resolv = resolv4()) =>
      awg(
        topo!.c,
        e!,
        [
          'exec',
          ...placement,
          '--state-dir',
          e!.stateDir,
          '--',
          'unshare',
          '-m',
          '--',
          'sh',
          '-c',
          'mount --bind "$0" /etc/resolv.conf && exec "$@"',
          resolv,
          ...cmd,
        ],
        { timeoutMs: 30_000 },
      );
    const queries = () =>
      dns!
        .output()
        .split('\n')
        .filter((l) => l.includes(' q '));

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
      e = makeAwgEnv();
      // no such resolver: only the redirect to the engine answers (timeout 2 s, one attempt)
      writeFileSync(resolv4(), 'nameserver 10.200.72.99\noptions timeout:2 attempts:1\n');
      writeFileSync(resolv6(), 'nameserver fd00:200::72:99\noptions timeout:2 attempts:1\n');
      if (MUSL_GCC) {
        writeFileSync(join(topo.dir, 'gai.c'), GAI_C);
        musl = join(topo.dir, 'gai-musl');
        await run(MUSL_GCC, ['-static', '-Os', '-o', musl, join(topo.dir, 'gai.c')]);
      }
      const cfg = writeConfig(
        e,
        'dns.yaml',
        [
          'version: 1',
          'tunnels:',
          `  sx: { type: socks5, server: ${S4}, port: 1080, dns: [${T4}] }`,
          `  hp: { type: http, server: ${S4}, port: 8888, dns: [${T4}] }`,
          `  su: { type: socks5, server: ${S4}, port: 1090, udp: true, dns: [${T4}] }`,
          '',
        ].join('\n'),
      );
      const r = await awg(topo.c, e, ['apply', '-f', cfg], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`apply failed: ${show(r)}`);
    }, 180_000);

    afterAll(async () => {
      try {
        if (topo && e) await awg(topo.c, e, ['down']);
      } finally {
        await dns?.kill();
        await destroyTopology(topo);
        cleanupAwgEnv(e);
      }
    }, 60_000);

    for (const t of ['sx', 'hp', 'su']) {
      it(`${t}: getent (glibc) resolves through the tunnel's resolver over IPv4 and IPv6`, async () => {
        const before = queries().length;
        const r = await exec(['--tunnel', t], ['getent', 'ahostsv4', 'who.test']);
        expect(r.code, show(r)).toBe(0);
        expect(r.stdout.split('\n')[0], show(r)).toMatch(
          new RegExp(`^${S4T.replace(/\./g, '\\.')}\\s`),
        );
        const r6 = await exec(['--tunnel', t], ['getent', 'hosts', 'who.test'], resolv6());
        expect(r6.code, show(r6)).toBe(0);
        expect(r6.stdout.trim(), show(r6)).toMatch(
          new RegExp(`^${S4T.replace(/\./g, '\\.')}\\s+who\\.test$`),
        );
        const seen = queries().slice(before);
        expect(seen.length).toBeGreaterThan(0);
        // every query reached the resolver from the proxy, none from the client itself
        expect(
          seen.filter((l) => !l.endsWith(`from ${S4T}`)),
          seen.join('\n'),
        ).toEqual([]);
      }, 60_000);

      it(`${t}: curl, Python and Node resolve and connect through the tunnel`, async () => {
        const c = await exec(
          ['--tunnel', t],
          ['curl', '-sS', '--max-time', '8', `http://web.test:${HTTP_PORT}/`],
        );
        expect(c.stdout, show(c)).toBe(S4T);
        if (PYTHON) {
          const p = await exec(['--tunnel', t], [PYTHON, '-c', PY_LOOKUP('who.test')]);
          expect(p.stdout.trim(), show(p)).toBe(S4T);
        }
        const n = await exec(['--tunnel', t], [process.execPath, '-e', NODE_LOOKUP('who.test')]);
        expect(n.stdout.trim(), show(n)).toBe(S4T);
      }, 60_000);

      it.skipIf(!MUSL_GCC)(
        `${t}: a static musl client resolves through the tunnel`,
        async () => {
          const r = await exec(['--tunnel', t], [musl!, 'who.test']);
          expect(r.stdout.trim(), show(r)).toBe(S4T);
        },
        60_000,
      );

      it(`${t}: an answer larger than 512 bytes: glibc gets all of it (TC=1, then TCP); musl what fits`, async () => {
        const all = Array.from({ length: BIG }, (_, i) => `10.200.73.${i + 1}`);
        const bigA = () => queries().filter((l) => l.includes(' q big.test 1 ')).length;
        const before = bigA();
        const n = await exec(['--tunnel', t], [process.execPath, '-e', NODE_LOOKUP('big.test')]);
        expect(n.stdout.trim().split(',').sort(), show(n)).toEqual([...all].sort());
        // through the forwarder: asked once for the UDP answer (cut, TC=1), once more over TCP
        if (t !== 'su') expect(bigA() - before).toBe(2);
        if (musl) {
          const m = await exec(['--tunnel', t], [musl, 'big.test']);
          const got = m.stdout.trim().split(',');
          expect(got.length, show(m)).toBeGreaterThan(20);
          expect(
            got.every((a) => all.includes(a)),
            show(m),
          ).toBe(true);
          // musl 1.2.3 does not retry over TCP: it keeps the records that fit in 512 bytes
          if (t !== 'su') expect(got.length, show(m)).toBe(Math.floor((512 - 12 - 14) / 16));
        }
      }, 60_000);
    }

    it('the engines listen on loopback only (TCP and UDP): nothing on the network reaches them', async () => {
      const ss = (await nsExec(topo!.c, 'ss', ['-Htuln'])).stdout
        .trim()
        .split('\n')
        .filter(Boolean);
      // only the three engines listen in C: per tunnel 2 TCP ports and 2 UDP ports (strict: DNS,
      // or all UDP with udp: true; allow-direct), each on 127.0.0.1 and ::1 (the UDP ASSOCIATE
      // sockets of the su flows are connected to dante: not listed)
      expect(ss.length, ss.join('\n')).toBe(3 * 4 * 2);
      const locals = ss.map((l) => l.split(/\s+/)[4]!);
      expect(
        locals.filter((a) => !/^(127\.0\.0\.1|\[::1\]):\d+$/.test(a)),
        ss.join('\n'),
      ).toEqual([]);
      const port = Number(locals[0]!.split(':').pop());
      // from S, C's own address on that port: refused (a listener on :: would accept)
      const r = await nsExec(topo!.s, 'bash', ['-c', `exec 3<>/dev/tcp/${C4}/${port}`], {
        allowFail: true,
      });
      expect(r.code).not.toBe(0);
    }, 60_000);

    it('an unknown name is NXDOMAIN (not a timeout); --direct reaches no resolver', async () => {
      const nx = await exec(['--tunnel', 'hp'], [process.execPath, '-e', NODE_LOOKUP('nope.test')]);
      expect(nx.stdout.trim(), show(nx)).toBe('ERR ENOTFOUND');
      const d = await exec(['--direct'], ['getent', 'ahostsv4', 'who.test']);
      expect(d.code, show(d)).not.toBe(0);
    }, 60_000);
  },
);
