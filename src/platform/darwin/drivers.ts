/**
 * The macOS driver set, for the platform factory (resources/registry.ts). Engines are not
 * here: the data plane owns them.
 */
import type { Exec } from '../../util/exec.js';
import type { DriverSet } from '../../resources/driver.js';
import { createDarwinAddressDriver } from '../../resources/address/darwin.js';
import { createDarwinCgroupDriver } from '../../resources/cgroup/darwin.js';
import { createDarwinDnsDriver } from '../../resources/dns/darwin.js';
import { createDarwinFirewallDriver } from '../../resources/firewall/darwin.js';
import { createDarwinLinkDriver } from '../../resources/link/darwin.js';
import { createDarwinRouteDriver } from '../../resources/route/darwin.js';
import { createDarwinRuleDriver } from '../../resources/rule/darwin.js';
import { createDarwinServiceDriver } from '../../resources/service/darwin.js';
import { createDarwinSysctlDriver } from '../../resources/sysctl/darwin.js';

export function createDarwinDrivers(opts: { exec: Exec }): Omit<DriverSet, 'engine'> {
  const exec = opts.exec;
  return {
    sysctl: createDarwinSysctlDriver(),
    cgroup: createDarwinCgroupDriver(),
    rule: createDarwinRuleDriver(),
    firewall: createDarwinFirewallDriver({ exec }),
    link: createDarwinLinkDriver({ exec }),
    address: createDarwinAddressDriver({ exec }),
    route: createDarwinRouteDriver({ exec }),
    dns: createDarwinDnsDriver({ exec }),
    service: createDarwinServiceDriver({ exec }),
  };
}
