/**
 * The per-kind factories: the only place that chooses a platform. Callers never branch on
 * process.platform; a kind without a driver on this platform is absent, and executing a
 * change of that kind fails with AwgError('unsupported').
 *
 * Only this platform's driver modules are loaded: the macOS set is imported on first use,
 * so a Linux `awg diff` does not pay for parsing it (start-up time is part of its budget).
 */
import { AwgError } from '../errors.js';
import type { Exec } from '../util/exec.js';
import type { ResourceKind } from '../model/resources.js';
import type { Driver, DriverSet } from './driver.js';
import { createLinuxAddressDriver } from './address/linux.js';
import { createLinuxCgroupDriver } from './cgroup/linux.js';
import { createLinuxDnsDriver } from './dns/linux.js';
import { createProcessEngineDriver } from './engine/process-host.js';
import { createLinuxFirewallDriver } from './firewall/linux.js';
import { createLinuxLinkDriver } from './link/linux.js';
import { createLinuxRouteDriver } from './route/linux.js';
import { createLinuxRuleDriver } from './rule/linux.js';
import { createLinuxSysctlDriver } from './sysctl/linux.js';

export interface DriverOptions {
  exec: Exec;
  platform?: NodeJS.Platform;
  env?: NodeJS.ProcessEnv;
}

/** the kinds createDarwinDrivers returns (engines belong to the data plane there) */
const DARWIN_KINDS = ['sysctl', 'cgroup', 'rule', 'firewall', 'link', 'address', 'route', 'dns', 'service'] as const;

export function createDrivers(opts: DriverOptions): Partial<DriverSet> {
  const platform = opts.platform ?? process.platform;
  if (platform === 'linux') {
    return {
      sysctl: createLinuxSysctlDriver(),
      cgroup: createLinuxCgroupDriver(),
      firewall: createLinuxFirewallDriver({ exec: opts.exec }),
      link: createLinuxLinkDriver({ exec: opts.exec }),
      address: createLinuxAddressDriver({ exec: opts.exec }),
      route: createLinuxRouteDriver({ exec: opts.exec }),
      rule: createLinuxRuleDriver({ exec: opts.exec }),
      dns: createLinuxDnsDriver({ exec: opts.exec, env: opts.env }),
      engine: createProcessEngineDriver({ env: opts.env }),
    };
  }
  if (platform === 'darwin') {
    // Verified against captured macOS outputs only; the utun engine is not built yet, so
    // tunnels cannot come up on macOS (docs/platform-macos.md).
    let set: Promise<Partial<DriverSet>> | undefined;
    const load = () =>
      (set ??= import('../platform/darwin/drivers.js').then((m) => m.createDarwinDrivers({ exec: opts.exec })));
    const out: Partial<Record<ResourceKind, Driver<ResourceKind>>> = {};
    for (const kind of DARWIN_KINDS) out[kind] = deferred(kind, load);
    return out as Partial<DriverSet>;
  }
  return {};
}

/**
 * A driver whose module loads on its first call. Only `kind`, `observe` and `apply` are
 * forwarded: none of the macOS drivers offers `applyBatch`.
 */
function deferred<K extends ResourceKind>(kind: K, load: () => Promise<Partial<DriverSet>>): Driver<K> {
  const real = async (): Promise<Driver<K>> => {
    const d = (await load())[kind] as Driver<K> | undefined;
    if (!d) throw new AwgError('bug', `the macOS driver set has no ${kind} driver`);
    return d;
  };
  return {
    kind,
    observe: async (scope) => (await real()).observe(scope),
    apply: async (change, ctx) => (await real()).apply(change, ctx),
  };
}
