import { readFile } from 'node:fs/promises';
import { AwgError, toAwgError } from '../../errors.js';
import { hasChanges } from '../../model/change.js';
import type { ObservedState } from '../../model/resources.js';
import { toPlanDocument } from '../../model/plan-document.js';
import { plan as makePlan } from '../../reconciler/plan.js';
import { observeWith } from '../../reconciler/run.js';
import { silentReporter } from '../../util/reporter.js';
import { prepare } from '../app.js';
import { APPLIED_KEY, hostEnv, type AppliedRecord } from '../env.js';
import { printError, printIssues, type Io } from '../output.js';
import { renderPlan } from '../render-plan.js';
import { hostFacts } from './host.js';

export interface DiffOptions {
  file: string;
  json?: boolean;
  stateDir?: string;
  /** plan against a recorded observation instead of this host */
  observed?: string;
  skipSecrets?: boolean;
  verbose?: boolean;
}

/** exit 0 no changes, 2 changes, 1 error (Terraform's -detailed-exitcode) */
export async function diffCommand(io: Io, o: DiffOptions): Promise<number> {
  try {
    const r = await prepare(o.file, { skipSecrets: o.skipSecrets, probeFacts: hostFacts });
    if (!r.ok) {
      printIssues(io, r.issues);
      return 1;
    }
    const p = r.prepared;
    printIssues(io, p.issues);
    const env = hostEnv({ stateDir: o.stateDir, reporter: silentReporter, claims: p.claims });
    let observed: ObservedState;
    if (o.observed) observed = JSON.parse(await readFile(o.observed, 'utf8')) as ObservedState;
    else observed = await observeWith(env, p.desired);
    const last = env.state.get<AppliedRecord>(APPLIED_KEY);
    const plan = makePlan(p.desired, observed, { lastApplied: last?.resources });
    if (o.json) io.out(JSON.stringify(toPlanDocument(plan, o.file), null, 2) + '\n');
    else io.out(renderPlan(plan, { colour: io.colour, verbose: o.verbose }));
    return hasChanges(plan) ? 2 : 0;
  } catch (e) {
    const err = toAwgError(e);
    printError(io, err);
    return err instanceof AwgError ? 1 : 1;
  }
}
