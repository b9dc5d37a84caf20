/**
 * The observation record on the wire (Observation): its fixed fields as proto fields, the
 * parts that vary by resource kind and platform (specs, facts) as JSON objects, as plans
 * carry specs (plan.ts). The client checks what arrives against the record's schema
 * (pipeline/observation.ts ObservationDocument). Pure.
 */
import type { ObservationRecord } from '../core.js';
import { observationFromJson, OBSERVATION_KIND } from '../../pipeline/observation.js';
import { bad, opt } from './common.js';
import type { ObservationResponse__Output } from './generated/awg/v1/ObservationResponse.js';

const json = (v: unknown) => (v === undefined ? undefined : JSON.stringify(v));

export function observationToWire(r: ObservationRecord): ObservationResponse__Output {
  return {
    host: r.host,
    recordedAt: r.recordedAt,
    observedJson: JSON.stringify(r.observed),
    ...opt('lastAppliedJson', json(r.lastApplied)),
    ...opt('factsJson', json(r.facts)),
    ...opt('claimsJson', json(r.claims)),
    ...opt('rolloutJson', json(r.rollout)),
    ...opt('revision', r.revision),
    rejected: (r.rejected ?? []).map((x) => ({ revision: x.revision, reason: x.reason, at: x.at })),
  };
}

function parse(field: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw bad(`Observation ${field} is not JSON`);
  }
}

export function observationFromWire(w: ObservationResponse__Output): ObservationRecord {
  const lastApplied = parse('last_applied_json', w.lastAppliedJson);
  const facts = parse('facts_json', w.factsJson);
  const claims = parse('claims_json', w.claimsJson);
  const rollout = parse('rollout_json', w.rolloutJson);
  const record = {
    kind: OBSERVATION_KIND,
    version: 1,
    host: w.host,
    recordedAt: w.recordedAt,
    observed: parse('observed_json', w.observedJson),
    ...(lastApplied !== undefined ? { lastApplied } : {}),
    ...(facts !== undefined ? { facts } : {}),
    ...(claims !== undefined ? { claims } : {}),
    ...(rollout !== undefined ? { rollout } : {}),
    ...opt('revision', w.revision),
    ...(w.rejected?.length
      ? { rejected: w.rejected.map((x) => ({ revision: x.revision, reason: x.reason, at: x.at })) }
      : {}),
  };
  try {
    return observationFromJson(record, 'Observation');
  } catch (e) {
    throw bad((e as Error).message);
  }
}
