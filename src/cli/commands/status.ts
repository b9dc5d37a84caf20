import { toAwgError } from '../../errors.js';
import { observeWith } from '../../reconciler/run.js';
import { plan as makePlan } from '../../reconciler/plan.js';
import { RESOURCE_KINDS } from '../../model/resources.js';
import { DEFAULT_CLAIMS } from '../app.js';
import { APPLIED_KEY, hostEnv, stateDirFrom, type AppliedRecord } from '../env.js';
import { FileStateStore } from '../../util/state.js';
import { silentReporter } from '../../util/reporter.js';
import { printError, type Io } from '../output.js';

export interface StatusOptions {
  stateDir?: string;
  json?: boolean;
}

/** Owned objects and their health against what was last applied. Exit 0 healthy, 2 drifted/none. */
export async function statusCommand(io: Io, o: StatusOptions): Promise<number> {
  const state = new FileStateStore(stateDirFrom(o.stateDir));
  const last = state.get<AppliedRecord>(APPLIED_KEY);
  const env = hostEnv({ state, reporter: silentReporter, claims: last?.claims ?? DEFAULT_CLAIMS });
  try {
    const desired = { resources: last?.resources ?? [], warnings: [] };
    const observed = await observeWith(env, desired);
    const drift = last ? makePlan(desired, observed, { lastApplied: last.resources }).changes.filter((c) => c.action !== 'noop') : [];
    const healthy = Boolean(last) && drift.length === 0;
    const doc = {
      state: !last ? (observed.resources.length ? 'unmanaged-leftovers' : 'down') : healthy ? 'converged' : 'drifted',
      config: last?.configFile,
      appliedAt: last?.appliedAt,
      objects: observed.resources.map((r) => ({ kind: r.kind, id: r.id, spec: r.spec })),
      drift: drift.map((c) => ({ id: c.id, action: c.action, reason: c.reason })),
      foreign: observed.foreign,
    };
    if (o.json) {
      io.out(JSON.stringify(doc, null, 2) + '\n');
    } else {
      io.out(`state: ${doc.state}${last ? ` (config ${last.configFile}, applied ${last.appliedAt})` : ''}\n`);
      for (const kind of RESOURCE_KINDS) {
        const objs = observed.resources.filter((r) => r.kind === kind);
        if (objs.length) io.out(`${kind}: ${objs.length}\n` + objs.slice(0, 20).map((r) => `  ${r.id}\n`).join('') + (objs.length > 20 ? `  … ${objs.length - 20} more\n` : ''));
      }
      for (const d of doc.drift) io.out(`drift: ${d.action} ${d.id} (${d.reason})\n`);
      for (const f of observed.foreign) io.out(`${f.relation}: ${f.id}: ${f.description}\n`);
    }
    return healthy ? 0 : 2;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err.exitCode;
  }
}
