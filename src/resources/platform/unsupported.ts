/**
 * The platform of an OS awg does not support at all: the config still validates; nothing can
 * be applied. (Drivers for the kinds a supported platform lacks: ../unsupported-driver.ts.)
 */
import type { DesiredModel } from '../../model/desired.js';
import { AwgError } from '../../errors.js';
import type { Platform } from './platform.js';

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
    ownerNatives: async () => {
      throw new AwgError('unsupported', `awg cannot lock its objects on ${os}`);
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
