/**
 * A recorded observation: what `awg status --observed-out FILE` saves on a host so that
 * `awg diff --observed FILE` plans against it anywhere — in CI, without root and without the
 * host (docs/fleet.md, "Pull-request plans"). It carries the observed objects, the last
 * applied resources (the plan's "drift or config" causes and deletions depend on them) and
 * the host facts (resolved endpoints, DNS manager, cgroup layout) the realisation reads, so
 * the plan off the host is the plan on it.
 *
 * Where a daemon runs, the daemon makes the record (its Observation call, GET
 * /api/observation): it holds the applied record of its own state directory, the claims of
 * the config it follows and the facts that config was realised with, which a command run
 * beside it with other defaults (another --state-dir, another cgroup root) would not see.
 *
 * Secrets: the record holds none (secret values appear in specs only as fingerprints keyed
 * by the host's own key). A CI without the host's keys plans with `--skip-secrets`; a key
 * the plan cannot read is then assumed unchanged (the observed fingerprint is kept) and the
 * plan says how many were not compared. A change of a secret itself shows only on the host.
 */
import { hostname } from 'node:os';
import * as z from 'zod';
import { AwgError } from '../errors.js';
import type { HostFacts } from '../model/desired.js';
import type { AnyResource, DesiredState, ObservedState } from '../model/resources.js';
import { RESOURCE_KINDS } from '../model/resources.js';
import { observeWith, type ReconcileEnv } from '../reconciler/observe.js';
import type { Claims } from '../resources/driver.js';
import { isObject } from '../util/shape.js';
import type { AppliedRecord } from './applied.js';

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
  /** where the host stands in a fleet rollout (a daemon following a checkout): `awg fleet status` */
  rollout?: RolloutPlace;
  /** a daemon following a checkout: the commit of the config it runs */
  revision?: string;
  /** a daemon following a checkout: the revisions it rejected after their apply (docs/fleet.md, "Rollouts") */
  rejected?: { revision: string; reason: string; at: string }[];
}

/**
 * Where a host following a checkout stands in a rollout besides the revision it runs and the
 * ones it rejected (the record's `revision`, `rejected`): the commit its checkout holds and a
 * newer revision it holds back (docs/fleet.md, "The rollout model").
 */
export interface RolloutPlace {
  /** the commit its checkout holds */
  checkoutRevision?: string;
  /** a newer revision it holds back: waiting for its wave, or halted */
  held?: { revision: string; state: 'waiting' | 'halted'; wave?: number; dueAt?: string };
}

export const RolloutPlaceDoc = z
  .looseObject({
    checkoutRevision: z.string().optional().meta({ description: 'the commit its checkout holds' }),
    held: z
      .looseObject({
        revision: z.string(),
        state: z.enum(['waiting', 'halted']),
        wave: z.number().int().min(1).optional(),
        dueAt: z.string().optional(),
      })
      .optional()
      .meta({ description: 'a newer revision held back: waiting for its wave, or halted' }),
  })
  .meta({
    id: 'RolloutPlace',
    description:
      "the host's place in a fleet rollout besides `revision` and `rejected`: its checkout's commit and a revision it holds back",
  });

const Resource = z.looseObject({
  kind: z.enum(RESOURCE_KINDS),
  id: z.string(),
  spec: z.record(z.string(), z.unknown()),
  deps: z.array(z.string()).optional(),
});

/**
 * The record as a document (what GET /api/observation answers and `--observed-out` writes).
 * Specs vary by kind (src/model/resources.ts) and facts by platform: checked as objects.
 */
export const ObservationDocument = z
  .looseObject({
    kind: z.literal(OBSERVATION_KIND),
    version: z.literal(1),
    host: z.string().meta({ description: 'the host the overlays were selected for' }),
    recordedAt: z.string(),
    observed: z
      .looseObject({
        resources: z.array(Resource),
        foreign: z.array(
          z.looseObject({
            kind: z.enum(RESOURCE_KINDS),
            id: z.string(),
            relation: z.enum(['conflict', 'competitor']),
            description: z.string(),
          }),
        ),
      })
      .meta({ description: 'the objects awg owns on the host, as observed' }),
    lastApplied: z
      .array(Resource)
      .optional()
      .meta({ description: 'what the last apply installed (absent: nothing is applied)' }),
    facts: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: 'the host facts the applied config was realised with' }),
    claims: z
      .looseObject({
        routeProtocol: z.number().int(),
        tableBase: z.number().int(),
        bandSize: z.number().int(),
        rulePriority: z.number().int(),
        fwmarkMask: z.number().int(),
        nftTable: z.string(),
        linkPrefix: z.string(),
        cgroupRoot: z.string(),
      })
      .optional()
      .meta({ description: 'the identifiers the last apply claimed' }),
    rollout: RolloutPlaceDoc.optional(),
    revision: z
      .string()
      .optional()
      .meta({ description: 'a daemon following a checkout: the commit of the config it runs' }),
    rejected: z
      .array(z.looseObject({ revision: z.string(), reason: z.string(), at: z.string() }))
      .optional()
      .meta({
        description:
          'a daemon following a checkout: the revisions it rejected after their apply, with why (docs/fleet.md, "Rollouts")',
      }),
  })
  .meta({
    id: 'ObservationRecord',
    title: 'awg observation',
    description:
      'What a host has now, for `awg diff --observed` elsewhere (`awg status --observed-out`). No secrets: fingerprints only.',
  });

/** A record from its JSON form (the API's answer), checked. */
export function observationFromJson(v: unknown, what: string): ObservationRecord {
  const r = ObservationDocument.safeParse(v);
  if (!r.success)
    throw new AwgError(
      'invalid-config',
      `${what}: not an observation record: ${r.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`)
        .join('; ')}`,
    );
  return r.data as unknown as ObservationRecord;
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

/** the facts a record carries: given (a daemon's running config), else probed for the last applied config */
export interface RecordFactsOptions {
  /** the facts of the config running (the daemon's); undefined: probe them */
  facts?: HostFacts | undefined;
  /** a record without facts says why (the last applied config does not load here) */
  warn: (message: string) => void;
}

/**
 * This host's record: `observed` (else what `env`, with the last apply's claims, observes of
 * the last applied resources), the last applied resources, its claims, and the host facts
 * (given, else probed read-only for the last applied config; secrets are not read).
 */
export async function observationOf(
  env: ReconcileEnv,
  last: AppliedRecord | undefined,
  o: RecordFactsOptions & { observed?: ObservedState },
): Promise<ObservationRecord> {
  const observed =
    o.observed ?? (await observeWith(env, { resources: last?.resources ?? [], warnings: [] }));
  let facts = last ? o.facts : undefined;
  if (last && !facts) {
    const { prepare } = await import('./prepare.js');
    // the host the last apply selected overlays for (a daemon's --host), not necessarily this machine's name
    const r = await prepare(last.configFile, {
      skipSecrets: true,
      probe: true,
      persistEndpoints: false,
      ...(last.selection ? { selection: last.selection } : {}),
    }).catch((e: unknown) => ({
      ok: false as const,
      issues: [{ message: (e as Error).message, severity: 'error' as const }],
    }));
    if (r.ok) facts = r.prepared.facts;
    else
      o.warn(
        `the record has no host facts: ${last.configFile} does not load here (${r.issues.find((i) => i.severity === 'error')?.message ?? 'invalid'})`,
      );
  }
  return makeObservationRecord(observed, {
    ...(last ? { lastApplied: last.resources, claims: last.claims } : {}),
    ...(facts ? { facts } : {}),
    ...(last?.selection ? { host: last.selection.host } : {}),
  });
}

/** The record with what a daemon following a checkout adds: the revision it runs and those it rejected. */
export function withRollout(
  r: ObservationRecord,
  config: { revision?: string | undefined } | undefined,
  rollout: { rejected?: { revision: string; reason: string; at: string }[] | undefined },
): ObservationRecord {
  return {
    ...r,
    ...(config?.revision ? { revision: config.revision } : {}),
    ...(rollout.rejected?.length ? { rejected: rollout.rejected.map((x) => ({ ...x })) } : {}),
  };
}
