/**
 * The macOS platform: the realisation of the model (darwin-realise.ts, and darwin-flow.ts
 * with the flow router's PF rules when given the config), and (loaded on first use) the
 * drivers (darwin-drivers.ts: route, PF, ifconfig/utun, networksetup/scutil DNS, launchd;
 * verified against captured real outputs only — docs/platform-macos.md) and the facts.
 */
import { ENGINE_IO, PER_APP, type Platform } from './platform.js';
import { flowRouterPort, isProxyDefault, realiseDarwinFlow } from './darwin-flow.js';
import { realiseDarwin } from './darwin-realise.js';

export { DARWIN_MAIN_TABLE, PF_ANCHOR, realiseDarwin } from './darwin-realise.js';

export const darwinPlatform: Platform = {
  os: 'darwin',
  drivers: async ({ exec }) => (await import('./darwin-drivers.js')).createDarwinDrivers({ exec }),
  async probeFacts(c, { exec, state, persistEndpoints }) {
    const [{ resolveEndpoints }, { darwinDefaultRoutes }, { localAddresses }] = await Promise.all([
      import('./facts.js'),
      import('./route/darwin.js'),
      import('./link/darwin.js'),
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
    return { resolved, ...gateways, ...(own ? { localAddresses: own } : {}) };
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
  watchNetwork: async (o) => (await import('./monitor/darwin.js')).watchDarwinNetwork(o),
  callerNatives: async () => (await import('../native/darwin/peercred.js')).darwinCallerNatives(),
  serviceManager: async () => (await import('./service/manager.js')).launchdManager,
  perApp: PER_APP.darwin,
  engineHost: 'daemon',
  upLinks: async ({ state, exec }) => (await import('./link/darwin.js')).upUtunLinks(state, exec),
};
