/** Drivers for kinds macOS does not have: observe finds nothing, apply refuses with a reason. */
import type { ResourceKind } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { Driver } from '../../resources/driver.js';

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
  'macOS has no cgroups, fwmarks or policy-routing rules; per-app routing on macOS needs a userspace flow router on the utun (owner lookup by local port via pcblist_n / proc_pidpath), which is not built yet';
