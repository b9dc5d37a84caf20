/**
 * The model → what macOS can realise (darwin.ts's platform realises with this, or with
 * darwin-flow.ts on top of it when given the config). Pure. macOS has one routing table, no
 * fwmark/ip rules, no cgroups, and PF instead of nft:
 * - routes: the default tunnel's prefixes go to the main table on its link (per-app rules go
 *   through the flow router the daemon hosts; darwin-flow.ts's PF anchor redirects the apps'
 *   TCP and UDP to it), with `0.0.0.0/0` split into `0/1` + `128/1`
 *   (`::/0` into `::/1` + `8000::/1`) so the system default stays and the more specific pair
 *   wins; each of its endpoints gets a host route via the physical gateway
 *   (`facts.defaultRouteV4/V6`, probed from the routing table) so encrypted packets do not
 *   loop into the tunnel. Unreachable twins and `throw` routes have no macOS equivalent (no
 *   metrics, no tables): when the utun vanishes its routes vanish with it, and only the PF
 *   kill switch keeps traffic from leaking. Every other WireGuard tunnel's prefixes are
 *   interface-scoped routes on its utun (macOS's per-interface tables): the router's dials
 *   bound to that utun (IP_BOUND_IF) find them, nothing unbound does.
 * - rule, cgroup, sysctl resources are dropped (without the config: with a warning for
 *   per-app rules).
 * - the firewall policy is rendered as the PF anchor `com.awg/awg`.
 * - limits: the model's shapers and ifb links become dummynet pipes (two shaper resources) and
 *   the anchor's dummynet rules (darwin-shaping.ts); the anchor depends on the pipes, so they
 *   exist before a rule sends packets into them.
 */
import ipaddr, { inSubnets } from '../../util/ipaddr.js';
import type { DesiredModel, HostFacts } from '../../model/desired.js';
import { ids } from '../../model/identity.js';
import type { AnyResource, DesiredState, Resource, RouteSpec } from '../../model/resources.js';
import {
  pfPolicyFromFirewallPolicy,
  renderPfAnchor,
  type PfPolicy,
} from '../../platform/darwin/pf-render.js';
import { realiseDarwinShaping, type DarwinShaping } from './darwin-shaping.js';

/** our PF anchor below `com.awg/` (the firewall resource's `table`) */
export const PF_ANCHOR = 'awg';

/** macOS has only the main table; routes carry Linux's number for it so ids read naturally. */
export const DARWIN_MAIN_TABLE = 254;

const SPLIT: Record<string, string[]> = {
  '0.0.0.0/0': ['0.0.0.0/1', '128.0.0.0/1'],
  '::/0': ['::/1', '8000::/1'],
};

function isLoopback(address: string): boolean {
  return ipaddr.isValid(address) && ipaddr.parse(address).range() === 'loopback';
}

/** the PF policy of the model: its firewall policy and, with limits, the dummynet rules */
export function darwinPfPolicy(
  policy: NonNullable<DesiredModel['policy']>,
  shaping: Pick<DarwinShaping, 'pf'>,
): PfPolicy {
  const pf = pfPolicyFromFirewallPolicy(policy);
  return shaping.pf ? { ...pf, shaping: shaping.pf } : pf;
}

export function realiseDarwin(d: DesiredModel, facts: HostFacts): DesiredState {
  const warnings = [...d.warnings];
  const shaping = realiseDarwinShaping(d);
  warnings.push(...shaping.warnings);
  const out: AnyResource[] = [];
  const seen = new Set<string>();
  const push = (r: AnyResource) => {
    if (seen.has(r.id)) return;
    seen.add(r.id);
    out.push(r);
  };
  const policy = d.policy;
  const def = policy?.defaultRoute
    ? policy.tunnels.find((t) => t.mark === policy.defaultRoute!.mark)
    : undefined;
  if (def && !def.link)
    warnings.push(
      `tunnel ${def.name}: proxy tunnels as the default route need the macOS flow router, which this realisation was not given (no config)`,
    );
  // `_exec-<tunnel>`/`_exec-direct` are in every policy (awg exec's cgroups), not the user's rules
  if (
    d.resources.some((r) => r.kind === 'cgroup' || r.kind === 'rule') &&
    policy?.apps.some((a) => !a.name.startsWith('_exec-'))
  )
    warnings.push(
      "per-app rules are not applied: the macOS flow router needs the config's rules, which this realisation was not given",
    );

  const routes: RouteSpec[] = [];
  let protocol = 0;
  for (const r of d.resources) {
    if (r.kind === 'rule' || r.kind === 'cgroup' || r.kind === 'sysctl') continue;
    // limits: dummynet pipes instead (darwin-shaping.ts); macOS has no ifb
    if (r.kind === 'shaper' || (r.kind === 'link' && r.spec.kind === 'ifb')) continue;
    if (r.kind === 'route') {
      protocol = r.spec.protocol;
      routes.push(r.spec);
      continue;
    }
    push(r);
  }

  // On macOS the engine creates the utun (it lives as long as the engine's socket), so the
  // order is the reverse of Linux's persistent TUN: engine first, then the link (MTU, up), its
  // addresses and routes; and the PF anchor after the engines, so its tunnel macros bind to
  // the utuns they got (loaded before, those rules stay disabled and the anchor needs a second
  // pass). One apply converges.
  const engineOfLink = new Map<string, string>();
  for (const r of out)
    if (r.kind === 'engine' && r.spec.link) engineOfLink.set(ids.link(r.spec.link), r.id);
  for (let i = 0; i < out.length; i++) {
    const r = out[i]!;
    if (r.kind === 'engine' && r.spec.link)
      out[i] = { ...r, deps: r.deps.filter((d) => d !== ids.link(r.spec.link!)) };
    else if (r.kind === 'link' && engineOfLink.has(r.id))
      out[i] = { ...r, deps: [...r.deps, engineOfLink.get(r.id)!] };
  }
  for (const r of shaping.resources) push(r);
  if (policy) {
    const pf = darwinPfPolicy(policy, shaping);
    const ruleset = renderPfAnchor(pf);
    // kill switch on: the same anchor is kept for boot (its tunnels unbound there: closed
    // before the first connect; platform/darwin/pf-boot.ts); the flow router's rules never
    // are, nor the dummynet rules (no pipe exists at boot)
    const { shaping: _s, ...bootPf } = pf;
    const spec = {
      family: 'inet' as const,
      table: PF_ANCHOR,
      ruleset,
      ...(pf.killSwitch ? { boot: pf.shaping ? renderPfAnchor(bootPf) : ruleset } : {}),
    };
    push({
      kind: 'firewall',
      id: ids.firewall(PF_ANCHOR),
      deps: [...engineOfLink.values(), ...shaping.resources.map((r) => r.id)],
      spec,
    });
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
    // Every WireGuard engine's packets would follow 0/1 into the default tunnel, the other
    // tunnels' too, until the daemon pins the engines' sockets to the physical interface
    // (IP_BOUND_IF, in the run after it probed the underlay; a failed pin is retried): the
    // endpoints' host routes via the gateway cover them before and meanwhile. A
    // loopback endpoint (a local relay) needs none: lo0's routes are more specific than 0/1,
    // and a host route via the gateway would collide with lo0's own. Nor does the gateway
    // itself (WireGuard on the router): macOS keeps a host route to the router on its link;
    // nor an endpoint on the connected LAN (facts' onLink).
    const wg = [def, ...policy!.tunnels.filter((t) => t !== def && t.link)];
    const bypassOf = new Map<string, string[]>();
    for (const t of coversDefault ? wg : []) {
      for (const e of t.endpoints) {
        if (isLoopback(e.address)) continue;
        const v6 = e.address.includes(':');
        const gw = v6 ? facts.defaultRouteV6 : facts.defaultRouteV4;
        if (!gw) {
          warnings.push(
            `endpoint ${e.address} of ${t.name}: no IPv${v6 ? 6 : 4} default gateway known, so no bypass route; it would loop into the tunnel`,
          );
          continue;
        }
        if (e.address === gw.gateway) continue;
        // on the connected LAN (a server at home): its link route, more specific than 0/1,
        // already takes it on-link; a host route via the gateway would send it to the router
        if (
          inSubnets(
            e.address,
            (gw.onLink ?? []).filter((p) => Number(p.split('/')[1]) > 1),
          )
        )
          continue;
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
        const id = ids.route(spec);
        push({ kind: 'route', id, deps: [], spec } as Resource<'route'>);
        (bypassOf.get(t.link!) ?? bypassOf.set(t.link!, []).get(t.link!)!).push(id);
      }
    }
    // make before break: an engine is told a new endpoint only after its bypass is in place,
    // and (plan.ts) the old endpoint's bypass goes only after the engine has moved off it
    for (let i = 0; i < out.length; i++) {
      const r = out[i]!;
      const extra = r.kind === 'engine' && r.spec.link ? bypassOf.get(r.spec.link) : undefined;
      if (extra) out[i] = { ...r, deps: [...r.deps, ...extra] };
    }
  }
  // Every other WireGuard tunnel's prefixes, scoped to its utun (`-ifscope`): only sockets
  // bound to that utun see them (the flow router's dials for rules targeting it), as only
  // marked traffic sees a tunnel's table on Linux; everything else keeps the system's routes.
  // A scoped default needs no 0/1 split: it never competes with the unscoped one.
  for (const t of policy?.tunnels ?? []) {
    if (!t.link || t === def) continue;
    for (const r of routes) {
      if (r.type !== 'unicast' || r.dev !== t.link) continue;
      const spec: RouteSpec = {
        family: r.family,
        table: r.table,
        dst: r.dst,
        type: 'unicast',
        dev: t.link,
        ifscope: t.link,
        metric: 0,
        protocol: r.protocol,
      };
      push({
        kind: 'route',
        id: ids.route(spec),
        deps: [ids.link(t.link)],
        spec,
      } as Resource<'route'>);
    }
  }
  return { resources: out, warnings };
}
