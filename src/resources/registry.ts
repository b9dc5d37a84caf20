/**
 * The platforms: the only place that chooses one. Callers never branch on process.platform;
 * they load this host's Platform and use what it offers. A kind without a driver on a
 * platform is absent, and executing a change of that kind fails with
 * AwgError('unsupported').
 *
 * Only this platform's modules are loaded, on first use (`loadPlatform`): a Linux `awg
 * diff` does not pay for parsing the macOS set (start-up time is part of its budget), and
 * this module stays cheap to import.
 */
import type { Config } from '../config/schema.js';
import type { DesiredModel, HostFacts } from '../model/desired.js';
import type { DesiredState } from '../model/resources.js';
import type { Exec } from '../util/exec.js';
import type { DriverSet } from './driver.js';
import type { NetworkWatch, NetworkWatchOptions } from './monitor/types.js';
import type { ServiceManager } from './service/manager.js';
import { linuxObserveReads, type Read } from './reads.js';

export interface DriverOptions {
  exec: Exec;
  env?: NodeJS.ProcessEnv;
}

export interface Platform {
  readonly os: NodeJS.Platform;
  /** a driver per kind this platform manages */
  drivers(o: DriverOptions): Partial<DriverSet>;
  /** host facts the model and `realise` depend on, probed for this config (cheap; before planning) */
  probeFacts(c: Config | undefined, o: DriverOptions): Promise<HostFacts>;
  /**
   * The desired model → this platform's resources: the firewall policy rendered in its own
   * language (nft, PF), and whatever else differs (macOS: one routing table, no cgroups).
   * Pure. Throws AwgError('invalid-config') when the policy cannot be expressed.
   */
  realise(m: DesiredModel, facts: HostFacts): DesiredState;
  /** a wake source for the daemon: changes of links, addresses and routes (absent where none is built) */
  watchNetwork?(o: NetworkWatchOptions): Promise<NetworkWatch>;
  /** the manager that runs `awg daemon` as a system service (throws `unsupported` where there is none) */
  serviceManager(): ServiceManager;
}

export type PlatformName = 'linux' | 'darwin';

const loaders: Record<PlatformName, () => Promise<Platform>> = {
  linux: async () => (await import('./linux.js')).linuxPlatform,
  darwin: async () => (await import('./darwin.js')).darwinPlatform,
};

const cache = new Map<string, Promise<Platform>>();

/** This host's platform (or the named one: tests, `awg service --platform`). */
export function loadPlatform(os: NodeJS.Platform = process.platform): Promise<Platform> {
  let p = cache.get(os);
  if (!p) {
    const load = os in loaders ? loaders[os as PlatformName] : async () => (await import('./unsupported.js')).unsupportedPlatform(os);
    p = load();
    cache.set(os, p);
  }
  return p;
}

/**
 * The read-only commands one observation runs on this platform, to start before the
 * drivers load (`awg diff`, PrefetchExec); none where observing spawns nothing worth it.
 */
export function observeReads(nftTable: string, os: NodeJS.Platform = process.platform): Read[] {
  return os === 'linux' ? linuxObserveReads(nftTable) : [];
}
