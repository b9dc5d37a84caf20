/**
 * Linux route driver (iproute2). Owns routes in the claimed table band that carry our
 * protocol number; see parse.ts for ownership and render.ts for the commands.
 *
 * v6 note: the kernel stores metric 0 as 1024 for IPv6, so desired v6 routes should use a
 * non-zero metric or they never compare equal.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { ForeignObject, Resource, RouteSpec } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Exec } from '../../util/exec.js';
import type {
  ApplyContext,
  ApplyResult,
  Claims,
  Driver,
  ObserveResult,
  ObserveScope,
} from '../driver.js';
import { specEqual } from '../../util/canonical.js';
import { readFamily, routeRead } from '../reads.js';
import { parseRouteJson, parseRouteRows, type ParsedRoutes, type RouteBand } from './parse.js';
import { batchScript, familyFlag, routeDelArgs, routeReplaceArgs } from './render.js';

export interface LinuxRouteOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
}

export interface RouteDriver extends Driver<'route'> {
  /** one `ip -batch -` per family; results in input order */
  applyBatch(changes: Change<'route'>[], ctx: ApplyContext): Promise<ApplyResult[]>;
}

function bandOf(c: Claims): RouteBand {
  return { protocol: c.routeProtocol, tableBase: c.tableBase, bandSize: c.bandSize };
}

function index(p: ParsedRoutes): {
  owned: Map<string, RouteSpec>;
  conflicts: Map<string, RouteSpec>;
} {
  return {
    owned: new Map(p.owned.map((r) => [ids.route(r), r])),
    conflicts: new Map(p.conflicts.map((r) => [ids.route(r), r])),
  };
}

function checkBand(r: RouteSpec, c: Claims): void {
  if (
    r.protocol !== c.routeProtocol ||
    r.table < c.tableBase ||
    r.table >= c.tableBase + c.bandSize
  ) {
    throw new AwgError(
      'bug',
      `route ${ids.route(r)} is outside the claimed band or lacks protocol ${c.routeProtocol}`,
    );
  }
}

type Step = { args: string[]; family: 4 | 6 };

/** Commands needed to bring one change about, given the current state; empty = unchanged. */
function stepsFor(
  change: Change<'route'>,
  cur: Map<4 | 6, ReturnType<typeof index>>,
  claims: Claims,
): Step[] {
  const steps: Step[] = [];
  const del = (r: RouteSpec) => {
    const st = cur.get(r.family)!;
    const id = ids.route(r);
    const have = st.owned.get(id);
    if (!have) return;
    steps.push({ family: r.family, args: routeDelArgs(have) });
    st.owned.delete(id);
  };
  if (change.action === 'noop') return steps;
  if (change.action === 'delete') {
    if (!change.before) throw new AwgError('bug', `delete ${change.id} without before`);
    del(change.before);
    return steps;
  }
  const after = change.after;
  if (!after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
  checkBand(after, claims);
  if (change.action === 'replace' && change.before && ids.route(change.before) !== ids.route(after))
    del(change.before);
  const st = cur.get(after.family)!;
  const id = ids.route(after);
  const foreign = st.conflicts.get(id);
  if (foreign)
    throw new AwgError(
      'conflict',
      `a route ${id} without our protocol ${claims.routeProtocol} (protocol ${foreign.protocol}) is in our table; not touching it`,
    );
  if (specEqual(st.owned.get(id), after)) return steps;
  steps.push({ family: after.family, args: routeReplaceArgs(after) });
  st.owned.set(id, after);
  return steps;
}

/**
 * A family's routes in the band: over netlink in this process when `exec` runs on this host
 * (route/probe-netlink.ts: the rows `ip -j -N route show table all` prints), else by `ip`.
 */
async function readRoutes(
  exec: Pick<Exec, 'read'>,
  families: readonly (4 | 6)[],
  band: RouteBand,
): Promise<ParsedRoutes[]> {
  const { routingReader } = await import('./probe-netlink.js');
  const reader = routingReader(exec);
  if (!reader)
    return Promise.all(families.map((f) => readFamily(exec, routeRead, parseRouteJson, f, band)));
  try {
    const inBand = (t: number) => t >= band.tableBase && t < band.tableBase + band.bandSize;
    return families.map((f) => parseRouteRows(reader.tableRoutesJson(f, inBand), f, band));
  } finally {
    reader.close();
  }
}

export function createLinuxRouteDriver(opts: LinuxRouteOptions): RouteDriver {
  async function current(exec: Pick<Exec, 'read'>, claims: Claims, families: Iterable<4 | 6>) {
    const m = new Map<4 | 6, ReturnType<typeof index>>();
    const fs = [...new Set(families)];
    const parsed = await readRoutes(exec, fs, bandOf(claims));
    fs.forEach((f, i) => m.set(f, index(parsed[i]!)));
    return m;
  }
  const familiesOf = (cs: Change<'route'>[]) =>
    cs.flatMap((c) =>
      [c.before?.family, c.after?.family].filter((f): f is 4 | 6 => f !== undefined),
    );

  return {
    kind: 'route',
    async observe(scope: ObserveScope): Promise<ObserveResult<'route'>> {
      const resources: Resource<'route'>[] = [];
      const foreign: ForeignObject[] = [];
      const parsed = await readRoutes(opts.exec, [4, 6], bandOf(scope.claims));
      for (const p of parsed) {
        for (const r of p.owned)
          resources.push({ kind: 'route', id: ids.route(r), spec: r, deps: [] });
        for (const r of p.conflicts) {
          foreign.push({
            kind: 'route',
            id: ids.route(r),
            relation: 'conflict',
            description: `route ${r.type} ${r.dst} in table ${r.table} (claimed band) has protocol ${r.protocol}, not ours (${scope.claims.routeProtocol})`,
          });
        }
      }
      return { resources, foreign };
    },
    async apply(change, ctx) {
      const cur = await current(ctx.exec, ctx.claims, familiesOf([change]));
      const steps = stepsFor(change, cur, ctx.claims);
      for (const s of steps) await ctx.exec.mutate('ip', [familyFlag(s.family), ...s.args]);
      return steps.length ? 'changed' : 'unchanged';
    },
    async applyBatch(changes, ctx) {
      const cur = await current(ctx.exec, ctx.claims, familiesOf(changes));
      const byFamily = new Map<4 | 6, string[][]>();
      const results: ApplyResult[] = changes.map((c) => {
        const steps = stepsFor(c, cur, ctx.claims);
        for (const s of steps) {
          const l = byFamily.get(s.family) ?? [];
          l.push(s.args);
          byFamily.set(s.family, l);
        }
        return steps.length ? 'changed' : 'unchanged';
      });
      for (const [family, lines] of byFamily) {
        await ctx.exec.mutate('ip', [familyFlag(family), '-batch', '-'], {
          input: batchScript(lines),
          display: `ip ${familyFlag(family)} -batch - (${lines.length} route commands)`,
        });
      }
      return results;
    },
  };
}
