/**
 * The traffic source of a platform, picked the way procs/list.ts picks the process lister
 * (Platform.perApp): on Linux sock_diag, conntrack and /proc (linux.ts, loaded on first use);
 * elsewhere `unsupported`.
 */
import { AwgError } from '../../errors.js';
import type { PerApp } from '../list.js';
import type { TrafficSource } from './reading.js';

export interface TrafficSourceOptions {
  /** the cgroup subtree awg owns (claims.cgroupRoot): its cgroups are named first */
  cgroupRoot?: string | undefined;
}

export async function trafficSource(
  perApp: PerApp,
  o: TrafficSourceOptions = {},
): Promise<TrafficSource> {
  switch (perApp) {
    case 'cgroup':
      return (await import('./linux.js')).linuxTrafficSource(
        o.cgroupRoot !== undefined ? { cgroupRoot: o.cgroupRoot } : {},
      );
    case 'flow-router':
    case 'none':
      throw new AwgError(
        'unsupported',
        'awg top: the traffic monitor is not supported on this OS (Linux only)',
      );
  }
}
