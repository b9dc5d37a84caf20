/**
 * What the monitor needs to know of the config to say where a flow goes: the rule of a
 * socket's cgroup (`<cgroupRoot>/<rule>`, `_exec-<target>`; cgroups.ts), the route that rule
 * gives now (model/match.ts, as `awg processes` judges it: placer.ts describeProcess), and the
 * tunnel a conntrack mark names (model/alloc.ts: `slot << shift` inside routing.fwmarkMask).
 * Pure.
 */
import type { Config } from '../../config/schema.js';
import { allocate } from '../../model/alloc.js';
import {
  compileRules,
  defaultRoute,
  effectiveRoute,
  ruleName,
  type Route,
  type RuleMatcher,
  type TunnelUp,
} from '../../model/match.js';
import { classifyCgroup } from '../cgroups.js';
import type { TopLimit } from './document.js';

export interface TopContext {
  /** the cgroup subtree awg owns, relative to the cgroup2 mount (claims.cgroupRoot) */
  cgroupRoot: string;
  matcher: RuleMatcher;
  /** config.default: `direct` or a tunnel */
  defaultRoute: string;
  tunnelUp: TunnelUp;
  /** the claimed mark bits */
  mask: number;
  /** a tunnel's mark (inside `mask`) → its name */
  tunnelByMark: ReadonlyMap<number, string>;
  /** the config's tunnels, in its order */
  tunnels: readonly string[];
  /** the runtime limit of a process (`awg limit`), if any */
  limitOf?(pid: number): TopLimit | undefined;
}

export interface TopContextOptions {
  cgroupRoot: string;
  tunnelUp: TunnelUp;
  limitOf?: ((pid: number) => TopLimit | undefined) | undefined;
}

/** The context of `config`; without one (awg not applied) nothing is routed: all direct. */
export function topContext(config: Config | undefined, o: TopContextOptions): TopContext {
  const alloc = config ? allocate(config) : undefined;
  return {
    cgroupRoot: o.cgroupRoot,
    matcher: compileRules(config?.rules ?? []),
    defaultRoute: config?.default ?? 'direct',
    tunnelUp: o.tunnelUp,
    mask: alloc?.mask ?? 0,
    tunnelByMark: new Map([...(alloc?.tunnels ?? [])].map(([name, ids]) => [ids.fwmark, name])),
    tunnels: Object.keys(config?.tunnels ?? {}),
    ...(o.limitOf ? { limitOf: o.limitOf } : {}),
  };
}

export interface Group {
  /** the rule of the cgroup (`exec:<target>` for awg exec's groups); absent: none of ours */
  rule?: string;
  /** the rule's target in the config, when it has the rule */
  target?: string;
  /** the route the group's new connections take now */
  route: Route;
}

/**
 * The group of a cgroup path (relative to the cgroup2 mount, with or without a leading `/`;
 * nested cgroups count as their top below the root). `exe`: the process's executable, for the
 * failover chain of its rule (as describeProcess walks it).
 */
export function groupOf(ctx: TopContext, cgroup: string | undefined, exe?: string): Group {
  const where = classifyCgroup(
    ctx.cgroupRoot,
    cgroup === undefined ? undefined : cgroup.replace(/^\/+/, ''),
  );
  if (where.kind === 'exec') {
    const t = where.target;
    return {
      rule: `exec:${t}`,
      target: t,
      route: t === 'direct' ? 'direct' : ctx.tunnelUp(t) ? t : 'blocked',
    };
  }
  if (where.kind === 'rule') {
    const r = ctx.matcher.byName(where.name);
    if (!r) return { rule: where.name, route: defaultRoute(ctx.defaultRoute, ctx.tunnelUp) };
    const chain = exe !== undefined ? ctx.matcher.failoverChain(exe) : [];
    const i = chain.findIndex((c) => c.name === r.name);
    return {
      rule: r.name,
      target: r.target,
      route: effectiveRoute(i >= 0 ? chain.slice(i) : [r], ctx.tunnelUp),
    };
  }
  return { route: defaultRoute(ctx.defaultRoute, ctx.tunnelUp) };
}

/**
 * The route of one flow. A rule's group decides for its sockets' packets (the firewall's app
 * rules come first): dropped, direct, or its tunnel, unless the conntrack mark names no tunnel
 * (IPv6 a rule leaves direct). Outside the rules the conntrack mark decides (the firewall
 * saves the mark it routed by into the connection: the default tunnel, a connection that came
 * in through a tunnel): the tunnel it names, else direct. Without a mark (no conntrack entry),
 * the group's route.
 */
export function flowRoute(ctx: TopContext, mark: number | undefined, group: Group): Route {
  const byMark =
    mark === undefined ? undefined : (ctx.tunnelByMark.get((mark & ctx.mask) >>> 0) ?? 'direct');
  if (group.rule !== undefined) {
    if (group.route === 'blocked' || group.route === 'direct') return group.route;
    return byMark === 'direct' ? 'direct' : group.route;
  }
  return byMark ?? group.route;
}

/** the config's enabled rules in order, with their route now (what stays in the cgroup) */
export function ruleRows(ctx: TopContext): { name: string; target: string; route: Route }[] {
  return ctx.matcher.rules.flatMap((rule, index) => {
    if (rule.enabled === false) return [];
    const r = ctx.matcher.byName(ruleName(rule, index));
    return r ? [{ name: r.name, target: r.target, route: effectiveRoute([r], ctx.tunnelUp) }] : [];
  });
}
