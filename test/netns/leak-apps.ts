/** Traffic generators of the leak tests, run as apps in the client's namespace. */
import type { AwgEnv } from '../helpers/awg.js';
import { nsSpawn, type NsProcess } from '../helpers/netns.js';
import { awgSpawn, eventually, type CliOpts } from './leak-cli.js';
import type { Topo } from './leak-topology.js';

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
