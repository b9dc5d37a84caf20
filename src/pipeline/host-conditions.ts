/**
 * What this host's routing keeps from working for the tunnels last applied (direct-mode
 * `awg status`; the daemon reads the facts of its last run instead): the routing probed now
 * (Platform.probeRouting) against the applied record. The endpoints are its engines' (a host
 * name by its last good answer in the state directory, never a lookup); IPv6 is tunnelled when
 * the record has IPv6 rules; a family has awg's first route when the record has its route
 * on the first route's link (model/unrouted.ts).
 */
import { isProxyEngine, type AnyResource, type EngineSpec } from '../model/resources.js';
import { hostConditions, UNROUTED_LINK, type HostCondition } from '../model/unrouted.js';
import { endpointResolverFor } from '../resources/endpoints.js';
import { endpointHost, endpointTargets, routingFamilies } from '../resources/facts.js';
import type { Platform } from '../resources/registry.js';
import type { HostEnv } from './host.js';

export async function appliedHostConditions(
  platform: Platform,
  env: Pick<HostEnv, 'exec' | 'state' | 'claims'>,
  resources: readonly AnyResource[],
): Promise<HostCondition[]> {
  const engines = resources.flatMap((r) => (r.kind === 'engine' ? [r.spec] : []));
  if (!platform.probeRouting || !engines.length) return [];
  const resolver = endpointResolverFor(env.state, false);
  const hostsOf = (e: EngineSpec): (string | undefined)[] =>
    isProxyEngine(e)
      ? [e.config.server]
      : e.config.peers.map((p) => (p.endpoint !== null ? endpointHost(p.endpoint) : undefined));
  const endpoints = endpointTargets(
    engines.flatMap((e) =>
      hostsOf(e).flatMap((host) => (host ? [{ tunnel: e.tunnel, host }] : [])),
    ),
    (h) => resolver.lastGood(h),
  );
  const rules6 = resources.some((r) => r.kind === 'rule' && r.spec.family === 6);
  const facts = await platform.probeRouting(env.exec, {
    families: routingFamilies(rules6, endpoints),
    band: {
      tableBase: env.claims.tableBase,
      rulePriority: env.claims.rulePriority,
      bandSize: env.claims.bandSize,
    },
    bypassMark: engines[0]!.config.fwmark,
    endpoints,
  });
  const firstRoute = resources.flatMap((r) =>
    r.kind === 'route' && r.spec.dev === UNROUTED_LINK ? [r.spec.family] : [],
  );
  return hostConditions(facts, rules6 ? [4, 6] : [4], firstRoute);
}
