/**
 * Plans on the wire and the calls that carry them or change the host: Apply, Diff, Down. The
 * proto's Plan is the plan document of `awg diff --json` field for field, but for the
 * resource specs, which travel as JSON text (they vary by kind). Pure.
 */
import { planListFromWire, planListToWire } from './lists.js';
import { checkConfirmTimeout } from '../confirm.js';
import { AwgError } from '../../errors.js';
import type { PlanDocument } from '../../model/plan-document.js';
import type { ApplyRequest, ApplyResponse } from '../core.js';
import { bad, errIn, opt } from './common.js';
import type { ApplyRequest__Output } from './generated/awg/v1/ApplyRequest.js';
import type { ApplyResponse__Output } from './generated/awg/v1/ApplyResponse.js';
import type { DiffResponse__Output } from './generated/awg/v1/DiffResponse.js';
import type { DownResponse__Output } from './generated/awg/v1/DownResponse.js';
import type { Plan__Output } from './generated/awg/v1/Plan.js';
import type { Summary__Output } from './generated/awg/v1/Summary.js';

/** a plan or reconcile whose summary did not arrive counts nothing */
export const ZERO_SUMMARY: Summary__Output = {
  create: 0,
  update: 0,
  replace: 0,
  delete: 0,
  drift: 0,
  config: 0,
};

type PlanChange = PlanDocument['changes'][number];

export function planToWire(p: PlanDocument): Plan__Output {
  return {
    formatVersion: p.formatVersion,
    ...opt('config', p.config),
    changes: p.changes.map((c) => ({
      kind: c.kind,
      id: c.id,
      action: c.action,
      cause: c.cause,
      reason: c.reason,
      fields: c.fields ?? [],
      ...opt('beforeJson', c.before === undefined ? undefined : JSON.stringify(c.before)),
      ...opt('afterJson', c.after === undefined ? undefined : JSON.stringify(c.after)),
    })),
    summary: { ...p.summary },
    foreign: p.foreign.map((f) => ({ ...f })),
    warnings: [...p.warnings],
    lists: (p.lists ?? []).map(planListToWire),
  };
}

function json(s: string, what: string): Record<string, unknown> {
  try {
    return JSON.parse(s) as Record<string, unknown>;
  } catch {
    throw bad(what);
  }
}

export function planFromWire(w: Plan__Output | null | undefined): PlanDocument {
  if (!w) throw bad('plan missing');
  if (w.formatVersion !== 1) throw bad(`plan formatVersion ${w.formatVersion}`);
  return {
    formatVersion: 1,
    ...opt('config', w.config),
    changes: w.changes.map((c) => ({
      kind: c.kind as PlanChange['kind'],
      id: c.id,
      action: c.action as PlanChange['action'],
      cause: c.cause as PlanChange['cause'],
      reason: c.reason,
      ...(c.fields.length ? { fields: [...c.fields] } : {}),
      ...opt(
        'before',
        c.beforeJson === undefined ? undefined : json(c.beforeJson, `${c.id} before`),
      ),
      ...opt('after', c.afterJson === undefined ? undefined : json(c.afterJson, `${c.id} after`)),
    })),
    summary: { ...(w.summary ?? ZERO_SUMMARY) },
    foreign: w.foreign.map((f) => ({
      kind: f.kind as PlanDocument['foreign'][number]['kind'],
      id: f.id,
      relation: f.relation as 'conflict' | 'competitor',
      description: f.description,
    })),
    warnings: [...w.warnings],
    ...(w.lists?.length ? { lists: w.lists.flatMap(planListFromWire) } : {}),
  };
}

export function applyRequestToWire(r: ApplyRequest): ApplyRequest__Output {
  return {
    configPath: r.configPath,
    dryRun: Boolean(r.dryRun),
    confirmTimeoutSec: r.confirmTimeoutSec ?? 0,
  };
}

export function applyRequestFromWire(w: ApplyRequest__Output): ApplyRequest {
  if (!w.configPath) throw new AwgError('invalid-config', 'config path missing');
  if (w.confirmTimeoutSec) checkConfirmTimeout(w.confirmTimeoutSec);
  return {
    configPath: w.configPath,
    ...(w.dryRun ? { dryRun: true } : {}),
    ...(w.confirmTimeoutSec ? { confirmTimeoutSec: w.confirmTimeoutSec } : {}),
  };
}

export function applyResponseToWire(r: ApplyResponse): ApplyResponse__Output {
  return {
    outcome: r.outcome,
    plan: planToWire(r.plan),
    mutations: r.mutations,
    ...opt('error', r.error),
    ...opt('confirmDeadline', r.confirmDeadline),
  };
}

export function applyResponseFromWire(w: ApplyResponse__Output): ApplyResponse {
  return {
    outcome: w.outcome,
    plan: planFromWire(w.plan),
    mutations: w.mutations,
    ...opt('error', errIn(w.error)),
    ...opt('confirmDeadline', w.confirmDeadline),
  };
}

export function diffResponseToWire(r: {
  plan: PlanDocument;
  changes: boolean;
}): DiffResponse__Output {
  return { plan: planToWire(r.plan), changes: r.changes };
}

export function diffResponseFromWire(w: DiffResponse__Output): {
  plan: PlanDocument;
  changes: boolean;
} {
  return { plan: planFromWire(w.plan), changes: w.changes };
}

export function downResponseToWire(r: {
  removed: string[];
  mutations: number;
}): DownResponse__Output {
  return { removed: [...r.removed], mutations: r.mutations };
}

export function downResponseFromWire(w: DownResponse__Output): {
  removed: string[];
  mutations: number;
} {
  return { removed: [...w.removed], mutations: w.mutations };
}
