/**
 * What a platform lacks: drivers for kinds it does not have (observe finds nothing, apply
 * refuses with a reason), and the platform of an OS awg does not support at all (the config
 * still validates; nothing can be applied).
 */
import type { DesiredModel } from '../model/desired.js';
import type { ResourceKind } from '../model/resources.js';
import { AwgError } from '../errors.js';
import type { Driver } from './driver.js';
import type { Platform } from './platform.js';

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

/** An OS without drivers: `validate` works, `diff` plans against nothing, `apply` fails `unsupported`. */
export function unsupportedPlatform(os: NodeJS.Platform): Platform {
  return {
    os,
    drivers: async () => ({}),
    probeFacts: async () => ({}),
    realise: (m: DesiredModel) => ({
      resources: [...m.resources],
      warnings: [
        ...m.warnings,
        ...(m.policy
          ? [
              `awg has no firewall for ${os}: the kill switch, DNS leak protection and per-app rules cannot be applied here`,
            ]
          : []),
      ],
    }),
    engineIo: async () => {
      throw new AwgError('unsupported', `awg has no tunnel engine for ${os}`);
    },
    callerNatives: async () => {
      throw new AwgError(
        'unsupported',
        `the awg daemon's API cannot identify its callers on ${os}`,
      );
    },
    serviceManager: async () => {
      throw new AwgError(
        'unsupported',
        `awg service is not supported on ${os} (systemd on Linux, launchd on macOS)`,
      );
    },
    perApp: 'none',
    engineHost: 'detached',
    upLinks: async () => new Set(),
  };
}
