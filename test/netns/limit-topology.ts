/**
 * The topology of the limit tests (Step 16): two namespaces on one veth, traffic only
 * between them.
 *
 *   client  10.200.90.1/24 fd00:200::90:1/112  ── veth ──  10.200.90.2/24 fd00:200::90:2/112  server
 *   (awg apply of the config under test;                   (awg apply: WireGuard peer `srv`,
 *    default routes via the server: the veth                listenPort 51820, 10.200.91.1/24
 *    is the uplink limits shape)                            fd00:200::91:1/112; iperf3 servers)
 *
 *   tunnel t: client 10.200.91.2/32 fd00:200::91:2/128 ⇄ server (allowedIPs the /24 and /112)
 *
 * Rules match no executable (their names are random): the tests place iperf3 and ping into a
 * rule's cgroup with `awg exec --rule NAME` (dist/, as the product runs), so what a rule gets
 * is exactly what its limit allows. iperf3 runs as the client; its servers listen on the
 * server's every address.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
import { awgd, showRun } from './perapp-topology.js';
import { ensureDist } from '../helpers/awg.js';

export const L = {
  client4: '10.200.90.1',
  server4: '10.200.90.2',
  client6: 'fd00:200::90:1',
  server6: 'fd00:200::90:2',
  tunClient4: '10.200.91.2',
  tunServer4: '10.200.91.1',
  tunClient6: 'fd00:200::91:2',
  tunServer6: 'fd00:200::91:1',
} as const;

export interface LimitTopology {
  client: string;
  server: string;
  /** the client's uplink (its end of the veth) */
  uplink: string;
  /** the client's awg environment (state dir, cgroup root) */
  env: AwgEnv;
  /** the `tunnels:` block of the client's config (tunnel t) */
  tunnels: string;
  /** the iperf3 servers' ports (each serves one test at a time) */
  ports: number[];
  /** write the client's config and `awg apply` it (dist); the run */
  apply(yaml: string, extra?: string[]): Promise<import('../helpers/awg.js').AwgRun>;
  /** `awg ARGS` in the client namespace (dist, the client's state dir added where it applies) */
  awg(args: string[]): Promise<import('../helpers/awg.js').AwgRun>;
  destroy(): Promise<void>;
}

const STATEFUL = new Set(['diff', 'apply', 'down', 'status', 'exec']);

export async function createLimitTopology(): Promise<LimitTopology> {
  await ensureDist();
  const env = makeAwgEnv();
  const srvEnv = makeAwgEnv();
  const made: string[] = [];
  const procs: NsProcess[] = [];
  const ports = [5301, 5302, 5303];
  const keys = { client: wgKeyPair(), server: wgKeyPair() };
  const destroy = async () => {
    for (const p of procs) await p.kill(500);
    const [client, server] = made;
    if (client)
      await awgd(client, env, ['down', '--direct', '--state-dir', env.stateDir]).catch(
        () => undefined,
      );
    if (server)
      await awgd(server, srvEnv, ['down', '--state-dir', srvEnv.stateDir]).catch(() => undefined);
    for (const ns of made) await destroyNetns(ns);
    cleanupAwgEnv(env);
    cleanupAwgEnv(srvEnv);
  };
  try {
    const client = await createNetns('lim-client');
    made.push(client);
    const server = await createNetns('lim-server');
    made.push(server);
    const v = await vethPair(client, server, {
      addrA: [`${L.client4}/24`, `${L.client6}/112`],
      addrB: [`${L.server4}/24`, `${L.server6}/112`],
    });
    await run('ip', ['-n', client, 'route', 'add', 'default', 'via', L.server4]);
    await run('ip', ['-n', client, '-6', 'route', 'add', 'default', 'via', L.server6]);
    const srvCfg = join(srvEnv.dir, 'server.yaml');
    writeFileSync(
      srvCfg,
      `version: 1
tunnels:
  srv:
    type: wireguard
    privateKey: "${keys.server.privateKey}"
    addresses: [${L.tunServer4}/24, ${L.tunServer6}/112]
    listenPort: 51820
    peers:
      - publicKey: "${keys.client.publicKey}"
        allowedIPs: [${L.tunClient4}/32, ${L.tunClient6}/128]
`,
    );
    const s = await awgd(server, srvEnv, ['apply', '-f', srvCfg, '--state-dir', srvEnv.stateDir]);
    if (s.code !== 0) throw new Error(`server apply failed: ${showRun(s)}`);
    for (const p of ports) procs.push(nsSpawn(server, 'iperf3', ['-s', '-p', String(p)]));
    for (const p of ports)
      for (let i = 0; ; i++) {
        const r = await nsExec(server, 'ss', ['-Hltn', `sport = :${p}`]);
        if (r.stdout.includes(String(p))) break;
        if (i > 250) throw new Error(`iperf3 on ${p} did not listen`);
        await new Promise((res) => setTimeout(res, 20));
      }
    const tunnels = `tunnels:
  t:
    type: wireguard
    privateKey: "${keys.client.privateKey}"
    addresses: [${L.tunClient4}/32, ${L.tunClient6}/128]
    peers:
      - publicKey: "${keys.server.publicKey}"
        endpoint: ${L.server4}:51820
        allowedIPs: [10.200.91.0/24, fd00:200::91:0/112]
        persistentKeepalive: 1
`;
    const awg = (args: string[]) =>
      awgd(
        client,
        env,
        STATEFUL.has(args[0]!) && !args.includes('--state-dir')
          ? [args[0]!, '--state-dir', env.stateDir, ...args.slice(1)]
          : args,
        120_000,
      );
    return {
      client,
      server,
      uplink: v.ifA,
      env,
      tunnels,
      ports,
      async apply(yaml, extra = []) {
        const cfg = join(env.dir, 'client.yaml');
        writeFileSync(cfg, yaml);
        return awg(['apply', '-f', cfg, ...extra]);
      },
      awg,
      destroy,
    };
  } catch (e) {
    await destroy();
    throw e;
  }
}

/** The result of one iperf3 run, as the client saw it. */
export interface Iperf {
  /** receiver goodput (bit/s) */
  goodput: number;
  /**
   * the rate the shaper counts: goodput with each packet's headers (IP, TCP/UDP, and the
   * 14-byte Ethernet header on the veth), the unit of a limit (docs/limits.md)
   */
  wire: number;
}

/**
 * iperf3 from the client in `rule`'s cgroup (`awg exec --rule`), `seconds` (default 2: the
 * shaping tests' 80 runs must fit CI's time) measured after a second omitted (slow start). UDP sends 1200-byte datagrams (no fragmentation on any
 * path) at `udpRate` bit/s.
 */
export async function iperf(
  t: LimitTopology,
  o: {
    rule: string;
    host: string;
    port: number;
    reverse?: boolean;
    udpRate?: number;
    seconds?: number;
    /** the path's per-packet overhead beyond IP: 14 on the veth, 0 on the TUN */
    linkHeader: number;
  },
): Promise<Iperf> {
  const args = [
    'exec',
    '--rule',
    o.rule,
    '--',
    'iperf3',
    '-c',
    o.host,
    '-p',
    String(o.port),
    '-t',
    String(o.seconds ?? 2),
    '-O',
    '1',
    '-J',
    ...(o.reverse ? ['-R'] : []),
    ...(o.udpRate !== undefined ? ['-u', '-b', String(o.udpRate), '-l', '1200'] : []),
  ];
  const r = await t.awg(args);
  let j: {
    error?: string;
    start?: { tcp_mss_default?: number };
    end?: { sum_received?: { bits_per_second: number } };
  };
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${showRun(r)}`);
  }
  if (j.error || r.code !== 0 || !j.end?.sum_received)
    throw new Error(`iperf3 ${args.join(' ')} failed: ${j.error ?? showRun(r)}`);
  const goodput = j.end.sum_received.bits_per_second;
  const v6 = o.host.includes(':');
  const ip = v6 ? 40 : 20;
  let payload: number;
  let header: number;
  if (o.udpRate !== undefined) {
    payload = 1200;
    header = ip + 8;
  } else {
    // the MSS the connection uses leaves room for the timestamp option (12 bytes)
    payload = j.start?.tcp_mss_default ?? (v6 ? 1428 : 1448);
    header = ip + 20 + 12;
  }
  return { goodput, wire: (goodput * (payload + header + o.linkHeader)) / payload };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `tc -j qdisc show` of every device, normalised for comparison (no counters) */
export async function qdiscs(ns: string): Promise<unknown> {
  const r = await nsExec(ns, 'tc', ['-j', 'qdisc', 'show']);
  return JSON.parse(r.stdout.trim() || '[]') as unknown;
}
