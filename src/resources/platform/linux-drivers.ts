/** The Linux drivers: iproute2 and nft through Exec, TUN and sysfs through koffi and the file system. */
import type { DriverSet } from '../driver.js';
import type { DriverOptions } from './platform.js';
import { createLinuxAddressDriver } from '../address/linux.js';
import { createLinuxCgroupDriver } from '../cgroup/linux.js';
import { createLinuxDnsDriver } from '../dns/linux.js';
import { createExternalEngineHost } from '../engine/external-host.js';
import { engineDriver } from '../engine/hosts.js';
import { createKernelEngineDriver } from '../engine/kernel-host.js';
import { createProcessEngineDriver } from '../engine/process-host.js';
import { createLinuxFirewallDriver } from '../firewall/linux.js';
import { createLinuxLinkDriver } from '../link/linux.js';
import { createLinuxRouteDriver } from '../route/linux.js';
import { createLinuxRuleDriver } from '../rule/linux.js';
import { createLinuxShaperDriver } from '../shaper/linux.js';
import { createLinuxSysctlDriver } from '../sysctl/linux.js';

export function createLinuxDrivers({ exec, env }: DriverOptions): Omit<DriverSet, 'service'> {
  return {
    sysctl: createLinuxSysctlDriver(),
    cgroup: createLinuxCgroupDriver(),
    firewall: createLinuxFirewallDriver({ exec }),
    link: createLinuxLinkDriver({ exec }),
    shaper: createLinuxShaperDriver({ exec }),
    address: createLinuxAddressDriver({ exec }),
    route: createLinuxRouteDriver({ exec }),
    rule: createLinuxRuleDriver({ exec }),
    dns: createLinuxDnsDriver({ exec, env }),
    // one-shot `awg apply`: detached engines (ours, external programs), or the kernel's
    engine: engineDriver({
      embedded: createProcessEngineDriver({ env }),
      kernel: createKernelEngineDriver(),
      external: createExternalEngineHost({ env }).driver,
    }),
  };
}
