/**
 * `awg up -f config.yaml`: the daemon loop and the engines in the foreground until
 * SIGINT/SIGTERM, printing events; then the host is left as `awg down` would leave it,
 * unless the kill switch is on (the nft table stays: fail-closed).
 */
import { resolve } from 'node:path';
import { prepare } from '../../pipeline/prepare.js';
import { printIssues, type Io } from '../output.js';
import { runForeground } from '../foreground.js';
import { printError } from '../output.js';
import { toAwgError } from '../../errors.js';
import { selectionAtStart, type SelectionOptions } from '../selection.js';

export interface UpOptions extends SelectionOptions {
  file: string;
  stateDir?: string;
  json?: boolean;
  verbose?: boolean;
  driftInterval?: string;
}

export async function upCommand(io: Io, o: UpOptions): Promise<number> {
  const file = resolve(o.file);
  let selection;
  try {
    selection = await selectionAtStart(o);
  } catch (e) {
    printError(io, toAwgError(e, 'invalid-config'));
    return 1;
  }
  const r = await prepare(file, selection ? { selection } : {});
  if (!r.ok) {
    printIssues(io, r.issues);
    io.err(`${o.file}: invalid configuration; nothing was applied\n`);
    return 1;
  }
  const driftMs = o.driftInterval !== undefined ? Number(o.driftInterval) * 1000 : undefined;
  return runForeground(io, { configPath: file, stateDir: o.stateDir, ...(selection ? { selection } : {}), ...(driftMs !== undefined && Number.isFinite(driftMs) ? { loop: { driftMs } } : {}) }, { json: o.json, verbose: o.verbose });
}
