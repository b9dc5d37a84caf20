/**
 * `awg sync --path DIR --branch B [--allowed-signers FILE]`: fast-forward a config checkout
 * to its branch (util/git-sync.ts). What the awg-sync.timer of `awg service install --git`
 * runs; the daemon follows the files.
 */
import { resolve } from 'node:path';
import { toAwgError } from '../../errors.js';
import { printError, type Io } from '../output.js';

export interface SyncCommandOptions {
  path: string;
  branch: string;
  remote?: string;
  allowedSigners?: string;
  json?: boolean;
}

/** exit 0 up to date or updated; else the error kind's code (the checkout did not move) */
export async function syncCommand(io: Io, o: SyncCommandOptions): Promise<number> {
  try {
    const { gitSync } = await import('../../util/git-sync.js');
    const r = await gitSync({
      path: resolve(o.path),
      branch: o.branch,
      ...(o.remote ? { remote: o.remote } : {}),
      ...(o.allowedSigners ? { allowedSigners: resolve(o.allowedSigners) } : {}),
    });
    if (o.json) io.out(JSON.stringify(r) + '\n');
    else
      io.out(
        r.outcome === 'updated'
          ? `updated ${o.path}: ${r.from.slice(0, 12)} → ${r.to.slice(0, 12)}\n`
          : `${o.path} is up to date at ${r.to.slice(0, 12)}\n`,
      );
    return 0;
  } catch (e) {
    const err = toAwgError(e, 'driver');
    if (o.json)
      io.out(JSON.stringify({ outcome: 'refused', kind: err.kind, message: err.message }) + '\n');
    printError(io, err);
    return err.exitCode;
  }
}
