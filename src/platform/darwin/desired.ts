/**
 * Linux-shaped desired state (model/desired.ts) → what the macOS drivers can realise. Pure.
 *
 * macOS has one routing table, no fwmark/ip rules, no cgroups, and PF instead of nft:
 * - routes: only the default tunnel carries traffic (per-app rules need the flow router,
 *   not built). Its prefixes go to the main table on its link, with `0.0.0.0/0` split into
 *   `0/1` + `128/1` (`::/0` into `::/1` + `8000::/1`) so the system default stays and the
 *   more specific pair wins; each of its endpoints gets a host route via the physical
 *   gateway (`facts.defaultRouteV4/V6` from the route driver) so encrypted packets do not
 *   loop into the tunnel. Unreachable twins and `throw` routes have no macOS equivalent
 *   (no metrics, no tables): when the utun vanishes its routes vanish with it, and only the
 *   PF kill switch keeps traffic from leaking.
 * - rule, cgroup, sysctl resources are dropped (with a warning for per-app rules).
 * - the firewall spec is re-rendered as a PF anchor from the same FirewallPolicy.
 */
import { ids } from '../../model/identity.js';
import type { AnyResource, DesiredState, Resource, RouteSpec } from '../../model/resources.js';
import type { FirewallPolicy } from '../../resources/firewall/policy.js';
import { pfPolicyFromFirewallPolicy, renderPfAnchor } from './pf-render.js';

/** macOS has only the main table; routes carry Linux's number for it so ids read naturally. */
export const DARWIN_MAIN_TABLE = 254;

export interface DarwinFacts {
  defaultRouteV4?: { gateway: string; interface: string };
  defaultRouteV6?: { gateway: string; interface: string };
}

const SPLIT: Record<string, string[]> = {
  '0.0.0.0/0': ['0.0.0.0/1', '128.0.0.0/1'],
  '::/0': ['::/1', '8000::/1'],
};

export function toDarwinDesired(
  d: DesiredState & { policy: FirewallPolicy },
  facts: DarwinFacts,
): DesiredState {
  const warnings = [...d.warnings];
  const out: AnyResource[] = [];
  const seen = new Set<string>();
  const push = (r: AnyResource) => {
    if (seen.has(r.id)) return;
    seen.add(r.id);
    out.push(r);
  };
  const policy = d.policy;
  const def = policy.defaultRoute
    ? policy.tunnels.find((t) => t.mark === policy.defaultRoute!.mark)
    : undefined;
  if (def && !def.link)
    warnings.push(
      `tunnel ${def.name}: proxy tunnels as the default route need the macOS flow router, which is not built yet`,
    );
  if (d.resources.some((r) => r.kind === 'cgroup' || r.kind === 'rule') && policy.apps.length)
    warnings.push(
      'per-app rules are not applied on macOS yet (they need the userspace flow router)',
    );

  const routes: RouteSpec[] = [];
  let protocol = 0;
  for (const r of d.resources) {
    if (r.kind === 'rule' || r.kind === 'cgroup' || r.kind === 'sysctl') continue;
    if (r.kind === 'route') {
      protocol = r.spec.protocol;
      routes.push(r.spec);
      continue;
    }
    if (r.kind === 'firewall') {
      push({
        ...r,
        deps: r.deps.filter((x) => !x.startsWith('cgroup/')),
        spec: { ...r.spec, ruleset: renderPfAnchor(pfPolicyFromFirewallPolicy(policy)) },
      });
      continue;
    }
    push(r);
  }

  if (def?.link) {
    const linkId = ids.link(def.link);
    let coversDefault = false;
    for (const r of routes) {
      if (r.type !== 'unicast' || r.dev !== def.link) continue;
      for (const dst of SPLIT[r.dst] ?? [r.dst]) {
        const spec: RouteSpec = {
          family: r.family,
          table: DARWIN_MAIN_TABLE,
          dst,
          type: 'unicast',
          dev: def.link,
          metric: 0,
          protocol: r.protocol,
        };
        push({ kind: 'route', id: ids.route(spec), deps: [linkId], spec } as Resource<'route'>);
      }
      if (SPLIT[r.dst]) coversDefault = true;
    }
    if (coversDefault) {
      for (const e of def.endpoints) {
        const v6 = e.address.includes(':');
        const gw = v6 ? facts.defaultRouteV6 : facts.defaultRouteV4;
        if (!gw) {
          warnings.push(
            `endpoint ${e.address} of ${def.name}: no IPv${v6 ? 6 : 4} default gateway known, so no bypass route; it would loop into the tunnel`,
          );
          continue;
        }
        const spec: RouteSpec = {
          family: v6 ? 6 : 4,
          table: DARWIN_MAIN_TABLE,
          dst: v6 ? `${e.address}/128` : `${e.address}/32`,
          type: 'unicast',
          via: gw.gateway,
          dev: gw.interface,
          metric: 0,
          protocol,
        };
        push({ kind: 'route', id: ids.route(spec), deps: [], spec } as Resource<'route'>);
      }
    }
  }
  return { resources: out, warnings };
}
