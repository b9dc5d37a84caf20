/**
 * Linux nftables driver. Owns exactly one table, `inet <claims.nftTable>`, marked with the
 * comment `managed-by=awg`. A load is one `nft -f -` transaction, after which packets meet the
 * whole new table (load.ts: static sets that are new are filled over netlink before it, while
 * nothing refers to them; unchanged sets are kept with their elements), and is read back; a
 * table with our name but without the marker is a conflict and is never touched; other tables
 * are never read for writing. Reads are `nft -t list ruleset` (no set elements: reads.ts).
 *
 * A list edit alone (the table as read, with the sets changed in place read through the
 * contents record, set-contents.ts, is the wanted one; no set to stage, not a dry run, the
 * kernel at hand) is the sets' deltas alone: no `nft -f`, no read-back (the kernel's `-t`
 * listing is the same text before and after an in-place change), and no rule is reloaded,
 * so every rule's counters run on untouched. The listing read before stands for the verify's
 * observation when the nf_tables generation moved by exactly the deltas' transactions
 * (carryListing); any other change in between makes that observation read afresh.
 *
 * Static sets' elements are not in the observed text (set-elements.ts). A set's element count
 * is checked against its comment's (`awg n=<count>`) by a netlink dump of the set, unless the
 * nf_tables generation is the one recorded after the last load or check of the table (then
 * nothing changed since): a count that differs reads as that count in the comment, so as
 * drift, and the set is loaded again.
 *
 * Kill switch on: the spec's `boot` table is also kept as `<state>/killswitch-boot.nft`, the
 * file the early unit (`awg-killswitch.service`, resources/service/render.ts) loads with
 * `nft -f` before any network is configured. It is part of the observed spec, so a missing or
 * edited copy is drift, and it goes with the table (kill switch off, `awg down`).
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import { rulesetOf } from '../../model/firewall-sets.js';
import type { FirewallSpec, ForeignObject, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec, ExecResult } from '../../util/exec.js';
import {
  CommittedReadBackError,
  type Driver,
  type ObserveResult,
  type ObserveScope,
} from '../driver.js';
import {
  parseTableListing,
  parseTableNames,
  tableOfRuleset,
  tagTable,
  type TableListing,
} from './parse.js';
import { NFT_MARKER } from './policy.js';
import { normaliseRuleset } from './normalise.js';
import { intervalCount, keepListedElements, knownElements, staticSets } from './set-elements.js';
import { planLoad } from './load.js';
import {
  nextContents,
  overlayContents,
  readContents,
  withUpdate,
  writeContents,
  type SetContents,
} from './set-contents.js';
import { dropStoredSets, storeSets } from './set-store.js';
import {
  keepChangingSets,
  keepDeletedSets,
  nativeSetKernel,
  stampMovedBy,
  updateInPlace,
  verifiedStamp,
  type SetKernel,
} from './set-kernel.js';
export { nativeSetKernel, type SetKernel } from './set-kernel.js';
import { ownerTagOf } from '../owner-lock.js';
import { carryCounters } from './counters.js';
import { cgroupSetsOfRuleset, fillCgroupSets } from './cgroup-sets.js';
// native/nftset.js (koffi) is imported when used: `awg validate` loads this module's chunk
import type { NftSetWriter } from '../../native/nftset.js';
import { NFT_RULESET_READ } from '../reads.js';
import { runsOnHost } from '../prefetch.js';
import type { StateStore } from '../../util/state.js';
import { join } from 'node:path';

import { BOOT_RULESET_FILE, bootCopy } from './boot-copy.js';
export { BOOT_RULESET_FILE, parseBootFile, renderBootFile } from './boot-copy.js';

export interface LinuxFirewallOptions {
  exec: Pick<Exec, 'read'>;
  /** the writer of the `w_…` sets' elements (default: netlink, native/nftset.ts) */
  setWriter?: (table: string) => Pick<NftSetWriter, 'replace' | 'close'>;
  /**
   * the kernel behind `exec` (default: this process's when `exec` runs commands on this host,
   * none otherwise: no counts are checked, static elements load in the nft text)
   */
  kernel?: SetKernel;
}

async function kernelOf(
  opts: LinuxFirewallOptions,
  exec: Pick<Exec, 'read'>,
): Promise<SetKernel | undefined> {
  return opts.kernel ?? (runsOnHost(exec) ? nativeSetKernel() : undefined);
}

/** `ruleset` with set `name`'s comment telling `n` elements instead of `was` */
function withCount(ruleset: string, name: string, was: number, n: number): string {
  const lines = ruleset.split('\n');
  const at = lines.indexOf(`set ${name} {`);
  for (let i = at + 1; at >= 0 && i < lines.length && lines[i] !== '}'; i++)
    if (lines[i]!.startsWith(`comment "awg n=${was} sha256=`))
      lines[i] = lines[i]!.replace(`n=${was} `, `n=${n} `);
  return lines.join('\n');
}

/**
 * The listing with each static set's comment telling the count the kernel holds (see the
 * header): unchanged when the generation is the verified one or every count matches (the
 * stamp then moves to the generation read before the counts). A count that cannot be read
 * leaves the comment as it is (a set that vanished reads as absent from the listing already).
 */
function checkCounts(
  kernel: SetKernel,
  state: StateStore,
  table: string,
  t: TableListing,
): TableListing {
  const sets = staticSets(t.ruleset);
  if (sets.length === 0) return t;
  const stamp = kernel.stamp();
  if (stamp !== undefined && verifiedStamp.get(state, table) === stamp) return t;
  let ruleset = t.ruleset;
  let same = true;
  for (const s of sets) {
    let n: number;
    try {
      n = intervalCount(kernel.dump(table, s.name));
    } catch {
      same = false;
      continue;
    }
    if (n === s.count) continue;
    same = false;
    ruleset = withCount(ruleset, s.name, s.count, n);
  }
  if (same) verifiedStamp.set(state, table, stamp);
  return ruleset === t.ruleset ? t : { ...t, ruleset };
}

/**
 * The last listing of each table read on this host, with the nf_tables generation it was read
 * at: an observation at the same generation reuses it. Only for the real host's processes: a
 * test's exec has no kernel behind the generation.
 */
const listings = new Map<string, { gen: number; read: RulesetRead }>();
/**
 * Each listing's result with the generation read before its first reader ran it: a result
 * shared by the reconcile's pass (read-pass.ts) was read then, not when a later reader (the
 * load's own read of the table) is handed it.
 */
const readAt = new WeakMap<ExecResult, number>();

/**
 * After `commits` nf_tables transactions of this process's own that leave the listing text
 * as it was (static sets' elements changed in place), between generations `before` and
 * `after`: `listing`, read at `before`, stands at `after` too, so the verify's observation
 * reuses it. Any other difference (a foreign change in between, a count unknown) leaves the
 * cache alone: the next observation reads afresh. Whether it moved.
 */
export function carryListing(
  table: string,
  listing: TableListing,
  before: number | undefined,
  after: number | undefined,
  commits: number | undefined,
): boolean {
  const had = listings.get(table);
  if (before === undefined || after === undefined || commits === undefined) return false;
  if (had?.read.table !== listing || had.gen !== before || after !== (before + commits) % 2 ** 32)
    return false;
  listings.set(table, { gen: after, read: had.read });
  return true;
}

export interface RulesetRead {
  /** our table; undefined when it does not exist */
  table: TableListing | undefined;
  /** every table's [family, name] */
  names: [string, string][];
}

/** this namespace's nf_tables generation when `exec` runs here (else none: a test's exec) */
async function hostGeneration(exec: Pick<Exec, 'read'>): Promise<number | undefined> {
  return runsOnHost(exec) ? (await import('../../native/nftset.js')).nftGeneration() : undefined;
}

/**
 * `nft -t list ruleset` → table `inet <table>` and the tables' names. `reuse`: a listing read
 * at the current nf_tables generation may stand in (its counters are as old as it is: callers
 * that carry counters read afresh).
 */
export async function readRuleset(
  exec: Pick<Exec, 'read'>,
  table: string,
  o: { reuse?: boolean } = {},
): Promise<RulesetRead> {
  const gen = await hostGeneration(exec);
  if (o.reuse && gen !== undefined) {
    const had = listings.get(table);
    if (had?.gen === gen) return had.read;
  }
  const [cmd, args] = NFT_RULESET_READ;
  const r = await exec.read(cmd, [...args], { allowFail: true });
  if (r.code !== 0) {
    const perm = /Operation not permitted|Permission denied/.test(r.stderr);
    throw new AwgError(
      perm ? 'permission' : 'driver',
      `nft ${args.join(' ')} failed: ${r.stderr.trim()}`,
    );
  }
  const text = tableOfRuleset(r.stdout, 'inet', table);
  // a listing with elements (not nft's `-t` one: a test's) can be loaded again: set-elements.ts
  if (text !== undefined) keepListedElements(text);
  const read = {
    table: text !== undefined ? parseTableListing(text) : undefined,
    names: parseTableNames(r.stdout),
  };
  // the generation was read first: a change in between makes the next one differ
  if (gen !== undefined) {
    const at = readAt.get(r) ?? gen;
    readAt.set(r, at);
    listings.set(table, { gen: at, read });
  }
  return read;
}

/** table `inet <table>` (readRuleset), undefined when it does not exist */
export async function readTable(
  exec: Pick<Exec, 'read'>,
  table: string,
  o: { reuse?: boolean } = {},
): Promise<TableListing | undefined> {
  return (await readRuleset(exec, table, o)).table;
}

function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++)
    if (x[i] !== y[i])
      return `line ${i + 1}: wanted ${JSON.stringify(x[i] ?? '')}, got ${JSON.stringify(y[i] ?? '')}`;
  return 'no difference';
}

/** `raw` (a listing as the kernel has it) read through the contents record `c` is `want`, ours */
function readsAs(raw: TableListing, c: SetContents, want: string): boolean {
  const t = overlayContents(raw, c).listing;
  return t.marked && t.ruleset === want;
}

/** the static sets of `want` whose elements this process holds: what a load leaves in them */
function loadedSets(want: string) {
  return staticSets(want).flatMap((s) => {
    const elements = knownElements(s.digest);
    return elements ? [{ name: s.name, digest: s.digest, elements }] : [];
  });
}

/** the kernel's generation stamp, and this namespace's generation when `exec` runs here */
async function generationOf(
  kernel: SetKernel,
  exec: Pick<Exec, 'read'>,
): Promise<{ stamp: string | undefined; gen: number | undefined }> {
  return { stamp: kernel.stamp(), gen: await hostGeneration(exec) };
}

/** what the driver's records touch (read-pass.ts: which shared listings they end) */
const NFT = { touches: 'nft' } as const;
const FILES = { touches: 'files' } as const;

export function createLinuxFirewallDriver(opts: LinuxFirewallOptions): Driver<'firewall'> {
  return {
    kind: 'firewall',
    async observe(scope: ObserveScope): Promise<ObserveResult<'firewall'>> {
      const table = scope.claims.nftTable;
      const resources: Resource<'firewall'>[] = [];
      const foreign: ForeignObject[] = [];
      const read = await readRuleset(opts.exec, table, { reuse: true });
      const kernel = read.table?.marked ? await kernelOf(opts, opts.exec) : undefined;
      // static sets changed in place say their content through the record (set-contents.ts)
      const listed = read.table && overlayContents(read.table, readContents(scope.state, table));
      const t =
        kernel && listed
          ? checkCounts(kernel, scope.state, table, listed.listing)
          : listed?.listing;
      const desired = scope.desired.resources.find(
        (r) => r.kind === 'firewall' && r.id === ids.firewall(table),
      );
      if (kernel && t)
        keepChangingSets(kernel, scope.state, table, t.ruleset, rulesetOf(desired?.spec) ?? '');
      const mine = ownerTagOf(scope.state);
      if (t?.marked && t.owner && mine && t.owner !== mine)
        foreign.push({
          kind: 'firewall',
          id: ids.firewall(table),
          relation: 'conflict',
          description: `nft table inet ${table} belongs to another awg state directory (owner tag ${t.owner}); awg will not touch it`,
          owner: t.owner,
        });
      else if (t?.marked) {
        const boot = bootCopy.read(scope.state, table);
        resources.push({
          kind: 'firewall',
          id: ids.firewall(table),
          spec: {
            family: 'inet',
            table,
            ruleset: t.ruleset,
            ...(boot !== undefined ? { boot } : {}),
          },
          deps: [],
        });
      } else if (!t) {
        // no table (a reboot without the early unit, someone's `nft flush ruleset`) but our
        // boot copy: still ours, so `awg down` removes it and apply rewrites it with the table
        const boot = bootCopy.read(scope.state, table);
        if (boot !== undefined)
          resources.push({
            kind: 'firewall',
            id: ids.firewall(table),
            spec: { family: 'inet', table, ruleset: '', boot },
            deps: [],
          });
      } else
        foreign.push({
          kind: 'firewall',
          id: ids.firewall(table),
          relation: 'conflict',
          description: `nft table inet ${table} exists without the comment "managed-by=awg"; awg will not touch it`,
        });
      for (const [family, name] of read.names) {
        if (name === 'firewalld')
          foreign.push({
            kind: 'firewall',
            id: `firewall/${family}/${name}`,
            relation: 'competitor',
            description: `firewalld's table ${family} ${name} may reject traffic awg allows`,
          });
      }
      return { resources, foreign };
    },

    async apply(change: Change<'firewall'>, ctx) {
      if (change.action === 'noop') return 'unchanged';
      const spec = change.after ?? change.before;
      if (!spec) throw new AwgError('bug', `${change.action} ${change.id} without a spec`);
      if (spec.table !== ctx.claims.nftTable)
        throw new AwgError(
          'bug',
          `firewall table ${spec.table} is not the claimed table ${ctx.claims.nftTable}`,
        );
      let cur = await readTable(ctx.exec, spec.table);
      if (cur && !cur.marked)
        throw new AwgError(
          'conflict',
          `nft table inet ${spec.table} exists without our marker; not touching it`,
          { hint: `remove it or set routing.nftTable to another name` },
        );
      const mine = ownerTagOf(ctx.state);
      if (cur?.owner && mine && cur.owner !== mine)
        throw new AwgError(
          'conflict',
          `nft table inet ${spec.table} belongs to another awg state directory (owner tag ${cur.owner}); not touching it`,
        );
      /** the boot copy follows the spec: written with the table, removed without a kill switch */
      // A failure here never undoes the table that runs (a rollback would open the kill switch
      // now for a copy needed only at the next boot): it is a warning, and the copy stays
      // drift that the next reconcile repairs.
      const syncBoot = (boot: string | undefined): boolean => {
        const have = bootCopy.read(ctx.state, spec.table);
        if (have === boot) return false;
        const path = join(ctx.state.dir, BOOT_RULESET_FILE);
        try {
          if (boot === undefined) {
            if (ctx.exec.record(`rm ${path} (the kill switch at boot)`, FILES))
              bootCopy.remove(ctx.state);
          } else if (
            ctx.exec.record(
              `write ${path} (the kill switch at boot, ${boot.split('\n').length - 1} lines, mode 0600)`,
              FILES,
            )
          )
            bootCopy.write(ctx.state, spec.table, boot);
        } catch (e) {
          ctx.reporter.report({
            type: 'warning',
            message: `the kill switch's boot copy ${path} could not be ${boot === undefined ? 'removed' : 'written'}: ${(e as Error).message}`,
          });
        }
        return true;
      };
      if (change.action === 'delete') {
        const removed = syncBoot(undefined);
        if (!cur) return removed ? 'changed' : 'unchanged';
        await ctx.exec.mutate('nft', ['delete', 'table', 'inet', spec.table]);
        verifiedStamp.clear(ctx.state, spec.table);
        writeContents(ctx.state, { table: spec.table, sets: {} });
        dropStoredSets(ctx.state);
        return 'changed';
      }
      const contents = readContents(ctx.state, spec.table);
      // the kernel's listing as read (set comments as made): what an in-place change leaves
      const raw = cur;
      const listed = cur && overlayContents(cur, contents);
      cur = listed?.listing;
      const kernel = await kernelOf(opts, ctx.exec);
      if (kernel && cur) cur = checkCounts(kernel, ctx.state, spec.table, cur);
      const counted = cur === listed?.listing;
      const after = change.after as FirewallSpec;
      const want = normaliseRuleset(after.ruleset);
      // the elements of sets whose content changes, read while they are there: a delta's start
      if (kernel && cur) keepChangingSets(kernel, ctx.state, spec.table, cur.ruleset, want);
      /** the unit/cgroup rules' sets: a load empties them, and their cgroups may be new (cgroup-sets.ts) */
      const fillSets = async (): Promise<void> => {
        const sets = cgroupSetsOfRuleset(want);
        // run-time state like the learned sets, not a change of the plan: not recorded as a
        // mutation (an apply that finds everything in place stays one without mutations)
        if (sets.length === 0 || ctx.exec.dryRun) return;
        try {
          let w: Pick<NftSetWriter, 'replace' | 'close'>;
          if (opts.setWriter) w = opts.setWriter(after.table);
          else w = (await import('../../native/nftset.js')).openSetWriter({ table: after.table });
          try {
            fillCgroupSets(w, sets);
          } finally {
            w.close();
          }
        } catch (e) {
          ctx.reporter.report({
            type: 'warning',
            message: `unit/cgroup rules: the cgroup sets could not be filled: ${(e as Error).message}`,
          });
        }
      };
      // the boot copy after the table: a copy is never newer than what runs
      if (cur?.ruleset === want) {
        await fillSets();
        return syncBoot(after.boot) ? 'changed' : 'unchanged';
      }
      const table = after.table;
      const plan = planLoad({
        family: 'inet',
        table,
        cur: cur?.ruleset,
        want,
        // unchanged rules keep their counters across the replace (counters.ts); a table it
        // makes carries our owner tag
        ruleset: tagTable(cur ? carryCounters(cur.text, want) : want, mine),
        marker: tagTable(`comment "${NFT_MARKER}"`, mine),
        netlink: kernel !== undefined && !ctx.exec.dryRun,
        known: (d) => knownElements(d) !== undefined,
        elements: knownElements,
      });
      if (kernel && cur)
        keepDeletedSets(kernel, ctx.state, table, cur.ruleset, (n) => plan.kept.includes(n));
      if (kernel && plan.stage !== undefined) {
        const staged = plan.staged.map((s) => s.name).join(', ');
        await ctx.exec.mutate('nft', ['-f', '-'], {
          input: plan.stage,
          display: `nft -f - (declare set(s) ${staged} in table inet ${table}, none referenced yet)`,
        });
        try {
          for (const s of plan.staged) {
            const els = s.digest !== undefined ? knownElements(s.digest) : undefined;
            if (!els) continue;
            if (
              ctx.exec.record(
                `netlink: fill nft set inet ${table} ${s.name} (${els.length} intervals)`,
                NFT,
              )
            )
              kernel.fill(table, s.name, els);
          }
        } catch (e) {
          // nothing refers to the staged sets yet: take them (or the table they came with) away
          await ctx.exec
            .mutate('nft', ['-f', '-'], {
              input: cur
                ? plan.staged.map((s) => `delete set inet ${table} ${s.name}\n`).join('')
                : `delete table inet ${table}\n`,
              display: `nft -f - (remove the sets declared for the load: ${staged})`,
            })
            .catch(() => undefined);
          throw e;
        }
      }
      const now = nextContents(contents, listed?.overlaid ?? new Set(), plan.kept, plan.updated);
      // the table as it reads once the sets below changed in place is the wanted one (a list
      // edit alone): those changes converge it, without the transaction and its read-back
      const setsOnly =
        kernel !== undefined &&
        !ctx.exec.dryRun &&
        counted &&
        raw !== undefined &&
        plan.staged.length === 0 &&
        plan.updated.length > 0 &&
        readsAs(raw, now, want);
      const start = setsOnly ? await generationOf(kernel, ctx.exec) : undefined;
      // static sets changed in place: their differences, each one transaction, recorded at once
      let held = contents;
      let commits: number | undefined = 0;
      for (const u of plan.updated) {
        const what = `netlink: change nft set inet ${table} ${u.name} in place (+${u.added} −${u.removed})`;
        if (kernel && ctx.exec.record(what, NFT)) {
          const n = updateInPlace(kernel, table, u);
          commits = n === undefined || commits === undefined ? undefined : commits + n;
        }
        held = withUpdate(held, listed?.overlaid ?? new Set(), u);
        writeContents(ctx.state, held);
      }
      if (setsOnly && start) {
        const end = await generationOf(kernel, ctx.exec);
        writeContents(ctx.state, now);
        // the listing read before still is the kernel's, unless anything else committed (the
        // cgroup sets' fill below commits too: with w_ sets, the verify reads afresh)
        carryListing(table, raw, start.gen, end.gen, commits);
        // the static sets hold what was checked and changed, unless anything else committed
        const clean =
          verifiedStamp.get(ctx.state, table) === start.stamp &&
          stampMovedBy(start.stamp, end.stamp, commits);
        await fillSets();
        if (clean) verifiedStamp.set(ctx.state, table, kernel.stamp());
        storeSets(ctx.state, table, loadedSets(want));
        syncBoot(after.boot);
        return 'changed';
      }
      await ctx.exec.mutate('nft', ['-f', '-'], {
        input: plan.transaction,
        display:
          plan.mode === 'classic'
            ? `nft -f - (replace table inet ${table}, ${want.split('\n').length} lines)`
            : `nft -f - (load table inet ${table}, ${want.split('\n').length} lines; set(s) kept: ${[...plan.kept, ...plan.staged.map((s) => s.name)].join(', ') || 'none'})`,
      });
      if (ctx.exec.dryRun) return 'changed';
      writeContents(ctx.state, now);
      const read = await readTable(ctx.exec, after.table);
      const back = read && overlayContents(read, now).listing;
      if (!back?.marked)
        throw new AwgError(
          'verification',
          `nft table inet ${after.table} is ${back ? 'not ours' : 'gone'} right after its load`,
        );
      if (back.ruleset !== want) {
        // the transaction committed: the kernel runs the table as loaded, so its boot copy
        // follows it (a kill switch that holds now also holds after a reboot)
        syncBoot(after.boot);
        throw new CommittedReadBackError(
          change.id,
          `nft table inet ${after.table} reads back differently: ${firstDifference(want, back.ruleset)}`,
        );
      }
      await fillSets();
      // what the static sets hold now is what this load wrote or kept after its check
      if (kernel) {
        verifiedStamp.set(ctx.state, table, kernel.stamp());
        storeSets(ctx.state, table, loadedSets(want));
      }
      syncBoot(after.boot);
      return 'changed';
    },
  };
}
