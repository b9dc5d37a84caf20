/**
 * `awg daemon [--config FILE]`: the service. The same core as `awg up` (loop + in-process
 * engines); without --config it follows the file of the last apply. The API socket is
 * started from `onStarted` (see daemon/foreground.ts).
 */
import { resolve } from 'node:path';
import type { Io } from '../output.js';
import { runForeground } from '../../daemon/foreground.js';

export interface DaemonCommandOptions {
  config?: string;
  stateDir?: string;
  json?: boolean;
  verbose?: boolean;
}

export async function daemonCommand(io: Io, o: DaemonCommandOptions): Promise<number> {
  return runForeground(io, { configPath: o.config ? resolve(o.config) : undefined, stateDir: o.stateDir }, { json: o.json ?? true, verbose: o.verbose });
}
