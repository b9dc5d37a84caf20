/**
 * macOS route driver (route(8), netstat -rn).
 *
 * macOS has one routing table and no route protocol/marker, so ownership lives in the
 * StateStore (`darwin-routes`): a route is ours iff we recorded it and the kernel has a
 * route with the same destination and next hop. The record is written before `route add`
 * (a crash in between leaves a record, never an unowned route) and removed on failure.
 * RouteSpec.table, metric and protocol have no macOS equivalent: they are kept in the
 * record and echoed back so ids stay stable, and do not reach the kernel. `dev` may be a
 * logical link name (`awg-work`), resolved to its utun through the utun registry.
 * A route with the same destination that we did not record is a conflict (another VPN's
 * 0/1, say); we never change or delete it.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { ForeignObject, Resource, RouteSpec } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import { specEqual } from '../../util/canonical.js';
import ipaddr from '../../util/ipaddr.js';
import type { Exec } from '../../util/exec.js';
import { APPLIED_STATE_KEY, type StateStore } from '../../util/state.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from '../driver.js';
import {
  parseNetstatRoutes,
  primaryDefault,
  type NetstatRoute,
} from '../../platform/darwin/netstat.js';
import {
  parseRouteResult,
  routeAddArgs,
  routeChangeArgs,
  routeDeleteArgs,
  type DarwinRoute,
} from '../../platform/darwin/route.js';
import { resolveIfname } from '../../platform/darwin/utun.js';
import { privilegeKind } from '../../platform/darwin/privilege.js';

export const ROUTE_STATE_KEY = 'darwin-routes';
type RouteRecord = Record<string, RouteSpec>;

export interface DarwinRouteOptions {
  /** used for observe; apply reads and mutates through ctx.exec */
  exec: Pick<Exec, 'read'>;
}

/**
 * Our routes: the record; when there is none (it was unusable: the state store moved it aside
 * and reported it), the routes the last apply's record lists. That record is written only
 * after an apply converged, and an apply never adopts a route it did not record (a prefix
 * already routed is a conflict), so awg created each of them. The same rule then holds as
 * for the record: ours only where the kernel has exactly that route. Without this, a torn
 * record left the endpoint bypass route behind at `down`, and the next apply refused it as
 * a conflict until it was deleted by hand.
 */
function records(s: StateStore): RouteRecord {
  const r = s.get<RouteRecord>(ROUTE_STATE_KEY);
  if (r !== undefined) return r;
  // the record of pipeline/applied.ts (a layer above: only its key and resource list are read)
  const applied = s.get<{ resources?: unknown }>(APPLIED_STATE_KEY);
  const out: RouteRecord = {};
  if (!applied || !Array.isArray(applied.resources)) return out;
  for (const x of applied.resources as { kind?: unknown; id?: unknown; spec?: unknown }[]) {
    if (
      x?.kind !== 'route' ||
      typeof x.id !== 'string' ||
      typeof x.spec !== 'object' ||
      x.spec === null
    )
      continue;
    const spec = x.spec as RouteSpec;
    if (
      typeof spec.dst === 'string' &&
      (spec.family === 4 || spec.family === 6) &&
      ids.route(spec) === x.id
    )
      out[x.id] = spec;
  }
  return out;
}

async function readRoutes(exec: Pick<Exec, 'read'>): Promise<NetstatRoute[]> {
  return parseNetstatRoutes((await exec.read('netstat', ['-rn'])).stdout);
}

/** RouteSpec → kernel route; undefined when its link has no utun yet. */
export function toDarwinRoute(r: RouteSpec, state: StateStore): DarwinRoute | undefined {
  const base = { family: r.family, dst: r.dst };
  if (r.type === 'blackhole') return { ...base, blackhole: true };
  if (r.type === 'unreachable') return { ...base, reject: true };
  if (r.type !== 'unicast')
    throw new AwgError('unsupported', `route type ${r.type} (${r.dst}) does not exist on macOS`);
  if (r.via) return { ...base, gateway: r.via };
  if (!r.dev) throw new AwgError('bug', `route ${r.dst} has neither via nor dev`);
  const ifn = resolveIfname(state, r.dev);
  if (!ifn) return undefined;
  if (!r.ifscope) return { ...base, interface: ifn };
  const scope = resolveIfname(state, r.ifscope);
  return scope ? { ...base, interface: ifn, ifscope: scope } : undefined;
}

function sameGateway(k: NetstatRoute, via: string): boolean {
  if (k.gateway.kind !== 'ip') return false;
  const g = k.gateway.zone ? `${k.gateway.address}%${k.gateway.zone}` : k.gateway.address;
  return g === via || k.gateway.address === via;
}

/** Does kernel route `k` implement `d`? A scoped (I) route only a scoped `d` on its interface. */
export function kernelMatches(k: NetstatRoute, d: DarwinRoute, dev?: string): boolean {
  if (k.family !== d.family || k.dst !== d.dst || k.ifscope !== !!d.ifscope) return false;
  if (d.ifscope && k.netif !== d.ifscope) return false;
  if (d.blackhole) return k.blackhole;
  if (d.reject) return k.reject;
  if (d.gateway) return k.viaGateway && sameGateway(k, d.gateway) && (!dev || k.netif === dev);
  return !k.viaGateway && k.netif === d.interface;
}

/**
 * Same prefix in the same scope (unscoped, or scoped to interface `scope`), and not a
 * link-layer (ARP/ND cache, flag L) entry.
 */
const sameDst = (k: NetstatRoute, r: { family: 4 | 6; dst: string }, scope?: string) =>
  k.family === r.family &&
  k.dst === r.dst &&
  (scope ? k.ifscope && k.netif === scope : !k.ifscope) &&
  !k.flags.includes('L');
/** the utun a scoped spec is scoped to (undefined: unscoped, or its link has no utun yet) */
const scopeOf = (r: RouteSpec, state: StateStore) =>
  r.ifscope ? resolveIfname(state, r.ifscope) : undefined;
const describe = (k: NetstatRoute) =>
  `${k.destination} via ${k.gateway.kind === 'ip' ? k.gateway.address : k.gateway.kind === 'interface' ? k.gateway.name : k.gateway.kind === 'link' ? `link#${k.gateway.index}` : '?'} on ${k.netif} (${k.flags})`;

function physicalDev(r: RouteSpec, state: StateStore): string | undefined {
  return r.via && r.dev ? resolveIfname(state, r.dev) : undefined;
}

async function runRoute(
  ctx: ApplyContext,
  args: string[],
): Promise<ReturnType<typeof parseRouteResult> | undefined> {
  const res = await ctx.exec.mutate('route', args, { allowFail: true });
  if (ctx.dryRun) return undefined;
  return parseRouteResult(res.stdout, res.stderr);
}

/** the physical default routes (`defaultRouteV4`/`V6`), as HostFacts and the observation's facts carry them */
function defaultRoutes(kernel: NetstatRoute[]): {
  defaultRouteV4?: Gateway;
  defaultRouteV6?: Gateway;
} {
  const facts: { defaultRouteV4?: Gateway; defaultRouteV6?: Gateway } = {};
  for (const f of [4, 6] as const) {
    const d = primaryDefault(kernel, f);
    if (!d || d.gateway.kind !== 'ip') continue;
    // the interface's connected prefixes: its unscoped link routes (`192.168.1  link#11  UCS  en0`),
    // not host-length (the gateway's own `192.168.1.1/32  link#11  UCS`) or link-layer entries,
    // nor link-local or multicast (`224.0.0/4  link#11  UmCS`)
    const onLink = kernel
      .filter(
        (k) =>
          k.family === f &&
          k.netif === d.netif &&
          !k.viaGateway &&
          !k.ifscope &&
          !k.host &&
          !k.isDefault &&
          k.gateway.kind === 'link' &&
          !/[LH]/.test(k.flags),
      )
      .flatMap((k) =>
        k.dst && Number(k.dst.split('/')[1]) < (f === 4 ? 32 : 128) && unicastRange(k.dst)
          ? [k.dst]
          : [],
      );
    facts[`defaultRouteV${f}`] = {
      gateway: d.gateway.zone ? `${d.gateway.address}%${d.gateway.zone}` : d.gateway.address,
      interface: d.netif,
      ...(onLink.length ? { onLink: [...new Set(onLink)].sort() } : {}),
    };
  }
  return facts;
}

/** a prefix of ordinary unicast addresses (not link-local, multicast, loopback) */
function unicastRange(cidr: string): boolean {
  const net = cidr.split('/')[0]!;
  return (
    ipaddr.isValid(net) &&
    !['linkLocal', 'multicast', 'loopback'].includes(ipaddr.parse(net).range())
  );
}

interface Gateway {
  gateway: string;
  interface: string;
  onLink?: string[];
}

/** The physical default routes now: where the tunnels' endpoint bypass routes point (HostFacts). */
export async function darwinDefaultRoutes(
  exec: Pick<Exec, 'read'>,
): Promise<{ defaultRouteV4?: Gateway; defaultRouteV6?: Gateway }> {
  return defaultRoutes(await readRoutes(exec));
}

export function createDarwinRouteDriver(opts: DarwinRouteOptions): Driver<'route'> {
  return {
    kind: 'route',
    async observe(scope: ObserveScope): Promise<ObserveResult<'route'>> {
      const kernel = await readRoutes(opts.exec);
      const rec = records(scope.state);
      const resources: Resource<'route'>[] = [];
      const foreign: ForeignObject[] = [];
      for (const [id, spec] of Object.entries(rec)) {
        const d = toDarwinRoute(spec, scope.state);
        if (d && kernel.some((k) => kernelMatches(k, d, physicalDev(spec, scope.state))))
          resources.push({ kind: 'route', id, spec, deps: [] });
      }
      for (const r of scope.desired.resources) {
        if (r.kind !== 'route') continue;
        const spec = r.spec as RouteSpec;
        const id = ids.route(spec);
        if (rec[id]) continue;
        const ifscope = scopeOf(spec, scope.state);
        if (spec.ifscope && !ifscope) continue; // no utun yet: nothing can be scoped to it
        const k = kernel.find((x) => sameDst(x, spec, ifscope));
        if (k)
          foreign.push({
            kind: 'route',
            id,
            relation: 'conflict',
            description: `a route ${describe(k)} that awg did not create already covers ${spec.dst}`,
          });
      }
      return { resources, foreign, facts: defaultRoutes(kernel) };
    },

    async apply(change: Change<'route'>, ctx: ApplyContext): Promise<ApplyResult> {
      if (change.action === 'noop') return 'unchanged';
      const kernel = await readRoutes(ctx.exec);
      const rec = records(ctx.state);
      let changed = false;

      const remove = async (spec: RouteSpec): Promise<void> => {
        const id = ids.route(spec);
        const d = toDarwinRoute(spec, ctx.state);
        const present = d && kernel.some((k) => kernelMatches(k, d, physicalDev(spec, ctx.state)));
        if (d && present && rec[id]) {
          const out = await runRoute(ctx, routeDeleteArgs(d));
          changed = true;
          if (out && !out.ok && out.errno !== 'ESRCH')
            throw new AwgError(privilegeKind(out.error), `route delete ${spec.dst}: ${out.error}`);
        }
        if (!ctx.dryRun && rec[id]) {
          delete rec[id];
          ctx.state.set(ROUTE_STATE_KEY, rec);
        }
      };

      if (change.action === 'delete') {
        if (!change.before) throw new AwgError('bug', `delete ${change.id} without before`);
        await remove(change.before);
        return changed ? 'changed' : 'unchanged';
      }
      const after = change.after;
      if (!after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
      const id = ids.route(after);
      if (change.before && ids.route(change.before) !== id) await remove(change.before);

      const d = toDarwinRoute(after, ctx.state);
      if (!d)
        throw new AwgError(
          'driver',
          `route ${after.dst}: link ${after.dev} has no utun yet (its engine creates it); will retry`,
        );
      const dev = physicalDev(after, ctx.state);
      if (kernel.some((k) => kernelMatches(k, d, dev))) {
        if (!rec[id] || !specEqual(rec[id], after)) {
          if (!rec[id] && !change.before)
            throw new AwgError(
              'conflict',
              `route ${after.dst} already exists and was not created by awg; not adopting it`,
            );
          if (!ctx.dryRun) ctx.state.set(ROUTE_STATE_KEY, { ...rec, [id]: after });
        }
        return changed ? 'changed' : 'unchanged';
      }
      const other = kernel.find((k) => sameDst(k, after, d.ifscope));
      // Only change a route that is exactly the one we recorded (a record can outlive its
      // route, e.g. across a reboot, while another program adds the same prefix).
      const prev = rec[id] ? toDarwinRoute(rec[id], ctx.state) : undefined;
      const ours =
        !!other && !!prev && kernelMatches(other, prev, physicalDev(rec[id]!, ctx.state));
      if (other && !ours)
        throw new AwgError(
          'conflict',
          `route ${describe(other)} that awg did not create covers ${after.dst}; not touching it`,
        );
      // Record first: a crash after `route add` must not leave a route we do not know we own.
      if (!ctx.dryRun) ctx.state.set(ROUTE_STATE_KEY, { ...rec, [id]: after });
      const out = await runRoute(ctx, other ? routeChangeArgs(d) : routeAddArgs(d));
      if (out && !out.ok) {
        delete rec[id];
        ctx.state.set(ROUTE_STATE_KEY, rec);
        if (out.errno === 'EEXIST')
          throw new AwgError(
            'conflict',
            `route ${after.dst} appeared concurrently (File exists); not adopting it`,
          );
        throw new AwgError(
          privilegeKind(out.error),
          `route ${other ? 'change' : 'add'} ${after.dst}: ${out.error}`,
        );
      }
      return 'changed';
    },
  };
}
