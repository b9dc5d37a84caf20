/**
 * Linux nftables driver. Owns exactly one table, `inet <claims.nftTable>`, marked with the
 * comment `managed-by=awg`. Loads are one `nft -f -` transaction (render.ts) and are read back;
 * a table with our name but without the marker is a conflict and is never touched; other
 * tables are never read for writing.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { FirewallSpec, ForeignObject, Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import type { Driver, ObserveResult, ObserveScope } from '../driver.js';
import { parseTableListing, parseTableNames, type TableListing } from './parse.js';
import { normaliseRuleset, renderTransaction } from './render.js';
import { carryCounters } from './counters.js';
import { NFT_TABLES_READ, nftTableRead } from '../reads.js';

export interface LinuxFirewallOptions {
  exec: Pick<Exec, 'read'>;
}

/** undefined when the table does not exist */
export async function readTable(
  exec: Pick<Exec, 'read'>,
  table: string,
): Promise<TableListing | undefined> {
  const [cmd, args] = nftTableRead(table);
  const r = await exec.read(cmd, [...args], { allowFail: true });
  if (r.code === 0) return parseTableListing(r.stdout);
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
        readTable(opts.exec, table),
        opts.exec.read(NFT_TABLES_READ[0], [...NFT_TABLES_READ[1]]),
      ]);
      if (t?.marked)
        resources.push({
          kind: 'firewall',
          id: ids.firewall(table),
          spec: { family: 'inet', table, ruleset: t.ruleset },
          deps: [],
        });
      else if (t)
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
      if (change.action === 'delete') {
        if (!cur) return 'unchanged';
        await ctx.exec.mutate('nft', ['delete', 'table', 'inet', spec.table]);
        return 'changed';
      }
      const after = change.after as FirewallSpec;
      const want = normaliseRuleset(after.ruleset);
      if (cur?.ruleset === want) return 'unchanged';
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
      return 'changed';
    },
  };
}
