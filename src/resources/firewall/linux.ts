/**
 * Linux nftables driver. Owns exactly one table, `inet <claims.nftTable>`, marked with the
 * comment `managed-by=awg`. Loads are one `nft -f -` transaction (render.ts) and are read back;
 * a table with our name but without the marker is a conflict and is never touched; other
 * tables are never read for writing.
 *
 * Kill switch on: the spec's `boot` table is also kept as `<state>/killswitch-boot.nft`, the
 * file the early unit (`awg-killswitch.service`, resources/service/render.ts) loads with
 * `nft -f` before any network is configured. It is part of the observed spec, so a missing or
 * edited copy is drift, and it goes with the table (kill switch off, `awg down`).
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { FirewallSpec, ForeignObject, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import { ProcessExec, type Exec } from '../../util/exec.js';
import type { Driver, ObserveResult, ObserveScope } from '../driver.js';
import { parseTableListing, parseTableNames, type TableListing } from './parse.js';
import { normaliseRuleset, renderTransaction } from './render.js';
import { keepListedElements } from './set-elements.js';
import { carryCounters } from './counters.js';
import { cgroupSetsOfRuleset, fillCgroupSets } from './cgroup-sets.js';
// native/nftset.js (koffi) is imported when used: `awg validate` loads this module's chunk
import type { NftSetWriter } from '../../native/nftset.js';
import { NFT_TABLES_READ, nftTableRead } from '../reads.js';
import { stateFile, type StateStore } from '../../util/state.js';
import { join } from 'node:path';

import { BOOT_RULESET_FILE } from '../service/render.js';
export { BOOT_RULESET_FILE };
const BOOT_HEADER =
  '# managed-by=awg: the kill switch loaded at boot by awg-killswitch.service (nft -f); written by awg apply, removed by awg down\n';

/** What the early unit loads: one transaction, so a table already there is replaced whole. */
export function renderBootFile(table: string, boot: string): string {
  return BOOT_HEADER + renderTransaction({ family: 'inet', table, ruleset: boot });
}

/** The boot table a file holds, normalised; `unreadable` when it is not one we wrote for `table`. */
export function parseBootFile(text: string, table: string): string {
  const head = BOOT_HEADER + `add table inet ${table}\ndelete table inet ${table}\n`;
  return text.startsWith(head)
    ? normaliseRuleset(text.slice(head.length))
    : 'unreadable (not written by awg for this table)\n';
}

/** The state directory's boot copy: the rendered file, or the table itself in an in-memory store (tests). */
const bootCopy = {
  read(state: StateStore, table: string): string | undefined {
    let text: string | undefined;
    try {
      text = stateFile.read(state, BOOT_RULESET_FILE);
    } catch (e) {
      return `unreadable (${(e as Error).message})\n`;
    }
    return text === undefined || state.dir === ':memory:' ? text : parseBootFile(text, table);
  },
  write(state: StateStore, table: string, boot: string): void {
    stateFile.write(
      state,
      BOOT_RULESET_FILE,
      state.dir === ':memory:' ? boot : renderBootFile(table, boot),
    );
  },
  remove(state: StateStore): void {
    stateFile.remove(state, BOOT_RULESET_FILE);
  },
};

export interface LinuxFirewallOptions {
  exec: Pick<Exec, 'read'>;
  /** the writer of the `w_…` sets' elements (default: netlink, native/nftset.ts) */
  setWriter?: (table: string) => Pick<NftSetWriter, 'replace' | 'close'>;
}

/** undefined when the table does not exist */
/**
 * The last listing of each table read on this host, with the nf_tables generation it was read
 * at: an observation at the same generation reuses it (a table with a 100,000-element set
 * takes nft about 0.4 s to list, on every daemon pass). Only for the real host's processes:
 * a test's exec has no kernel behind the generation.
 */
const listings = new Map<string, { gen: number; listing: TableListing | undefined }>();

/**
 * `nft list table inet <table>`. `reuse`: a listing read at the current nf_tables generation
 * may stand in (its counters are as old as it is: callers that carry counters read afresh).
 */
export async function readTable(
  exec: Pick<Exec, 'read'>,
  table: string,
  o: { reuse?: boolean } = {},
): Promise<TableListing | undefined> {
  const real = exec instanceof ProcessExec;
  const gen = real ? (await import('../../native/nftset.js')).nftGeneration() : undefined;
  if (o.reuse && gen !== undefined) {
    const had = listings.get(table);
    if (had?.gen === gen) return had.listing;
  }
  const [cmd, args] = nftTableRead(table);
  const r = await exec.read(cmd, [...args], { allowFail: true });
  if (r.code === 0) {
    // what the table holds now can be loaded again (a rollback to it): set-elements.ts
    keepListedElements(r.stdout);
    const listing = parseTableListing(r.stdout);
    // the generation was read first: a change in between makes the next one differ
    if (gen !== undefined) listings.set(table, { gen, listing });
    return listing;
  }
  if (gen !== undefined && /No such file or directory/.test(r.stderr))
    listings.set(table, { gen, listing: undefined });
  if (/No such file or directory/.test(r.stderr)) return undefined;
  const perm = /Operation not permitted|Permission denied/.test(r.stderr);
  throw new AwgError(
    perm ? 'permission' : 'driver',
    `nft list table inet ${table} failed: ${r.stderr.trim()}`,
  );
}

function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++)
    if (x[i] !== y[i])
      return `line ${i + 1}: wanted ${JSON.stringify(x[i] ?? '')}, got ${JSON.stringify(y[i] ?? '')}`;
  return 'no difference';
}

export function createLinuxFirewallDriver(opts: LinuxFirewallOptions): Driver<'firewall'> {
  return {
    kind: 'firewall',
    async observe(scope: ObserveScope): Promise<ObserveResult<'firewall'>> {
      const table = scope.claims.nftTable;
      const resources: Resource<'firewall'>[] = [];
      const foreign: ForeignObject[] = [];
      // both reads at once: `list table` is the slow one (nft names every cgroupv2 match by
      // walking /sys/fs/cgroup), and it is on the critical path of every observation
      const [t, tables] = await Promise.all([
        readTable(opts.exec, table, { reuse: true }),
        opts.exec.read(NFT_TABLES_READ[0], [...NFT_TABLES_READ[1]]),
      ]);
      if (t?.marked) {
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
      const names = parseTableNames(tables.stdout);
      for (const [family, name] of names) {
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
      const cur = await readTable(ctx.exec, spec.table);
      if (cur && !cur.marked)
        throw new AwgError(
          'conflict',
          `nft table inet ${spec.table} exists without our marker; not touching it`,
          { hint: `remove it or set routing.nftTable to another name` },
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
            if (ctx.exec.record(`rm ${path} (the kill switch at boot)`)) bootCopy.remove(ctx.state);
          } else if (
            ctx.exec.record(
              `write ${path} (the kill switch at boot, ${boot.split('\n').length - 1} lines, mode 0600)`,
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
        return 'changed';
      }
      const after = change.after as FirewallSpec;
      const want = normaliseRuleset(after.ruleset);
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
      await ctx.exec.mutate('nft', ['-f', '-'], {
        // unchanged rules keep their counters across the replace (counters.ts)
        input: renderTransaction({ ...after, ruleset: cur ? carryCounters(cur.text, want) : want }),
        display: `nft -f - (replace table inet ${after.table}, ${want.split('\n').length} lines)`,
      });
      if (ctx.exec.dryRun) return 'changed';
      const back = await readTable(ctx.exec, after.table);
      if (back?.ruleset !== want)
        throw new AwgError(
          'verification',
          `nft table inet ${after.table} reads back differently: ${firstDifference(want, back?.ruleset ?? '')}`,
        );
      await fillSets();
      syncBoot(after.boot);
      return 'changed';
    },
  };
}
