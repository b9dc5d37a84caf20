/**
 * What a platform lacks, as a driver: a kind it does not have (macOS: rules, cgroups, sysctls)
 * gets one whose observe finds nothing and whose apply refuses with a reason. Shared by the
 * kinds' folders, apart from the platform wiring (platform/) that builds the driver sets.
 */
import type { ResourceKind } from '../model/resources.js';
import { AwgError } from '../errors.js';
import type { Driver } from './driver.js';

export function unsupportedDarwinDriver<K extends ResourceKind>(
  kind: K,
  reason: string,
): Driver<K> {
  return {
    kind,
    async observe() {
      return { resources: [], foreign: [] };
    },
    async apply(change) {
      if (change.action === 'noop') return 'unchanged';
      throw new AwgError('unsupported', `${change.id}: ${reason}`, {
        hint: 'remove this from the macOS configuration, or run awg on Linux for it',
      });
    },
  };
}

export const PER_APP_ON_DARWIN =
  'macOS has no cgroups, fwmarks or policy-routing rules; per-app routing on macOS is the flow router the daemon hosts (PF redirects TCP to it; owner lookup by pcblist_n and proc_pidpath), not these resources';
