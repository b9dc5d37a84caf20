/**
 * Interop matrix: our engine against upstream amneziawg-go, one build per AmneziaWG
 * generation, at tunnel MTU 1420 and 1280 on both sides (the veth between them is 1500).
 * Each cell gets two fresh namespaces: in A `awg apply` of an amneziawg tunnel, in B the
 * amneziawg-go build configured over its UAPI socket. Checks, A = awg, B = amneziawg-go:
 * the handshake (`last_handshake_time_sec` over both UAPI sockets), ping both ways (small and
 * full-MTU packets), and TCP both ways (iperf3 -t 2; a pass needs ≥ 100 Mbit/s, not the
 * trickle of a stalled connection). At MTU 1420 awg starts the handshake, at 1280
 * amneziawg-go does, so each side's junk and I-packets reach the other. Prints the matrix
 * and exits 1 when any check fails.
 *
 * By hand only (root, iperf3; not CI, not `npm run bench`):
 *
 *   AWG_AMNEZIAWG_GO_DIR=DIR npx tsx bench/interop-matrix.ts [--dir=DIR]
 *     [--gen=1.0,2.0,3.1] [--mtu=1420,1280] [--capture]
 *
 * `--capture` records B's underlay veth (tcpdump, 96 bytes a packet) during each iperf3 run
 * and prints, per direction, the UDP datagrams by size, IP fragments and ICMP
 * frag-needed (bench/pcap-summary.ts), with iperf3's retransmits: what tells a path that
 * fragments from batches whose sizes differ.
 *
 * DIR holds amneziawg-go-v0.2.12 (AmneziaWG 1.0), amneziawg-go-v0.2.19 (2.0) and
 * amneziawg-go-v3.1 (3.1), built from upstream's tags; they are not part of the repository.
 */
import { accessSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { formatSummary, summarisePcap } from './pcap-summary.js';
import { parseGet, uapiGet, uapiSet } from '../src/resources/engine/uapi-client.js';
import { AWG_1_0, AWG_2_0, AWG_3_1, type Params, hex, uapiParams } from './awg-params.js';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
} from '../test/helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  requireNetnsPrereqs,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../test/helpers/netns.js';
import {
  AWG_GO_RUN_DIR,
  awgConfig,
  pingEventually,
  pingOk,
  startAmneziawgGo,
  type WgGo,
} from '../test/netns/interop-wg.js';

const MIN_MBPS = 100;
const PORT = 51820;
const IPERF_PORT = 5201;

/** One generation: the build that speaks it and its parameters, by their YAML names. */
interface Generation {
  name: string;
  binary: string;
  params: Params;
}

const GENERATIONS: Generation[] = [
  { name: '1.0', binary: 'amneziawg-go-v0.2.12', params: AWG_1_0 },
  { name: '2.0', binary: 'amneziawg-go-v0.2.19', params: AWG_2_0 },
  { name: '3.1', binary: 'amneziawg-go-v3.1', params: AWG_3_1 },
];

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const CHECKS = [
  'handshake',
  'ping awg→go',
  'ping go→awg',
  'ping MTU awg→go',
  'ping MTU go→awg',
  'TCP awg→go',
  'TCP go→awg',
];

function args(): { dir: string; gens: Generation[]; mtus: number[] } {
  const opt = (k: string) => process.argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
  const dir = opt('dir') ?? process.env.AWG_AMNEZIAWG_GO_DIR;
  if (!dir) {
    process.stderr.write(
      'interop-matrix: set AWG_AMNEZIAWG_GO_DIR (or pass --dir=DIR) to the directory holding ' +
        `${GENERATIONS.map((g) => g.binary).join(', ')}\n`,
    );
    process.exit(2);
  }
  const wanted = opt('gen')?.split(',');
  const gens = GENERATIONS.filter((g) => !wanted || wanted.includes(g.name));
  const mtus = (opt('mtu') ?? '1420,1280').split(',').map(Number);
  for (const g of gens) {
    try {
      accessSync(join(dir, g.binary), constants.X_OK);
    } catch {
      process.stderr.write(`interop-matrix: ${join(dir, g.binary)} is missing or not executable\n`);
      process.exit(2);
    }
  }
  return { dir: resolve(dir), gens, mtus };
}

/** What the current cell must undo; run once, also from a signal. */
let undo: (() => Promise<void>) | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    process.stderr.write(`\ninterop-matrix: ${sig}, cleaning up\n`);
    void (undo?.() ?? Promise.resolve()).finally(() => process.exit(130));
  });

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}

const CAPTURE = process.argv.includes('--capture');

async function iperf(
  ns: string,
  to: string,
  reverse: boolean,
  capture?: { ns: string; dev: string },
): Promise<Check> {
  const name = `TCP ${reverse ? 'go→awg' : 'awg→go'}`;
  const dir = capture ? mkdtempSync(join(tmpdir(), 'imx-cap-')) : '';
  const td = capture
    ? nsSpawn(capture.ns, 'tcpdump', [
        '-n',
        '-s',
        '96',
        '-i',
        capture.dev,
        '-w',
        join(dir, 'c.pcap'),
        'udp or icmp or ip[6:2] & 0x3fff != 0',
      ])
    : undefined;
  if (td) await new Promise((r) => setTimeout(r, 500));
  const out = await nsExec(
    ns,
    'iperf3',
    [
      '-c',
      to,
      '-p',
      String(IPERF_PORT),
      '-t',
      '2',
      '-J',
      '--connect-timeout',
      '3000',
      ...(reverse ? ['-R'] : []),
    ],
    { timeoutMs: 20_000, allowFail: true },
  );
  let j: {
    end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
    error?: string;
  } = {};
  try {
    j = JSON.parse(out.stdout || '{}') as typeof j;
  } catch {
    /* no JSON: timed out */
  }
  if (td) {
    await td.kill(1000);
    console.log(`  ${name}: iperf3 retransmits ${j.end?.sum_sent?.retransmits ?? '?'}`);
    for (const s of summarisePcap(join(dir, 'c.pcap'))) console.log(`    ${formatSummary(s)}`);
    rmSync(dir, { recursive: true, force: true });
  }
  const bps = j.end?.sum_received?.bits_per_second;
  if (bps === undefined)
    return { name, ok: false, detail: j.error ?? (out.stderr.trim() || `exit ${out.code}`) };
  const mbps = bps / 1e6;
  return { name, ok: mbps >= MIN_MBPS, detail: `${mbps.toFixed(mbps < 10 ? 2 : 0)} Mbit/s` };
}

async function cell(dir: string, g: Generation, mtu: number, index: number): Promise<Check[]> {
  const n = 210 + index * 2;
  const [underA, underB] = [`10.200.${n}.1`, `10.200.${n}.2`];
  const [tunA, tunB] = [`10.200.${n + 1}.1`, `10.200.${n + 1}.2`];
  const a = wgKeyPair();
  const b = wgKeyPair();
  const tag = randomBytes(3).toString('hex');
  const tunnel = `m${tag}`;
  const awgInitiates = mtu !== 1280;
  let nsA = '';
  let nsB = '';
  let env: AwgEnv | undefined;
  let go: WgGo | undefined;
  let server: NsProcess | undefined;
  undo = once(async () => {
    await server?.kill(1000).catch(() => undefined);
    if (env && nsA) await awg(nsA, env, ['down']).catch(() => undefined);
    await go?.stop().catch(() => undefined);
    for (const ns of [nsA, nsB]) if (ns) await destroyNetns(ns).catch(() => undefined);
    cleanupAwgEnv(env);
  });
  const checks: Check[] = [];
  const put = (name: string, ok: boolean, detail = '') => checks.push({ name, ok, detail });
  try {
    nsA = await createNetns('imx-a');
    nsB = await createNetns('imx-b');
    const veth = await vethPair(nsA, nsB, { addrA: `${underA}/24`, addrB: `${underB}/24` });
    const capture = CAPTURE ? { ns: nsB, dev: veth.ifB } : undefined;

    go = await startAmneziawgGo(nsB, `amx${tag}`, join(dir, g.binary));
    const sock = join(AWG_GO_RUN_DIR, `${go.iface}.sock`);
    await uapiSet(
      sock,
      `set=1\nprivate_key=${hex(b.privateKey)}\nlisten_port=${PORT}\n${uapiParams(g.params)}` +
        `public_key=${hex(a.publicKey)}\nendpoint=${underA}:${PORT}\nallowed_ip=${tunA}/32\n\n`,
    );
    await nsExec(nsB, 'ip', ['addr', 'add', `${tunB}/24`, 'dev', go.iface]);
    await nsExec(nsB, 'ip', ['link', 'set', go.iface, 'mtu', String(mtu), 'up']);

    env = makeAwgEnv();
    const cfg = writeConfig(
      env,
      'a.yaml',
      awgConfig({
        tunnel,
        privateKey: a.privateKey,
        address: `${tunA}/24`,
        listenPort: PORT,
        mtu,
        peerPublicKey: b.publicKey,
        endpoint: `${underB}:${PORT}`,
        allowedIPs: [`${tunB}/32`],
        obfuscation: g.params,
      }),
    );
    const applied = await awg(nsA, env, ['apply', '-f', cfg]);
    if (applied.code !== 0) {
      put('handshake', false, `awg apply failed: ${applied.stderr.trim().split('\n').at(-1)}`);
      return checks;
    }
    for (const w of applied.stderr.split('\n').filter((l) => l.includes('must fragment')))
      console.log(`  [${g.name} MTU ${mtu}] awg apply: ${w.replace(/^.*?warning: /, '')}`);

    // the first ping's side starts the handshake (and sends the junk and I-packets)
    const [first, firstTo] = awgInitiates ? [nsA, tunB] : [nsB, tunA];
    const shook = await pingEventually(first, firstTo, 20_000);
    const theirs = await handshakeAge(sock);
    // our engine's UAPI socket, what `wg show` reads (direct `awg status` has no handshakes)
    const ours = await handshakeAge(join(env.env.AWG_UAPI_DIR!, `awg-${tunnel}.sock`));
    const age = (s: number | undefined) => (s === undefined ? 'none' : `${s} s ago`);
    put(
      'handshake',
      shook && theirs !== undefined && ours !== undefined,
      `${awgInitiates ? 'awg' : 'go'} initiated; last handshake on go ${age(theirs)}, on awg ${age(ours)}`,
    );
    if (!shook) return checks;

    put('ping awg→go', await pingOk(nsA, tunB));
    put('ping go→awg', await pingOk(nsB, tunA));
    // a full-size inner packet: ICMP payload = MTU - 20 (IPv4) - 8 (ICMP), DF set
    const big = ['-s', String(mtu - 28), '-M', 'do'];
    put('ping MTU awg→go', await pingSized(nsA, tunB, big), `${mtu}-byte packets`);
    put('ping MTU go→awg', await pingSized(nsB, tunA, big), `${mtu}-byte packets`);

    server = nsSpawn(nsB, 'iperf3', ['-s', '-p', String(IPERF_PORT)]);
    await new Promise((r) => setTimeout(r, 300));
    checks.push(await iperf(nsA, tunB, false, capture));
    checks.push(await iperf(nsA, tunB, true, capture));
    return checks;
  } catch (e) {
    put(CHECKS[checks.length] ?? 'setup', false, (e as Error).message.split('\n')[0]!);
    return checks;
  } finally {
    await undo();
    undo = undefined;
  }
}

/** Seconds since the peer's last handshake, from a UAPI `get=1`; undefined: none. */
async function handshakeAge(sock: string): Promise<number | undefined> {
  const sec = Number(parseGet(await uapiGet(sock)).peers[0]?.last_handshake_time_sec ?? 0);
  return sec > 0 ? Math.max(0, Math.round(Date.now() / 1000 - sec)) : undefined;
}

async function pingSized(ns: string, to: string, extra: string[]): Promise<boolean> {
  const r = await nsExec(ns, 'ping', ['-n', '-c', '3', '-i', '0.3', '-W', '1', ...extra, to], {
    allowFail: true,
  });
  return r.code === 0;
}

function printMatrix(rows: { gen: string; mtu: number; checks: Check[] }[]): number {
  const head = ['gen', 'MTU', ...CHECKS];
  const cells = rows.map((r) => [
    r.gen,
    String(r.mtu),
    ...CHECKS.map((c) => {
      const k = r.checks.find((x) => x.name === c);
      if (!k) return '-';
      return k.name.startsWith('TCP')
        ? `${k.ok ? 'pass' : 'FAIL'} ${k.detail}`
        : k.ok
          ? 'pass'
          : 'FAIL';
    }),
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => x.padEnd(width[i]!))
      .join('  ')
      .trimEnd();
  console.log(`\n${line(head)}\n${line(width.map((w) => '-'.repeat(w)))}`);
  for (const c of cells) console.log(line(c));
  let failed = 0;
  for (const r of rows)
    for (const c of r.checks) {
      if (!c.ok) failed++;
      if (!c.ok || c.name === 'handshake')
        console.log(`  ${r.gen} MTU ${r.mtu} ${c.name}: ${c.ok ? 'pass' : 'FAIL'} ${c.detail}`);
    }
  // a cell that stopped early has checks that never ran
  for (const r of rows) failed += CHECKS.length - r.checks.length;
  return failed;
}

async function main(): Promise<number> {
  const { dir, gens, mtus } = args();
  const missing = requireNetnsPrereqs(['iperf3', 'ping']);
  if (missing) {
    process.stderr.write(`interop-matrix: ${missing}\n`);
    return 2;
  }
  await ensureDist();
  await sweepStaleNetns();
  const rows: { gen: string; mtu: number; checks: Check[] }[] = [];
  let i = 0;
  for (const g of gens)
    for (const mtu of mtus) {
      console.log(`AmneziaWG ${g.name} (${g.binary}), MTU ${mtu} ...`);
      rows.push({ gen: g.name, mtu, checks: await cell(dir, g, mtu, i++) });
    }
  const failed = printMatrix(rows);
  console.log(failed ? `\n${failed} check(s) failed or did not run` : '\nall checks passed');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
