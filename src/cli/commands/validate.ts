import { hasErrors } from '../../config/load.js';
import { prepare } from '../../pipeline/prepare.js';
import { toAwgError } from '../../errors.js';
import { printError, printIssues, type Io } from '../output.js';
import { selectionOf, type SelectionOptions } from '../selection.js';

export interface ValidateOptions extends SelectionOptions {
  file: string;
  skipSecrets?: boolean;
  json?: boolean;
}

/** exit 0 valid (warnings allowed), 1 invalid */
export async function validateCommand(io: Io, o: ValidateOptions): Promise<number> {
  let selection;
  try {
    selection = await selectionOf(o);
  } catch (e) {
    printError(io, toAwgError(e, 'invalid-config'));
    return 1;
  }
  const r = await prepare(o.file, { skipSecrets: o.skipSecrets, ...(selection ? { selection } : {}) });
  const issues = r.ok ? r.prepared.issues : r.issues;
  const ok = r.ok && !hasErrors(issues);
  if (o.json) {
    io.out(JSON.stringify({ valid: ok, issues }, null, 2) + '\n');
  } else {
    printIssues(io, issues);
    if (ok) io.out(`${o.file}: valid\n`);
    else io.err(`${o.file}: ${issues.filter((i) => i.severity === 'error').length} error(s); nothing was applied\n`);
  }
  return ok ? 0 : 1;
}
