/**
 * A recorded observation: what `awg status --observed-out FILE` saves on a host so that
 * `awg diff --observed FILE` plans against it anywhere — in CI, without root and without the
 * host (docs/fleet.md, "Pull-request plans"). It carries the observed objects, the last
 * applied resources (the plan's "drift or config" causes and deletions depend on them) and
 * the host facts (resolved endpoints, DNS manager, cgroup layout) the realisation reads, so
 * the plan off the host is the plan on it.
 *
 * Secrets: a CI without the host's keys plans with `--skip-secrets`; a key the plan cannot
 * read is then assumed unchanged (the observed fingerprint is kept) and the plan says how
 * many were not compared. A change of a secret itself shows only on the host.
 */
import { hostname } from 'node:os';
import { AwgError } from '../errors.js';
import type { HostFacts } from '../model/desired.js';
import type { AnyResource, DesiredState, ObservedState } from '../model/resources.js';
import type { Claims } from '../resources/driver.js';
import { isObject } from '../util/shape.js';

export const OBSERVATION_KIND = 'awg-observation';

export interface ObservationRecord {
  kind: typeof OBSERVATION_KIND;
  version: 1;
  host: string;
  recordedAt: string;
  observed: ObservedState;
  lastApplied?: AnyResource[];
  facts?: HostFacts;
  /** the claimed identifiers of the last apply (its cgroup root comes from the host's environment) */
  claims?: Claims;
}

export function makeObservationRecord(
  observed: ObservedState,
  o: { lastApplied?: AnyResource[]; facts?: HostFacts; host?: string; claims?: Claims } = {},
): ObservationRecord {
  return {
    kind: OBSERVATION_KIND,
    version: 1,
    host: o.host ?? hostname(),
    recordedAt: new Date().toISOString(),
    observed,
    ...(o.lastApplied ? { lastApplied: o.lastApplied } : {}),
    ...(o.facts ? { facts: o.facts } : {}),
    ...(o.claims ? { claims: o.claims } : {}),
  };
}

const isState = (v: unknown): v is ObservedState =>
  isObject(v) &&
  Array.isArray(v.resources) &&
  Array.isArray(v.foreign) &&
  v.resources.every(
    (r) =>
      isObject(r) && typeof r.kind === 'string' && typeof r.id === 'string' && isObject(r.spec),
  );

/** A record, or a bare ObservedState (what `--observed` took before records existed). */
export function parseObservation(
  text: string,
  file: string,
): {
  observed: ObservedState;
  lastApplied?: AnyResource[];
  facts?: HostFacts;
  host?: string;
  cgroupRoot?: string;
} {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new AwgError('invalid-config', `${file}: not JSON: ${(e as Error).message}`);
  }
  if (isObject(v) && v.kind === OBSERVATION_KIND) {
    if (v.version !== 1)
      throw new AwgError(
        'invalid-config',
        `${file}: observation version ${String(v.version)} is not supported (this awg reads 1)`,
      );
    if (!isState(v.observed))
      throw new AwgError('invalid-config', `${file}: "observed" is not an observed state`);
    if (
      v.lastApplied !== undefined &&
      !(
        Array.isArray(v.lastApplied) &&
        v.lastApplied.every((r) => isObject(r) && typeof r.id === 'string')
      )
    )
      throw new AwgError('invalid-config', `${file}: "lastApplied" is not a list of resources`);
    if (v.facts !== undefined && !isObject(v.facts))
      throw new AwgError('invalid-config', `${file}: "facts" is not a mapping`);
    const cgroupRoot =
      isObject(v.claims) &&
      typeof v.claims.cgroupRoot === 'string' &&
      /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(v.claims.cgroupRoot)
        ? v.claims.cgroupRoot
        : undefined;
    return {
      observed: v.observed,
      ...(v.lastApplied ? { lastApplied: v.lastApplied as AnyResource[] } : {}),
      ...(v.facts ? { facts: v.facts as HostFacts } : {}),
      ...(typeof v.host === 'string' ? { host: v.host } : {}),
      ...(cgroupRoot ? { cgroupRoot } : {}),
    };
  }
  if (!isState(v))
    throw new AwgError(
      'invalid-config',
      `${file}: neither an awg observation record (awg status --observed-out) nor an observed state`,
    );
  return { observed: v };
}

const UNRESOLVED = 'unresolved:';

/**
 * Replace every secret fingerprint the plan could not compute (`unresolved:…`, from
 * --skip-secrets) with the observed value at the same place of the same object: the secret
 * is assumed unchanged. Returns how many were replaced. Mutates `desired`.
 */
export function assumeUnreadSecretsUnchanged(
  desired: DesiredState,
  observed: ObservedState,
): number {
  const obs = new Map(observed.resources.map((r) => [r.id, r]));
  let n = 0;
  const walk = (d: unknown, o: unknown): unknown => {
    if (typeof d === 'string' && d.startsWith(UNRESOLVED)) {
      if (typeof o === 'string') {
        n++;
        return o;
      }
      return d;
    }
    if (Array.isArray(d)) return d.map((x, i) => walk(x, Array.isArray(o) ? o[i] : undefined));
    if (isObject(d)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(d)) out[k] = walk(v, isObject(o) ? o[k] : undefined);
      return out;
    }
    return d;
  };
  desired.resources = desired.resources.map((r) => {
    const o = obs.get(r.id);
    return o ? ({ ...r, spec: walk(r.spec, o.spec) } as AnyResource) : r;
  });
  return n;
}
