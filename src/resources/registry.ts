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
import type { EngineIo } from '../dataplane/engine.js';
import { ENGINE_IO, PER_APP, type Platform } from './platform/platform.js';
import { linuxListings, linuxObserveReads, type Read } from './reads.js';

export type { DriverOptions, Platform } from './platform/platform.js';

export type PlatformName = 'linux' | 'darwin';

/** How this OS routes per app (Platform.perApp) without loading its drivers: `awg exec` chooses its path by it, and loading the Linux set would slow its start. */
export function perAppOf(os: NodeJS.Platform = process.platform): Platform['perApp'] {
  return os in PER_APP ? PER_APP[os as PlatformName] : 'none';
}

/**
 * This OS's engine I/O (Platform.engineIo) without loading its drivers: the `awg engine`
 * process needs only its TUN and UDP bindings, and the Linux platform's module (the config
 * schema with zod, the model, the nft renderer) would add megabytes to its RSS
 * (bench/RESULTS.md).
 */
export function loadEngineIo(
  o: Parameters<Platform['engineIo']>[0] = {},
  os: NodeJS.Platform = process.platform,
): Promise<EngineIo> {
  return os in ENGINE_IO
    ? ENGINE_IO[os as PlatformName](o)
    : loadPlatform(os).then((p) => p.engineIo(o));
}

const loaders: Record<PlatformName, () => Promise<Platform>> = {
  linux: async () => (await import('./platform/linux.js')).linuxPlatform,
  darwin: async () => (await import('./platform/darwin.js')).darwinPlatform,
};

const cache = new Map<string, Promise<Platform>>();

/** This host's platform (or the named one: tests, `awg service --platform`). */
export function loadPlatform(os: NodeJS.Platform = process.platform): Promise<Platform> {
  let p = cache.get(os);
  if (!p) {
    const load =
      os in loaders
        ? loaders[os as PlatformName]
        : async () => (await import('./platform/unsupported.js')).unsupportedPlatform(os);
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

/** The listings the drivers read on this platform, that one reconcile run shares (read-pass.ts). */
export function observeListings(os: NodeJS.Platform = process.platform): Read[] {
  return os === 'linux' ? linuxListings() : [];
}
