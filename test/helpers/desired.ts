/** The desired state as a Linux host plans against it: the model realised by the Linux platform. */
import type { Config } from '../../src/config/schema.js';
import { buildDesired, DEFAULT_FACTS, type BuildOptions } from '../../src/model/desired.js';
import type { DesiredState } from '../../src/model/resources.js';
import { realiseLinux } from '../../src/resources/platform/linux.js';

/**
 * The fingerprint key of the tests' imaginary host (a real host's is random, in its state
 * directory: util/host-key.ts): fixed, so plan goldens are deterministic.
 */
export const TEST_FINGERPRINT_KEY: Uint8Array = Buffer.alloc(32, 0x5a);

export function linuxDesired(c: Config, opts: BuildOptions = {}): DesiredState {
  const o =
    opts.secrets?.size && !opts.fingerprintKey
      ? { ...opts, fingerprintKey: TEST_FINGERPRINT_KEY }
      : opts;
  return realiseLinux(buildDesired(c, o), o.facts ?? DEFAULT_FACTS);
}
