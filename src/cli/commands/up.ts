/**
 * `awg up -f config.yaml`: the daemon loop and the engines in the foreground until
 * SIGINT/SIGTERM, printing events; then the host is left as `awg down` would leave it,
 * unless the kill switch is on (the nft table stays: fail-closed).
 */
import { resolve } from 'node:path';
import { prepare } from '../../pipeline/prepare.js';
import { notPrepared, type Io } from '../output.js';
import { runForeground } from '../foreground.js';
import { selectionAtStart, selectionOrExit, type SelectionOptions } from '../selection.js';

export interface UpOptions extends SelectionOptions {
  file: string;
  stateDir?: string;
  json?: boolean;
  verbose?: boolean;
  driftInterval?: string;
}

export async function upCommand(io: Io, o: UpOptions): Promise<number> {
  const file = resolve(o.file);
  const sel = await selectionOrExit(io, o, selectionAtStart);
  if (typeof sel === 'number') return sel;
  const r = await prepare(file, sel);
  if (!r.ok) return notPrepared(io, o.file, r);
  const driftMs = o.driftInterval !== undefined ? Number(o.driftInterval) * 1000 : undefined;
  return runForeground(
    io,
    {
      configPath: file,
      stateDir: o.stateDir,
      ...sel,
      ...(driftMs !== undefined && Number.isFinite(driftMs) ? { loop: { driftMs } } : {}),
    },
    { json: o.json, verbose: o.verbose, owner: { command: 'up' } },
  );
}
