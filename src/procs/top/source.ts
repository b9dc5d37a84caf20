/**
 * The traffic source of a platform, picked the way procs/list.ts picks the process lister
 * (Platform.perApp): on Linux sock_diag, conntrack and /proc (linux.ts); on macOS the flow
 * router's own counts and nettop's (darwin.ts); each loaded on first use; elsewhere
 * `unsupported`.
 */
import { AwgError } from '../../errors.js';
import type { PerApp } from '../list.js';
import type { TrafficSource } from './reading.js';
import type { RoutedFlowCount } from './darwin.js';

export interface TrafficSourceOptions {
  /** the cgroup subtree awg owns (claims.cgroupRoot): its cgroups are named first */
  cgroupRoot?: string | undefined;
  /** macOS: the flow router's connections with their counts (FlowRouterHost.flows), when one runs here */
  routed?: (() => readonly RoutedFlowCount[]) | undefined;
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
      return (await import('./darwin.js')).darwinTrafficSource(
        o.routed !== undefined ? { routed: o.routed } : {},
      );
    case 'none':
      throw new AwgError(
        'unsupported',
        'awg top: the traffic monitor is not supported on this OS (Linux and macOS only)',
      );
  }
}
