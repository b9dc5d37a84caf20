/**
 * Step 18: a 100,000-line destination list through the product, in two namespaces (A: awg,
 * B: the peer and the iperf3 servers, joined by a veth). The list (`realisticList`) is what
 * blocklists look like: IPv4 prefixes /16–/32 scattered over public space (mostly hosts and
 * /24s, some overlapping or adjacent), IPv6 prefixes and hosts, domains, wildcards, comments
 * and blank lines. It names LISTED, an address on B's tunnel interface, and not B's veth
 * address. Two configs differ only in the rule's `to:` — `lists: [the list]` or
 * `cidrs: [LISTED/32]` — and route what they match through tunnel `t` (default direct):
 *
 * - `awg validate` of the config with the list and without (the parse and merge of the list);
 * - `awg apply` from nothing (link, engine, routes, the nft table with its sets) then
 *   `awg down`, with the list and without, alternating, median of the runs;
 * - `awg apply` again with nothing changed (must not replace the table: 0 mutations; the
 *   list's parse taken from the state directory, config/parsed-lists.ts), the
 *   same after a foreign nf_tables change (the generation moved: the static sets' counts are
 *   read over netlink), after a one-line edit of the list (the set changed in place: the
 *   element delta over netlink, its old elements from the state directory's copy, never a
 *   fill), and after a rule edit that leaves the list as it is (the sets kept: the
 *   transaction replaces chains only, no element is written);
 * - the floor (lists-floor.ts): the kernel's insert of the same intervals into fresh sets,
 *   one netlink batch per set, in the same run;
 * - iperf3 TCP A→B to LISTED (through the tunnel, matched by the set lookup) and to B's veth
 *   address (not listed: direct, the lookup misses), with the list's config applied and with
 *   the one-CIDR config, alternating per round: the per-packet cost of the set.
 *
 * The peer in B is `AWG_BENCH_AMNEZIAWG_GO=PATH` (an amneziawg-go build) when set, else Debian's
 * wireguard-go (CI's smoke). Needs root, iperf3, nft. `AWG_BENCH_ROUNDS` (5), `AWG_BENCH_SECONDS`
 * (5; 0: no throughput), `AWG_BENCH_LIST_LINES` (100,000) override the sizes;
 * `AWG_BENCH_NO_DEFAULT_ROUTE=1` leaves A without a default route (the smoke runs both: bench/
 * run.ts `lists-apply-no-default-route`); `AWG_BENCH_CPU_PROF=DIR`
 * writes V8 CPU profiles of the applies under DIR, `AWG_BENCH_STRACE=DIR` the list edit's process
 * starts (strace's execve lines) there. `AWG_BENCH_LOAD=N`: N busy loops (each a
 * shell `while :; do :; done` in a session of its own, as dataplane.bench.ts) for the whole
 * run, killed at its end. The CLI runs as installed (the bundle in a package's layout,
 * apply.bench.ts `bundledLayout`); `AWG_BENCH_LAYOUT=dist` runs the checkout's tsc dist/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundledLayout } from './apply.bench.js';
import { randomBytes } from 'node:crypto';
import {
  REPO_ROOT,
  awg,
  cleanupAwgEnv,
  ensureDist,
  makeAwgEnv,
  wgKeyPair,
  writeConfig,
  type AwgEnv,
  type AwgRun,
} from '../test/helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  nsSpawn,
  sweepStaleNetns,
  vethPair,
  type NsProcess,
} from '../test/helpers/netns.js';
import {
  AWG_GO_RUN_DIR,
  WG_RUN_DIR,
  pingEventually,
  startAmneziawgGo,
  startWireguardGo,
  type WgGo,
} from '../test/netns/interop-wg.js';
import { uapiSet } from '../src/resources/engine/uapi-client.js';
import { hex } from './awg-params.js';
import { median, percentile, type Sample } from './lib.js';

/** xorshift32: the same list every run */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** a public-looking IPv4 first octet (not 0, 10, 100, 127, 169, 172, 192, 198, 224+) */
function publicOctet(r: () => number): number {
  for (;;) {
    const o = 1 + (r() % 223);
    if (![10, 100, 127, 169, 172, 192, 198].includes(o)) return o;
  }
}

/**
 * A deterministic blocklist-like file of `n` lines: about 70 % IPv4 (half hosts, a third /24,
 * the rest /16–/23 and /25–/31; some repeated or adjacent), 8 % IPv6, 15 % domains and
 * wildcards, 7 % comments and blank lines; `extra` entries appended (commented).
 */
export function realisticList(n: number, extra: string[] = [], seed = 18): string {
  const r = rng(seed);
  const lines: string[] = ['# synthetic blocklist (bench/lists-apply.bench.ts)', ''];
  let prev4 = 0;
  const v4 = (a: number, len: number) => {
    const net = len === 0 ? 0 : (a >>> (32 - len)) << (32 - len);
    return `${net >>> 24}.${(net >>> 16) & 255}.${(net >>> 8) & 255}.${net & 255}`;
  };
  for (let i = lines.length; i < n - extra.length; i++) {
    const k = r() % 100;
    if (k < 70) {
      const p = r() % 100;
      const len =
        p < 50 ? 32 : p < 83 ? 24 : p < 93 ? 16 + (r() % 8) : p < 97 ? 25 + (r() % 7) : 32;
      // every tenth entry near the one before (adjacent hosts, a prefix inside a /24 listed)
      const addr =
        r() % 10 === 0 && prev4
          ? (prev4 + (r() % 512)) >>> 0
          : ((publicOctet(r) << 24) | (r() & 0xffffff)) >>> 0;
      prev4 = addr;
      lines.push(len === 32 ? v4(addr, 32) : `${v4(addr, len)}/${len}`);
    } else if (k < 78) {
      const g = () => (r() & 0xffff).toString(16);
      lines.push(
        r() % 2
          ? `2a0${r() % 10}:${g()}:${g()}::/48`
          : `2a0${r() % 10}:${g()}:${g()}:${g()}::${g()}`,
      );
    } else if (k < 93) {
      const name = `${(r() % 0xffffff).toString(36)}${i}.${['com', 'net', 'org', 'ru', 'info'][r() % 5]}`;
      lines.push(r() % 4 === 0 ? `*.${name}` : name);
    } else if (k < 98) lines.push(`# section ${i}`);
    else lines.push('');
  }
  for (const e of extra) lines.push(`${e} # bench target`);
  return lines.join('\n') + '\n';
}

const sample = (name: string, unit: string, runs: number[], note?: string): Sample => ({
  name,
  unit,
  runs,
  median: median(runs),
  p90: percentile(runs, 90),
  ...(note !== undefined ? { note } : {}),
});

/**
 * CPU ms (user + system) of this process's waited-for children so far: an `awg` run and what
 * it waited for (node, nft, ip; not a detached engine). /proc/self/stat cutime + cstime, in
 * clock ticks (100 per second): a figure the other jobs' load does not inflate as it does the
 * wall time.
 */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 16 and 17 of stat(5), counted from pid = 1; f[0] is field 3
  return (Number(f[13]) + Number(f[14])) * 10;
}

/** CPU ms per sample name (wall's `cpu` argument) */
const cpuRuns = new Map<string, number[]>();

async function wall(
  fn: () => Promise<AwgRun>,
  what: string,
  cpu?: string,
): Promise<[number, AwgRun]> {
  const c0 = childrenCpuMs();
  const t0 = process.hrtime.bigint();
  const r = await fn();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}:\n${r.stderr.slice(-4000)}`);
  if (cpu !== undefined) cpuRuns.set(cpu, [...(cpuRuns.get(cpu) ?? []), childrenCpuMs() - c0]);
  return [ms, r];
}

export async function listsApplyBench(
  smoke: boolean,
  o: { noDefaultRoute?: boolean } = {},
): Promise<Sample[]> {
  const lines = smoke ? 2_000 : Number(process.env.AWG_BENCH_LIST_LINES ?? 100_000);
  const rounds = smoke ? 1 : Number(process.env.AWG_BENCH_ROUNDS ?? 5);
  const seconds = smoke ? 1 : Number(process.env.AWG_BENCH_SECONDS ?? 5);
  const awgGo = process.env.AWG_BENCH_AMNEZIAWG_GO;
  const noDefault = o.noDefaultRoute ?? process.env.AWG_BENCH_NO_DEFAULT_ROUTE === '1';
  if (awgGo && !existsSync(awgGo))
    throw new Error(`AWG_BENCH_AMNEZIAWG_GO=${awgGo} does not exist`);
  await ensureDist();
  await sweepStaleNetns();
  const loops: ChildProcess[] = [];
  // what users run: an installed package's layout (the bundle, as `npm i -g` and the .deb
  // have it); AWG_BENCH_LAYOUT=dist runs the checkout's tsc dist/ (a clone's build)
  const layout = process.env.AWG_BENCH_LAYOUT === 'dist' ? 'checkout dist/' : 'installed bundle';
  console.log(`layout: ${layout}`);
  const work = mkdtempSync(join(tmpdir(), 'awgt-bench-lists-'));
  let bin = join(REPO_ROOT, 'bin/awg.js');
  const tag = randomBytes(3).toString('hex');
  const N = 200 + Math.floor(Math.random() * 14) * 4;
  const UA = `10.200.${N}.1`;
  const UB = `10.200.${N}.2`;
  const TA = `10.200.${N + 1}.2`;
  const TB = `10.200.${N + 1}.1`;
  const LISTED = `10.200.${N + 2}.7`;
  const ka = wgKeyPair();
  const kb = wgKeyPair();
  let nsA = '';
  let nsB = '';
  let env: AwgEnv | undefined;
  let peer: WgGo | undefined;
  const servers: NsProcess[] = [];
  try {
    if (layout === 'installed bundle') bin = await bundledLayout(work);
    for (let i = 0; i < Number(process.env.AWG_BENCH_LOAD ?? 0); i++)
      loops.push(spawn('setsid', ['sh', '-c', 'while :; do :; done'], { stdio: 'ignore' }));
    nsA = await createNetns('bla');
    nsB = await createNetns('blb');
    await vethPair(nsA, nsB, { addrA: `${UA}/24`, addrB: `${UB}/24` });
    // A's uplink: what is not routed into the tunnel leaves by the veth (as a host's default
    // route); AWG_BENCH_NO_DEFAULT_ROUTE=1: a host without one (the peer is on the veth's link)
    if (!noDefault) await nsExec(nsA, 'ip', ['route', 'add', 'default', 'via', UB]);
    env = makeAwgEnv();
    const e = env;
    const iface = `wl${tag}`;
    peer = awgGo ? await startAmneziawgGo(nsB, iface, awgGo) : await startWireguardGo(nsB, iface);
    const sock = join(awgGo ? AWG_GO_RUN_DIR : WG_RUN_DIR, `${iface}.sock`);
    await uapiSet(
      sock,
      `set=1\nprivate_key=${hex(kb.privateKey)}\nlisten_port=51820\n` +
        `public_key=${hex(ka.publicKey)}\nallowed_ip=${TA}/32\n\n`,
    );
    await nsExec(nsB, 'ip', ['addr', 'add', `${TB}/24`, 'dev', iface]);
    await nsExec(nsB, 'ip', ['addr', 'add', `${LISTED}/32`, 'dev', iface]);
    await nsExec(nsB, 'ip', ['link', 'set', iface, 'mtu', '1420', 'up']);
    servers.push(nsSpawn(nsB, 'iperf3', ['-s', '-p', '5201']));

    const listText = realisticList(lines, [`10.200.${N + 2}.0/24`]);
    const listFile = join(e.dir, 'lists', 'block.txt');
    await nsExec(nsA, 'mkdir', ['-p', join(e.dir, 'lists')]);
    writeFileSync(listFile, listText);
    const config = (to: string) => `version: 1
tunnels:
  t:
    type: wireguard
    privateKey: "${ka.privateKey}"
    addresses: [${TA}/32]
    peers:
      - publicKey: "${kb.publicKey}"
        endpoint: ${UB}:51820
        allowedIPs: [0.0.0.0/0]
        persistentKeepalive: 25
rules:
  - name: listed
    to: ${to}
    target: t
default: direct
`;
    const withList = writeConfig(e, 'with-list.yaml', config('{ lists: [lists/block.txt] }'));
    // the same list, one more rule after it (its own one-CIDR set): the list's sets are kept
    const ruleEdit = writeConfig(
      e,
      'rule-edit.yaml',
      config('{ lists: [lists/block.txt] }').replace(
        'default: direct',
        `  - name: more\n    to: { cidrs: [198.51.100.0/24] }\n    target: t\ndefault: direct`,
      ),
    );
    const without = writeConfig(e, 'without.yaml', config(`{ cidrs: [${LISTED}/32] }`));
    // AWG_BENCH_CPU_PROF=DIR: the labelled runs write V8 CPU profiles under DIR/<label>/;
    // AWG_BENCH_STRACE=DIR: the list edit's process starts (`strace -f -e trace=execve`) in
    // DIR/edit.<pid> (only that apply: strace -f would follow a detached engine and not end)
    const profDir = process.env.AWG_BENCH_CPU_PROF;
    const straceDir = process.env.AWG_BENCH_STRACE;
    const run = (args: string[], label?: string) =>
      awg(nsA, e, args, {
        bin,
        timeoutMs: 120_000,
        ...(profDir && label
          ? {
              wrap: [
                'sh',
                '-c',
                `exec "$0" --cpu-prof --cpu-prof-dir=${join(profDir, label)} "$@"`,
              ],
            }
          : straceDir && label === 'edit'
            ? {
                wrap: [
                  'sh',
                  '-c',
                  `exec strace -f -qq -e trace=execve -e signal=none -o "${join(straceDir, label)}.$$" "$0" "$@"`,
                ],
              }
            : {}),
      });
    const k = lines.toLocaleString('en');
    const out: Sample[] = [];
    // each result as it is measured (a later failure keeps the earlier numbers)
    const push = out.push.bind(out);
    out.push = (...xs: Sample[]) => {
      for (const x of xs) console.error(`  ${x.name}: median ${x.median.toFixed(2)} ${x.unit}`);
      return push(...xs);
    };

    // validate: the list's parse and merge in a fresh process, against the one-CIDR config
    const val: Record<string, number[]> = { with: [], without: [] };
    for (let i = 0; i < rounds; i++)
      for (const [key, f] of [
        ['with', withList],
        ['without', without],
      ] as const)
        val[key]!.push((await wall(() => run(['validate', '-f', f]), `validate ${f}`))[0]);
    out.push(sample(`CLI wall: awg validate, rule with the ${k}-line list`, 'ms', val.with!));
    out.push(sample(`CLI wall: awg validate, same rule with one CIDR`, 'ms', val.without!));

    // apply from nothing, then down; alternating which config goes first per round
    const ap: Record<string, number[]> = { with: [], without: [] };
    const down: Record<string, number[]> = { with: [], without: [] };
    for (let i = 0; i < rounds; i++) {
      const order = i % 2 ? ([without, withList] as const) : ([withList, without] as const);
      for (const f of order) {
        const key = f === withList ? 'with' : 'without';
        ap[key]!.push(
          (
            await wall(() => run(['apply', '-f', f], `apply-${key}`), `apply ${f}`, `apply ${key}`)
          )[0],
        );
        down[key]!.push((await wall(() => run(['down']), 'down', `down ${key}`))[0]);
      }
    }
    out.push(
      sample(
        `CLI wall: awg apply from nothing, rule with the ${k}-line list`,
        'ms',
        ap.with!,
        'target < 2000 ms',
      ),
    );
    out.push(
      sample(`CLI wall: awg apply from nothing, same rule with one CIDR`, 'ms', ap.without!),
    );
    out.push(sample(`CLI wall: awg down, with the list`, 'ms', down.with!));
    out.push(sample(`CLI wall: awg down, with one CIDR`, 'ms', down.without!));

    // re-apply: nothing changed, then a one-line edit of the list (and back)
    await wall(() => run(['apply', '-f', withList]), 'apply');
    // the list's parse is kept for the next process (config/parsed-lists.ts): the no-ops below
    // take it instead of parsing the list again; the bytes it parsed are kept beside it (the
    // one-line edit below, an inserted line, is parsed from them: config/list-increment.ts)
    const parses = join(e.stateDir, 'parsed-lists');
    const keptFiles = existsSync(parses) ? readdirSync(parses) : [];
    if (keptFiles.filter((f) => f.endsWith('.bin')).length !== 1)
      throw new Error(`apply kept no parse of the list in ${parses}`);
    if (keptFiles.filter((f) => f.endsWith('.list')).length !== 1)
      throw new Error(`apply kept no copy of the list's bytes beside its parse in ${parses}`);
    const listing = (await nsExec(nsA, 'nft', ['list', 'set', 'inet', 'awg', 'd4_listed'])).stdout;
    const elements = listing.split(',').length;
    const comment = /comment "(awg n=\d+)/.exec(listing)?.[1] ?? '?';
    // the floor: the kernel's insert of the same intervals into fresh sets (lists-floor.ts,
    // imported here: its own main imports this file)
    const { insertFloor, readSets } = await import('./lists-floor.js');
    const floorSets = readSets(nsA, 'awg', [
      ['d4_listed', 'ipv4_addr'],
      ['d6_listed', 'ipv6_addr'],
    ]);
    const floorInsert: number[] = [];
    const floorEncode: number[] = [];
    const noop: number[] = [];
    const foreign: number[] = [];
    const edit: number[] = [];
    const kept: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const [ms, r] = await wall(
        () => run(['apply', '-f', withList], 'noop'),
        'no-op apply',
        'noop',
      );
      if (r.mutations.length) throw new Error(`no-op apply mutated:\n${r.mutations.join('\n')}`);
      noop.push(ms);
      // the floor here: its table comes and goes, a foreign change as the next line's (after
      // the no-op, whose generation must be the one awg verified)
      const f = await insertFloor(nsA, floorSets);
      floorInsert.push(f.insertMs);
      floorEncode.push(f.encodeMs);
      // someone else's table comes and goes: the generation is no longer the verified one
      await nsExec(nsA, 'nft', ['add table ip awgbench; delete table ip awgbench']);
      const [msf, rf] = await wall(
        () => run(['apply', '-f', withList]),
        'no-op apply (counts)',
        'foreign',
      );
      if (rf.mutations.length) throw new Error(`no-op apply mutated:\n${rf.mutations.join('\n')}`);
      foreign.push(msf);
      const [msk, rk] = await wall(() => run(['apply', '-f', ruleEdit]), 'rule edit', 'kept');
      if (!rk.mutations.some((m) => m.includes('set(s) kept: d4_listed, l4_listed, d6_listed')))
        throw new Error(`a rule edit did not keep the list's sets:\n${rk.stderr.slice(-3000)}`);
      kept.push(msk);
      await wall(() => run(['apply', '-f', withList]), 'apply back');
      writeFileSync(listFile, listText + `203.0.113.${i + 1} # one more\n`);
      const [ms2, r2] = await wall(
        () => run(['apply', '-f', withList], 'edit'),
        'edited apply',
        'edit',
      );
      // element deltas only: the set changed in place, never filled or loaded again
      if (
        !r2.mutations.some((m) => m.includes('change nft set inet awg d4_listed in place')) ||
        r2.mutations.some((m) => /fill nft set|add element|replace table/.test(m))
      )
        throw new Error(`a list edit was not a change in place:\n${r2.stderr.slice(-3000)}`);
      // a list edit alone is the set's delta alone: no transaction of the table
      if (r2.mutations.some((m) => m.startsWith('[#] nft -f')))
        throw new Error(`a list edit alone loaded the table:\n${r2.stderr.slice(-3000)}`);
      edit.push(ms2);
      writeFileSync(listFile, listText);
      await wall(() => run(['apply', '-f', withList]), 'apply back');
    }
    out.push(
      sample(
        `CLI wall: awg apply again, nothing changed (0 mutations), with the list`,
        'ms',
        noop,
        `set d4_listed: ${comment}, ${elements} elements listed by nft`,
      ),
    );
    out.push(
      sample(
        `CLI wall: awg apply again, nothing changed, after a foreign nft change (counts read)`,
        'ms',
        foreign,
      ),
    );
    out.push(
      sample(
        `CLI wall: awg apply after a one-line list edit (the set changed in place)`,
        'ms',
        edit,
      ),
    );
    out.push(sample(`CLI wall: awg apply after a rule edit, the list's sets kept`, 'ms', kept));
    const intervals = floorSets.map((x) => `${x.name} ${x.elements.length}`).join(', ');
    out.push(
      sample(
        `floor: the kernel's insert of the list's intervals into fresh sets (one netlink batch per set, no awg)`,
        'ms',
        floorInsert,
        intervals,
      ),
      sample(`floor: encoding those batches (JavaScript)`, 'ms', floorEncode),
    );

    const cpuOf = (key: string, what: string) =>
      sample(`CPU (user+sys of awg and its nft/ip children): ${what}`, 'ms', cpuRuns.get(key)!);
    out.push(
      cpuOf('apply with', 'apply from nothing, with the list'),
      cpuOf('apply without', 'apply from nothing, one CIDR'),
      cpuOf('down with', 'down, with the list'),
      cpuOf('noop', 'apply again, nothing changed'),
      cpuOf('foreign', 'apply again after a foreign nft change (counts read)'),
      cpuOf('edit', 'apply after a one-line list edit'),
      cpuOf('kept', 'apply after a rule edit, sets kept'),
    );

    // throughput: the list's config against the one-CIDR config, alternating per round
    // (AWG_BENCH_SECONDS=0: left out)
    if (seconds === 0) return out;
    if (!(await pingEventually(nsA, LISTED, 20_000))) throw new Error(`no tunnel to ${LISTED}`);
    const iperf = async (dst: string, tries = 3): Promise<number> => {
      const r = await nsExec(
        nsA,
        'iperf3',
        ['-c', dst, '-p', '5201', '-t', String(seconds), '-J'],
        {
          allowFail: true,
        },
      );
      const j = JSON.parse(r.stdout) as {
        error?: string;
        end?: { sum_received?: { bits_per_second: number } };
      };
      // the one server may still be closing the previous test (a loaded machine): again
      if (j.error?.includes('server is busy') && tries > 1) {
        await new Promise((res) => setTimeout(res, 1000));
        return iperf(dst, tries - 1);
      }
      if (j.error || !j.end?.sum_received)
        throw new Error(`iperf3 to ${dst}: ${j.error ?? r.stdout}`);
      return j.end.sum_received.bits_per_second / 1e9;
    };
    const gbps: Record<string, number[]> = {};
    const put = (key: string, v: number) => (gbps[key] ??= []).push(v);
    for (let i = 0; i < rounds; i++) {
      const order = i % 2 ? ([without, withList] as const) : ([withList, without] as const);
      const got: Record<string, number> = {};
      for (const f of order) {
        const key = f === withList ? 'with the list' : 'with one CIDR';
        await wall(() => run(['apply', '-f', f]), `apply ${f}`);
        if (!(await pingEventually(nsA, LISTED, 20_000))) throw new Error(`no tunnel to ${LISTED}`);
        got[`tunnel ${key}`] = await iperf(LISTED);
        got[`direct ${key}`] = await iperf(UB);
        for (const [g, v] of Object.entries(got)) if (g.endsWith(key)) put(g, v);
      }
      put('ratio tunnel', got['tunnel with the list']! / got['tunnel with one CIDR']!);
      put('ratio direct', got['direct with the list']! / got['direct with one CIDR']!);
    }
    const peerDesc = awgGo ? `peer ${awgGo.split('/').pop()}` : 'peer Debian wireguard-go';
    const note = `${peerDesc}; iperf3 -t ${seconds}`;
    out.push(
      sample(
        `iperf3 TCP A→B to a listed address (tunnel), list applied`,
        'Gbit/s',
        gbps['tunnel with the list']!,
        note,
      ),
      sample(
        `iperf3 TCP A→B to the same address, one-CIDR rule`,
        'Gbit/s',
        gbps['tunnel with one CIDR']!,
        note,
      ),
      sample(`ratio list / one CIDR, tunnel flow`, '×', gbps['ratio tunnel']!, 'target ≥ 0.95'),
      sample(
        `iperf3 TCP A→B to an unlisted address (direct, veth), list applied`,
        'Gbit/s',
        gbps['direct with the list']!,
      ),
      sample(
        `iperf3 TCP A→B to the same address, one-CIDR rule`,
        'Gbit/s',
        gbps['direct with one CIDR']!,
      ),
      sample(`ratio list / one CIDR, direct flow`, '×', gbps['ratio direct']!),
    );
    return out;
  } finally {
    for (const l of loops) l.kill('SIGKILL');
    for (const s of servers) await s.kill(1000);
    if (env && nsA) await awg(nsA, env, ['down'], { bin }).catch(() => undefined);
    await peer?.stop().catch(() => undefined);
    for (const ns of [nsA, nsB]) if (ns) await destroyNetns(ns);
    cleanupAwgEnv(env);
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('lists-apply.bench.ts')) {
  const { printSamples, machine } = await import('./lib.js');
  console.log(`machine: ${machine()}`);
  const s = await listsApplyBench(process.argv.includes('--smoke'));
  printSamples('lists-apply', s);
}
