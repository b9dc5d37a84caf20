/**
 * The macOS platform: the realisation of the model (darwin-realise.ts, and darwin-flow.ts
 * with the flow router's PF rules when given the config), and (loaded on first use) the
 * drivers (darwin-drivers.ts: route, PF, ifconfig/utun, networksetup/scutil DNS, launchd;
 * verified against captured real outputs only — docs/platform-macos.md) and the facts.
 */
import { isWgLike, type Config } from '../../config/schema.js';
import type { HostFacts } from '../../model/desired.js';
import { ENGINE_IO, PER_APP, type Platform } from './platform.js';
import { flowRouterPort, isProxyDefault, realiseDarwinFlow } from './darwin-flow.js';
import { realiseDarwin } from './darwin-realise.js';

export { DARWIN_MAIN_TABLE, PF_ANCHOR, realiseDarwin } from './darwin-realise.js';

/**
 * macOS runs only our engine: there is no in-kernel WireGuard, and an external program
 * (wireguard-go) opens a utun of its own that awg's routes, PF anchor and flow router, which
 * follow the utun our engine opens, would not know.
 */
export function darwinEngineProblems(c: Config | undefined): Pick<HostFacts, 'engineProblems'> {
  const engines = Object.values(c?.tunnels ?? {}).flatMap((t) =>
    isWgLike(t) && t.engine !== undefined && t.engine !== 'embedded' ? [t.engine] : [],
  );
  if (!engines.length) return {};
  const external: Record<string, string> = {};
  for (const e of engines)
    if (e !== 'kernel')
      external[e.external] =
        'an external engine is not supported on macOS: it would open a utun of its own, which awg cannot follow; use engine: embedded';
  return {
    engineProblems: {
      ...(engines.includes('kernel')
        ? {
            kernel:
              'kernel is not supported on macOS (it has no in-kernel WireGuard); use engine: embedded',
          }
        : {}),
      ...(Object.keys(external).length ? { external } : {}),
    },
  };
}

export const darwinPlatform: Platform = {
  os: 'darwin',
  drivers: async ({ exec }) => (await import('./darwin-drivers.js')).createDarwinDrivers({ exec }),
  async probeFacts(c, { exec, state, persistEndpoints }) {
    const [{ resolveEndpoints }, { darwinDefaultRoutes }, { localAddresses }] = await Promise.all([
      import('../facts.js'),
      import('../route/darwin.js'),
      import('../link/darwin.js'),
    ]);
    // the host's addresses matter only to the flow router's PF rules (path rules, a proxy default)
    const router = c !== undefined && (c.rules.some((r) => r.enabled) || isProxyDefault(c));
    const [resolved, gateways, own] = await Promise.all([
      resolveEndpoints(c, {
        ...(state ? { state } : {}),
        ...(persistEndpoints !== undefined ? { persist: persistEndpoints } : {}),
      }),
      darwinDefaultRoutes(exec).catch(() => ({})),
      router && state ? localAddresses(state, exec).catch(() => undefined) : undefined,
    ]);
    return {
      resolved,
      ...gateways,
      ...(own ? { localAddresses: own } : {}),
      ...darwinEngineProblems(c),
    };
  },
  realise: (m, facts, c) =>
    c
      ? realiseDarwinFlow(m, facts, {
          port: flowRouterPort(c.routing),
          rules: c.rules,
          ...(facts.localAddresses ? { localAddresses: facts.localAddresses } : {}),
        })
      : realiseDarwin(m, facts),
  engineIo: ENGINE_IO.darwin,
  watchNetwork: async (o) => (await import('../monitor/darwin.js')).watchDarwinNetwork(o),
  callerNatives: async () =>
    (await import('../../native/darwin/peercred.js')).darwinCallerNatives(),
  ownerNatives: async () => (await import('../../native/owner-lock.js')).darwinOwnerNatives,
  serviceManager: async () => (await import('../service/manager.js')).launchdManager,
  perApp: PER_APP.darwin,
  engineHost: 'daemon',
  upLinks: async ({ state, exec }) => (await import('../link/darwin.js')).upUtunLinks(state, exec),
};
