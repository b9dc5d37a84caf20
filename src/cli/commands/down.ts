import { toAwgError } from '../../errors.js';
import { plan as makePlan } from '../../reconciler/plan.js';
import { executeChanges } from '../../reconciler/execute.js';
import { observeWith } from '../../reconciler/run.js';
import { verify } from '../../reconciler/verify.js';
import { claimsFromConfig, DEFAULT_CLAIMS } from '../app.js';
import { loadConfigFile } from '../../config/load.js';
import { APPLIED_KEY, hostEnv, type AppliedRecord } from '../env.js';
import { FileStateStore } from '../../util/state.js';
import { stateDirFrom } from '../env.js';
import { printError, printIssues, TextReporter, JsonReporter, type Io } from '../output.js';

export interface DownOptions {
  file?: string;
  stateDir?: string;
  dryRun?: boolean;
  json?: boolean;
  verbose?: boolean;
}

/**
 * Remove every object awg owns and restore saved originals (sysctls, DNS). Ownership comes
 * from markers, so `down` needs no config; the claims (which tables/marks are ours) come
 * from the last apply, the given config, or the defaults.
 */
export async function downCommand(io: Io, o: DownOptions): Promise<number> {
  const state = new FileStateStore(stateDirFrom(o.stateDir));
  const last = state.get<AppliedRecord>(APPLIED_KEY);
  let claims = last?.claims ?? DEFAULT_CLAIMS;
  if (o.file) {
    const l = await loadConfigFile(o.file);
    if (!l.config) {
      printIssues(io, l.issues);
      return 1;
    }
    claims = claimsFromConfig(l.config);
  }
  const reporter = o.json ? new JsonReporter(io) : new TextReporter(io, o.verbose);
  const env = hostEnv({ state, dryRun: o.dryRun, reporter, claims });
  const empty = { resources: [], warnings: [] };
  try {
    const observed = await observeWith(env, empty);
    const p = makePlan(empty, observed);
    const r = await executeChanges(p.changes, env.drivers, { exec: env.exec, reporter, state, dryRun: Boolean(o.dryRun), claims });
    if (r.failed) throw r.failed.error;
    if (!o.dryRun) {
      const left = verify(empty, await observeWith(env, empty));
      if (!left.ok) {
        io.err(`awg: down left objects behind: ${left.mismatches.map((m) => m.id).join(', ')}\n`);
        return 7;
      }
      state.delete(APPLIED_KEY);
    }
    if (o.json) io.out(JSON.stringify({ removed: r.done.map((c) => c.id), mutations: env.exec.mutations }, null, 2) + '\n');
    else io.out(r.done.length ? `Removed ${r.done.length} object(s) owned by awg.\n` : 'Nothing to remove: awg owns no objects on this host.\n');
    return 0;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}
