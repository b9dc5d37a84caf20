/**
 * The per-kind factories: the only place that chooses a platform. Callers never branch on
 * process.platform; a kind without a driver on this platform is simply absent, and planning
 * a change of that kind fails with AwgError('unsupported').
 */
import type { Exec } from '../util/exec.js';
import type { DriverSet } from './driver.js';
import { createLinuxRouteDriver } from './route/linux.js';
import { createLinuxRuleDriver } from './rule/linux.js';

export interface DriverOptions {
  exec: Exec;
  platform?: NodeJS.Platform;
}

export function createDrivers(opts: DriverOptions): Partial<DriverSet> {
  const platform = opts.platform ?? process.platform;
  if (platform === 'linux') {
    return {
      route: createLinuxRouteDriver({ exec: opts.exec }),
      rule: createLinuxRuleDriver({ exec: opts.exec }),
    };
  }
  return {};
}
