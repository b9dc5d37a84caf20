/**
 * Step 21: a static set whose content changed (a list edit) changed in place, against loading
 * it again, in a network namespace of its own (never the host's ruleset). awg's own firewall
 * driver (resources/firewall/linux.ts `apply`, the kernel over netlink: set-kernel.ts) loads
 * a table with one rule and its static set `d4_listed` of N disjoint IPv4 prefixes (hosts,
 * /24, /26, /28; N = 100,000 and 10,000, `--smoke`: 2,000), then applies the same table with
 * 1 % of the prefixes replaced by others (N/100 deleted, N/100 added), and back:
 *
 * - delta: the driver's path when it knows the set's old elements (this process rendered
 *   them; the CLI takes them from the state directory): planLoad's `updated`, the elements
 *   that differ deleted and added over netlink in one transaction (updateInPlace), then the
 *   table's `nft -f` transaction, which keeps the set. Timed: the whole apply, and apart its
 *   netlink delta and its `nft -f` transaction;
 * - reload (the old path, and still the path when the old elements are not known): the same
 *   driver with the old digest's elements unknown and no dump to read them from, so the set is
 *   deleted and created again by the transaction with every element as `add element` text;
 * - anchor, the kernel alone: `nft -f` of a file with the same `delete element` and `add
 *   element` statements, applied to a set with the same content in a table of its own
 *   (`inet awgbench`) in the same namespace, with a timeout (`AWG_BENCH_NFT_TIMEOUT_S`, 60):
 *   nft reads a whole interval set to delete from it (by hand: over 120 s at 100,000).
 *
 * Rounds alternate the order (delta first, then reload first) and the direction. Each apply is
 * checked for its kind, the smoke's whole point (not a timing): the delta must say `change
 * nft set … in place (+k −k)`, its transaction must carry no element and keep the set's
 * handle; the reload must delete the set and add its elements in the transaction; the kernel
 * must hold N intervals after each. Needs root and nft. `AWG_BENCH_ROUNDS` (5) and
 * `AWG_BENCH_SET_SIZES` (100000,10000) override the sizes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Change } from '../src/model/change.js';
import type { FirewallSpec } from '../src/model/resources.js';
import { DEFAULT_CLAIMS } from '../src/pipeline/claims.js';
import type { ApplyContext, Claims } from '../src/resources/driver.js';
import {
  createLinuxFirewallDriver,
  nativeSetKernel,
  type SetKernel,
} from '../src/resources/firewall/linux.js';
import { firewallSpec } from '../src/resources/firewall/render.js';
import { intervalCount } from '../src/resources/firewall/set-elements.js';
import type { ExecOptions, ExecResult } from '../src/util/exec.js';
import { FileStateStore } from '../src/util/state.js';
import { destPolicy } from '../test/helpers/dest-policy.js';
import { NsExec } from '../test/helpers/exec.js';
import {
  createNetns,
  destroyNetns,
  netnsPath,
  nsExec,
  sweepStaleNetns,
} from '../test/helpers/netns.js';
import { median, percentile, type Sample } from './lib.js';

const TABLE = 'awgsd';
const ANCHOR = 'awgbench';
const SET = 'd4_listed';
const claims: Claims = { ...DEFAULT_CLAIMS, nftTable: TABLE };

const v4 = (a: number) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;

/** prefix `i` of a content: in /24 block 2i (1 % moved to block 2i + 1), never adjacent */
function prefix(i: number, moved: boolean): string {
  const net = ((1 << 24) + (2 * i + (moved ? 1 : 0)) * 256) >>> 0;
  switch (i % 4) {
    case 0:
      return v4(net + 1);
    case 1:
      return `${v4(net)}/24`;
    case 2:
      return `${v4(net + 64)}/26`;
    default:
      return `${v4(net + 16)}/28`;
  }
}

/** the two contents: `b` has every hundredth prefix of `a` replaced by another */
export function contents(n: number): { a: string[]; b: string[]; changed: number } {
  const a: string[] = [];
  const b: string[] = [];
  let changed = 0;
  for (let i = 0; i < n; i++) {
    a.push(prefix(i, false));
    const moved = i % 100 === 50;
    if (moved) changed++;
    b.push(prefix(i, moved));
  }
  return { a, b, changed };
}

/** `delete element` then `add element` statements (nft -f), 8,192 per line as awg writes */
function nftDelta(table: string, removed: readonly string[], added: readonly string[]): string {
  const lines: string[] = [];
  for (const [verb, els] of [
    ['delete', removed],
    ['add', added],
  ] as const)
    for (let i = 0; i < els.length; i += 8192)
      lines.push(`${verb} element inet ${table} d4 { ${els.slice(i, i + 8192).join(', ')} }`);
  return lines.join('\n') + '\n';
}

const sample = (name: string, runs: number[], note?: string): Sample => ({
  name,
  unit: 'ms',
  runs,
  median: median(runs),
  p90: percentile(runs, 90),
  ...(note !== undefined ? { note } : {}),
});
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const fmt = (n: number) => n.toLocaleString('en');
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function sizeBench(ns: string, dir: string, n: number, rounds: number): Promise<Sample[]> {
  const { a, b, changed } = contents(n);
  const state = new FileStateStore(mkdtempSync(join(dir, 'state-')));
  const kernel = await nativeSetKernel(netnsPath(ns));
  const timing = { update: 0, transaction: 0 };
  const timed: SetKernel = {
    stamp: () => kernel.stamp(),
    dump: (t, s) => kernel.dump(t, s),
    fill: (t, s, e) => kernel.fill(t, s, e),
    update: (t, s, r, ad) => {
      const t0 = process.hrtime.bigint();
      kernel.update(t, s, r, ad);
      timing.update += ms(t0);
    },
  };
  // the old path: the live elements unknown (no trusted generation, no dump to read)
  const blind: SetKernel = {
    stamp: () => undefined,
    dump: () => {
      throw new Error('no dump (the reload case)');
    },
    fill: (t, s, e) => kernel.fill(t, s, e),
    update: () => {
      throw new Error('no update in the reload case');
    },
  };
  const spec = (els: string[]) => firewallSpec(destPolicy(TABLE, [{ name: 'listed', v4: els }]));
  /** one driver apply; its mutations and `nft -f` inputs */
  const apply = async (
    k: SetKernel,
    s: FirewallSpec,
    action: 'create' | 'update',
    want: 'changed' | 'unchanged' = 'changed',
  ) => {
    const exec = new NsExec(ns);
    const inputs: string[] = [];
    const mutate = exec.mutate.bind(exec);
    exec.mutate = async (cmd: string, args: string[], o: ExecOptions = {}): Promise<ExecResult> => {
      const t0 = process.hrtime.bigint();
      const r = await mutate(cmd, args, o);
      if (o.input !== undefined) {
        inputs.push(o.input);
        timing.transaction += ms(t0);
      }
      return r;
    };
    const ctx: ApplyContext = { exec, reporter: exec.reporter, state, dryRun: false, claims };
    const change: Change<'firewall'> = {
      kind: 'firewall',
      id: `firewall/inet/${TABLE}`,
      action,
      after: s,
      reason: '',
      cause: 'initial',
    };
    timing.update = 0;
    timing.transaction = 0;
    const t0 = process.hrtime.bigint();
    const r = await createLinuxFirewallDriver({ exec, kernel: k }).apply(change, ctx);
    const wall = ms(t0);
    if (r !== want) throw new Error(`set-delta: the apply was ${r}, not ${want}`);
    return { wall, mutations: exec.reporter.mutations, inputs, ...timing };
  };
  const handle = async (): Promise<number> => {
    const r = await nsExec(ns, 'nft', ['-a', '-t', 'list', 'set', 'inet', TABLE, SET]);
    return Number(new RegExp(`set ${SET} \\{ # handle (\\d+)`).exec(r.stdout)?.[1] ?? NaN);
  };
  const held = (table: string, set: string) => intervalCount(kernel.dump(table, set));
  const fail = (what: string, detail: unknown): never => {
    throw new Error(`set-delta (${fmt(n)}): ${what}:\n${JSON.stringify(detail, null, 1)}`);
  };

  const runs: Record<string, number[]> = {};
  const put = (k: string, v: number) => (runs[k] ??= []).push(v);
  let cur = a;
  const other = () => (cur === a ? b : a);
  const delta = async (record: boolean) => {
    const to = other();
    const before = await handle();
    spec(cur); // both contents' elements known to this process (as the daemon's)
    const r = await apply(timed, spec(to), 'update');
    const inPlace = `netlink: change nft set inet ${TABLE} ${SET} in place (+${changed} −${changed})`;
    if (
      !r.mutations.includes(inPlace) ||
      r.inputs.some((i) => /add element|delete set/.test(i)) ||
      r.mutations.some((m) => m.includes('netlink: fill'))
    )
      fail('the edited set was not changed in place', r.mutations);
    const after = await handle();
    if (Number.isNaN(before) || after !== before)
      fail('the set changed in place got a new handle', { before, after });
    cur = to;
    if (record) {
      put('delta', r.wall);
      put('delta netlink', r.update);
      put('delta transaction', r.transaction);
    }
  };
  const reload = async (record: boolean) => {
    const to = other();
    // 64 other contents rendered: the live one's elements leave this process (set-elements.ts
    // keeps 64 digests), as in a process that never had them
    for (let i = 0; i < 64; i++) spec([`10.${i}.0.0/16`]);
    const r = await apply(blind, spec(to), 'update');
    const tx = r.inputs.at(-1) ?? '';
    if (
      r.mutations.some((m) => m.includes('in place')) ||
      !tx.includes(`delete set inet ${TABLE} ${SET}`) ||
      !tx.includes(`add element inet ${TABLE} ${SET}`)
    )
      fail('the reload did not load the set again', r.mutations);
    cur = to;
    // as after any load: the generation verified with the kernel (a no-op apply counts the
    // set once), so the next delta starts where the daemon's would
    await apply(timed, spec(cur), 'update', 'unchanged');
    if (record) {
      put('reload', r.wall);
      put('reload transaction', r.transaction);
    }
  };
  // the anchor: nft -f of the same statements on a set of its own with the same content
  const timeoutS = Number(process.env.AWG_BENCH_NFT_TIMEOUT_S ?? 60);
  let anchorCur = a;
  let anchorGone: string | undefined;
  const anchor = async (record: boolean) => {
    if (anchorGone) return;
    const to = anchorCur === a ? b : a;
    const removed = anchorCur.filter((_, i) => i % 100 === 50);
    const added = to.filter((_, i) => i % 100 === 50);
    const file = join(dir, `anchor-${n}.nft`);
    writeFileSync(file, nftDelta(ANCHOR, removed, added));
    const t0 = process.hrtime.bigint();
    // a timeout rejects (the process group killed): the anchor ends there (a killed nft
    // committed nothing, or all: the set's content is no longer known)
    const r = await nsExec(ns, 'nft', ['-f', file], {
      allowFail: true,
      timeoutMs: timeoutS * 1000,
    }).catch(() => undefined);
    const wall = ms(t0);
    if (!r) {
      anchorGone = `nft -f did not finish in ${timeoutS} s (killed)`;
      if (record) put('anchor timeouts', wall);
      return;
    }
    if (r.code !== 0) fail(`nft -f of the anchor's delta exited ${r.code}`, r.stderr);
    anchorCur = to;
    if (record) put('anchor', wall);
  };

  // the table and the anchor's set, both holding `a`
  const first = await apply(timed, spec(a), 'create');
  if (!first.mutations.some((m) => m.startsWith(`netlink: fill nft set inet ${TABLE} ${SET}`)))
    fail('the first load did not fill the set over netlink', first.mutations);
  await nsExec(ns, 'nft', [
    `add table inet ${ANCHOR}; add set inet ${ANCHOR} d4 { type ipv4_addr; flags interval; }`,
  ]);
  kernel.fill(ANCHOR, 'd4', a);
  if (held(ANCHOR, 'd4') !== n || held(TABLE, SET) !== n) fail('the sets do not hold N', n);
  const loadBefore = load();
  try {
    // one unrecorded round each (JIT, the page cache of nft), then the rounds
    await delta(false);
    await reload(false);
    for (let i = 0; i < rounds; i++) {
      const steps = i % 2 ? [anchor, reload, delta] : [delta, reload, anchor];
      for (const s of steps) await s(true);
    }
    if (held(TABLE, SET) !== n) fail('the set does not hold N intervals after the rounds', n);
    if (!anchorGone && held(ANCHOR, 'd4') !== n) fail('the anchor set does not hold N', n);
  } finally {
    await nsExec(ns, 'nft', ['delete', 'table', 'inet', TABLE], { allowFail: true });
    await nsExec(ns, 'nft', ['delete', 'table', 'inet', ANCHOR], { allowFail: true });
  }
  const k = fmt(n);
  const note = `${k} prefixes, ${fmt(changed)} deleted + ${fmt(changed)} added; load ${loadBefore} → ${load()}`;
  const out = [
    sample(`${k}: delta — the driver's apply, set changed in place`, runs.delta!, note),
    sample(`${k}: delta — of which the netlink delta (one transaction)`, runs['delta netlink']!),
    sample(`${k}: delta — of which the table's nft -f transaction`, runs['delta transaction']!),
    sample(`${k}: reload — the driver's apply, set loaded again (old path)`, runs.reload!),
    sample(`${k}: reload — of which the nft -f transaction`, runs['reload transaction']!),
  ];
  if (runs.anchor)
    out.push(
      sample(
        `${k}: anchor — nft -f of the same delete/add element statements`,
        runs.anchor,
        anchorGone,
      ),
    );
  if (anchorGone)
    out.push(
      sample(
        `${k}: anchor — nft -f timed out`,
        runs['anchor timeouts'] ?? [timeoutS * 1000],
        `${anchorGone}; ${runs.anchor?.length ?? 0} run(s) finished before`,
      ),
    );
  return out;
}

export async function setDeltaBench(smoke: boolean): Promise<Sample[]> {
  const sizes = smoke
    ? [2_000]
    : (process.env.AWG_BENCH_SET_SIZES ?? '100000,10000').split(',').map(Number);
  const rounds = smoke ? 1 : Number(process.env.AWG_BENCH_ROUNDS ?? 5);
  await sweepStaleNetns();
  const ns = await createNetns('sdl');
  const dir = mkdtempSync(join(tmpdir(), 'awg-bench-setdelta-'));
  try {
    const out: Sample[] = [];
    for (const n of sizes) out.push(...(await sizeBench(ns, dir, n, rounds)));
    return out;
  } finally {
    await destroyNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('set-delta.bench.ts')) {
  const { printSamples, machine } = await import('./lib.js');
  console.log(`machine: ${machine()}`);
  printSamples('set-delta', await setDeltaBench(process.argv.includes('--smoke')));
}
