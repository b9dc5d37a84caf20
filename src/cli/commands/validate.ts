import { hasErrors } from '../../config/load.js';
import { prepare } from '../../pipeline/prepare.js';
import { stateDirFrom } from '../../pipeline/host.js';
import { cacheSourceIn } from '../../pipeline/list-update.js';
import { printIssues, type Io } from '../output.js';
import { selectionOrExit, type SelectionOptions } from '../selection.js';

export interface ValidateOptions extends SelectionOptions {
  file: string;
  skipSecrets?: boolean;
  json?: boolean;
}

/** exit 0 valid (warnings allowed), 1 invalid */
export async function validateCommand(io: Io, o: ValidateOptions): Promise<number> {
  const sel = await selectionOrExit(io, o);
  if (typeof sel === 'number') return sel;
  // lists by URL are checked in the copies this host has fetched (read only; none: a warning)
  const urlList = cacheSourceIn(stateDirFrom(undefined));
  const r = await prepare(o.file, { skipSecrets: o.skipSecrets, urlList, ...sel });
  const issues = r.ok ? r.prepared.issues : r.issues;
  const ok = r.ok && !hasErrors(issues);
  if (o.json) {
    io.out(JSON.stringify({ valid: ok, issues }, null, 2) + '\n');
  } else {
    printIssues(io, issues);
    if (ok) io.out(`${o.file}: valid\n`);
    else
      io.err(
        `${o.file}: ${issues.filter((i) => i.severity === 'error').length} error(s); nothing was applied\n`,
      );
  }
  return ok ? 0 : 1;
}
