/**
 * A one-line edit of a 100,000-line list through the CLI (dist/), against the real kernel
 * (resources/firewall/linux.ts): the apply is the set's delta alone — one netlink transaction,
 * no `nft -f` (a wrapper on PATH logs every `nft` the apply runs), no read-back — after which
 * the kernel's set holds exactly the new list, no rule's counter was reset (nothing was
 * reloaded), and `awg diff` finds nothing to do.
 *
 * The attacker's case: a rule added to awg's table by another program between the apply's
 * observation and the delta (the wrapper adds it right after the apply's first listing) is
 * not hidden by the short path: the nf_tables generation moved by more than the delta's one
 * transaction, so the verify reads the table afresh, sees the rule as drift and the apply
 * fails and rolls back (the whole table loaded again: the rule is gone); the next apply
 * converges.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  awg,
  cleanupAwgEnv,
  ensureDist,
  fakeTool,
  makeAwgEnv,
  show,
  which,
  writeConfig,
  type AwgEnv,
} from '../helpers/awg.js';
import {
  createNetns,
  destroyNetns,
  nsExec,
  requireNetnsPrereqs,
  sweepStaleNetns,
} from '../helpers/netns.js';

const skip = requireNetnsPrereqs(['nft', 'ping']);

const LINES = 100_000;
/** LINES addresses in 11.0.0.0/8, 7 apart: no two adjacent, so each one element */
function list(): string[] {
  const out: string[] = [];
  for (let i = 0; i < LINES; i++) {
    const a = (11 << 24) + i * 7;
    out.push(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`);
  }
  return out;
}

const CONFIG = `version: 1
rules:
  - name: listed
    to: { lists: [lists/block.txt] }
    target: block
default: direct
`;

interface NftDoc {
  nftables: {
    set?: { table: string; name: string; elem?: unknown[] };
    rule?: { table: string; chain: string; comment?: string; expr: Record<string, unknown>[] };
  }[];
}

describe.skipIf(skip)('a list edit through the CLI: the set changed in place, nothing else', () => {
  let ns = '';
  let e: AwgEnv | undefined;
  let cfg = '';
  let lines: string[] = [];
  let nftLog = '';
  let inject = '';
  const file = () => join(e!.dir, 'lists', 'block.txt');
  const write = () => writeFileSync(file(), lines.join('\n') + '\n');
  const run = (args: string[]) =>
    awg(ns, e!, args, { pathPrepend: join(e!.dir, 'bin'), timeoutMs: 120_000 });
  const nftRuns = () => readFileSync(nftLog, 'utf8').split('\n').filter(Boolean);

  /** the set's elements as the kernel holds them (nft's own listing), sorted */
  const held = async (): Promise<string[]> => {
    const r = await nsExec(ns, 'nft', ['-j', 'list', 'set', 'inet', 'awg', 'd4_listed']);
    const doc = JSON.parse(r.stdout) as NftDoc;
    const elem = doc.nftables.find((x) => x.set)?.set?.elem ?? [];
    return elem.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).sort();
  };
  /** packets per rule of awg's table (chain and comment) */
  const counters = async (): Promise<Map<string, number>> => {
    const r = await nsExec(ns, 'nft', ['-t', '-j', 'list', 'ruleset']);
    const doc = JSON.parse(r.stdout) as NftDoc;
    const out = new Map<string, number>();
    for (const { rule } of doc.nftables) {
      if (rule?.table !== 'awg') continue;
      const c = rule.expr.find((x) => 'counter' in x)?.counter as { packets: number } | undefined;
      if (c) out.set(`${rule.chain} ${rule.comment ?? ''}`, c.packets);
    }
    return out;
  };

  beforeAll(async () => {
    await ensureDist();
    await sweepStaleNetns();
    ns = await createNetns('fw-edit');
    await nsExec(ns, 'ip', ['link', 'set', 'lo', 'up']);
    e = makeAwgEnv();
    nftLog = join(e.dir, 'nft.log');
    inject = join(e.dir, 'inject');
    writeFileSync(nftLog, '');
    const nft = which('nft');
    mkdirSync(join(e.dir, 'bin'));
    mkdirSync(join(e.dir, 'lists'));
    // every run logged; with `inject` present, the first listing is followed by another
    // program's rule in awg's table
    fakeTool(
      join(e.dir, 'bin'),
      'nft',
      [
        `echo "$*" >> ${nftLog}`,
        `if [ "$*" = "-t list ruleset" ] && [ -e ${inject} ]; then`,
        `  rm -f ${inject}`,
        `  ${nft} "$@"; rc=$?`,
        `  ${nft} insert rule inet awg filter_out ip daddr 192.0.2.99 accept comment foreign`,
        `  exit $rc`,
        `fi`,
        `exec ${nft} "$@"`,
      ].join('\n'),
    );
    lines = list();
    write();
    cfg = writeConfig(e, 'cfg.yaml', CONFIG);
    const a = await run(['apply', '-f', cfg]);
    expect(a.code, show(a)).toBe(0);
    expect(await held()).toEqual([...lines].sort());
  }, 180_000);

  afterAll(async () => {
    if (ns && e) await run(['down']);
    if (ns) await destroyNetns(ns);
    cleanupAwgEnv(e);
  });

  it('one line edited: one netlink transaction, no `nft -f`; counters run on; nothing left to do', async () => {
    // traffic the table counts (the loopback rules)
    await nsExec(ns, 'ping', ['-c', '3', '-i', '0.2', '-q', '127.0.0.1']);
    const before = await counters();
    expect([...before.values()].some((n) => n > 0)).toBe(true);
    lines[5000] = '12.0.0.1';
    write();
    writeFileSync(nftLog, '');
    const a = await run(['apply', '-f', cfg]);
    expect(a.code, show(a)).toBe(0);
    expect(a.mutations).toEqual([
      '[#] netlink: change nft set inet awg d4_listed in place (+1 −1)',
    ]);
    // the observation's listing is all the apply ran of nft: no load, no read-back, and the
    // verify took the listing read before (the generation moved by the delta alone)
    expect(nftRuns()).toEqual(['-t list ruleset']);
    expect(await held()).toEqual([...lines].sort());
    const after = await counters();
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [rule, n] of before) expect(after.get(rule), rule).toBeGreaterThanOrEqual(n);
    const d = await run(['diff', '-f', cfg]);
    expect(d.code, show(d)).toBe(0);
    expect(d.stdout).toContain('No changes');
  }, 120_000);

  it('a foreign rule added between the observation and the delta is drift at the verify', async () => {
    const was = [...lines];
    lines[6000] = '12.0.0.9';
    write();
    writeFileSync(nftLog, '');
    writeFileSync(inject, '');
    const a = await run(['apply', '-f', cfg]);
    expect(a.code, show(a)).not.toBe(0);
    expect(a.stderr).toMatch(/\[verification\].*firewall\/inet\/awg/);
    // read afresh after the delta (not the listing from before the foreign rule)
    expect(nftRuns().slice(0, 2)).toEqual(['-t list ruleset', '-t list ruleset']);
    // the rollback loaded the table as it was: the rule gone, the list before the edit
    const table = (await nsExec(ns, 'nft', ['-t', 'list', 'table', 'inet', 'awg'])).stdout;
    expect(table).not.toContain('foreign');
    expect(await held()).toEqual(was.sort());
    rmSync(inject, { force: true });
    const b = await run(['apply', '-f', cfg]);
    expect(b.code, show(b)).toBe(0);
    expect(await held()).toEqual([...lines].sort());
    const d = await run(['diff', '-f', cfg]);
    expect(d.code, show(d)).toBe(0);
  }, 180_000);
});
