/**
 * The per-kind factories: the only place that chooses a platform. Callers never branch on
 * process.platform; a kind without a driver on this platform is absent, and executing a
 * change of that kind fails with AwgError('unsupported').
 */
import type { Exec } from '../util/exec.js';
import type { DriverSet } from './driver.js';
import { createLinuxAddressDriver } from './address/linux.js';
import { createLinuxCgroupDriver } from './cgroup/linux.js';
import { createLinuxDnsDriver } from './dns/linux.js';
import { createProcessEngineDriver } from './engine/process-host.js';
import { createDarwinDrivers } from '../platform/darwin/drivers.js';
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
    return createDarwinDrivers({ exec: opts.exec });
  }
  return {};
}
