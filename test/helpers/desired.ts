/** The desired state as a Linux host plans against it: the model realised by the Linux platform. */
import type { Config } from '../../src/config/schema.js';
import { buildDesired, DEFAULT_FACTS, type BuildOptions } from '../../src/model/desired.js';
import type { DesiredState } from '../../src/model/resources.js';
import { realiseLinux } from '../../src/resources/linux.js';

export function linuxDesired(c: Config, opts: BuildOptions = {}): DesiredState {
  return realiseLinux(buildDesired(c, opts), opts.facts ?? DEFAULT_FACTS);
}
