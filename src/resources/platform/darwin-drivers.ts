/** The macOS drivers (verified against captured real outputs only: docs/platform-macos.md). */
import type { Exec } from '../../util/exec.js';
import type { DriverSet } from '../driver.js';
import { createDarwinAddressDriver } from '../address/darwin.js';
import { createDarwinCgroupDriver } from '../cgroup/darwin.js';
import { createDarwinDnsDriver } from '../dns/darwin.js';
import { createDarwinFirewallDriver } from '../firewall/darwin.js';
import { createDarwinLinkDriver } from '../link/darwin.js';
import { createDarwinRouteDriver } from '../route/darwin.js';
import { createDarwinRuleDriver } from '../rule/darwin.js';
import { createDarwinServiceDriver } from '../service/darwin.js';
import { createDarwinSysctlDriver } from '../sysctl/darwin.js';
import { unsupportedDarwinDriver } from '../unsupported-driver.js';

/**
 * The macOS drivers. No engine driver for one-shot `awg apply`: its detached engines are
 * identified through /proc (engine/process-identity.ts), which macOS lacks, so an apply
 * without the daemon stops with `unsupported` at the first engine change and rolls back.
 * The daemon hosts engines in-process on a utun (platform engineIo → dataplane/tun/utun.ts).
 */
export function createDarwinDrivers(opts: { exec: Exec }): Omit<DriverSet, 'engine'> {
  const exec = opts.exec;
  return {
    sysctl: createDarwinSysctlDriver(),
    cgroup: createDarwinCgroupDriver(),
    rule: createDarwinRuleDriver(),
    firewall: createDarwinFirewallDriver({ exec }),
    link: createDarwinLinkDriver({ exec }),
    shaper: unsupportedDarwinDriver('shaper', 'limits are not realised on macOS yet'),
    address: createDarwinAddressDriver({ exec }),
    route: createDarwinRouteDriver({ exec }),
    dns: createDarwinDnsDriver({ exec }),
    service: createDarwinServiceDriver({ exec }),
  };
}
