/**
 * The `--json` plan document: a versioned, documented format. schema/plan.schema.json is
 * generated from this zod definition. Pure.
 */
import * as z from 'zod';
import { RESOURCE_KINDS } from './resources.js';
import type { Plan } from './change.js';
import { rulesetOf, setChanges } from './firewall-sets.js';

export const PLAN_FORMAT_VERSION = 1;

const Count = z.number().int().min(0);
const SetChangeDoc = z
  .object({
    name: z.string().meta({ description: 'nft set name (`d4_<rule>`, `l6_<rule>`, …)' }),
    rule: z.string().optional().meta({ description: 'the rule that matches on it' }),
    kind: z.enum(['static', 'learned']).meta({
      description:
        '`static`: CIDRs of the config and its lists; `learned`: filled from DNS at run time',
    }),
    action: z.enum(['create', 'update', 'delete']),
    before: Count.optional().meta({ description: 'static: entries before' }),
    after: Count.optional().meta({ description: 'static: entries after' }),
    added: Count.optional().meta({
      description: 'static: entries added (only when both element lists were at hand)',
    }),
    removed: Count.optional().meta({ description: 'static: entries removed (likewise)' }),
  })
  .meta({ id: 'SetChange' });

const Change = z
  .object({
    kind: z.enum(RESOURCE_KINDS),
    id: z.string().meta({ description: 'Stable resource id `<kind>/<identity>`.' }),
    action: z.enum(['create', 'update', 'replace', 'delete', 'noop']),
    cause: z.enum(['config', 'drift', 'initial']).meta({
      description:
        '`config`: the YAML changed; `drift`: the machine changed; `initial`: nothing applied before.',
    }),
    reason: z.string(),
    fields: z
      .array(z.string())
      .optional()
      .meta({ description: 'Top-level spec fields that differ (update/replace).' }),
    before: z.record(z.string(), z.unknown()).optional(),
    after: z.record(z.string(), z.unknown()).optional(),
    sets: z.array(SetChangeDoc).optional().meta({
      description:
        'firewall: the destination sets it creates, changes or removes (their elements are not in the ruleset)',
    }),
  })
  .meta({ id: 'Change' });

/** a list fetched by URL as the plan was made with it (config/load-destinations.ts UrlListLoad) */
const PlanListDoc = z
  .object({
    list: z.string().meta({
      description: 'the URL without credentials or query (`?…`), with `:category` when one is read',
    }),
    rules: z.array(z.string()).meta({ description: 'the rules that name it' }),
    state: z.enum(['ok', 'stale', 'pending']).meta({
      description:
        '`ok`: its cached copy is used; `stale`: its copy is used, the last fetch failed; `pending`: no copy, the list contributes nothing',
    }),
    format: z.string().optional(),
    entries: Count.optional(),
    fetchedAt: z.string().optional(),
    checkedAt: z.string().optional(),
    error: z.string().optional(),
  })
  .meta({ id: 'PlanList' });
export type PlanListDoc = z.infer<typeof PlanListDoc>;

export const PlanDocument = z
  .object({
    formatVersion: z.literal(PLAN_FORMAT_VERSION),
    config: z
      .string()
      .optional()
      .meta({ description: 'Path of the config file the plan was made from.' }),
    changes: z.array(Change),
    summary: z.object({
      create: z.number().int(),
      update: z.number().int(),
      replace: z.number().int(),
      delete: z.number().int(),
      drift: z.number().int().meta({ description: 'Changes caused by drift of the machine.' }),
      config: z.number().int().meta({ description: 'Changes caused by a config change.' }),
    }),
    foreign: z.array(
      z.object({
        kind: z.enum(RESOURCE_KINDS),
        id: z.string(),
        relation: z.enum(['conflict', 'competitor']),
        description: z.string(),
      }),
    ),
    warnings: z.array(z.string()),
    lists: z.array(PlanListDoc).optional().meta({
      description:
        'The lists by URL of the config and the copy each was planned with (`to.lists: [{url}]`).',
    }),
  })
  .meta({
    id: 'PlanDocument',
    title: 'awg plan',
    description:
      'The exact list of OS changes `awg apply` would perform (output of `awg diff --json`).',
  });
export type PlanDocument = z.infer<typeof PlanDocument>;

export function toPlanDocument(
  p: Plan,
  configFile?: string,
  lists?: readonly PlanListDoc[],
): PlanDocument {
  const changes = p.changes.filter((c) => c.action !== 'noop');
  const count = (a: string) => changes.filter((c) => c.action === a).length;
  return {
    formatVersion: PLAN_FORMAT_VERSION,
    ...(configFile ? { config: configFile } : {}),
    changes: changes.map((c) => ({
      kind: c.kind,
      id: c.id,
      action: c.action,
      cause: c.cause,
      reason: c.reason,
      ...(c.fields ? { fields: c.fields } : {}),
      ...(c.before ? { before: c.before as unknown as Record<string, unknown> } : {}),
      ...(c.after ? { after: c.after as unknown as Record<string, unknown> } : {}),
      ...(c.kind === 'firewall' ? firewallSets(c.before, c.after) : {}),
    })),
    summary: {
      create: count('create'),
      update: count('update'),
      replace: count('replace'),
      delete: count('delete'),
      drift: changes.filter((c) => c.cause === 'drift').length,
      config: changes.filter((c) => c.cause === 'config').length,
    },
    foreign: p.foreign.map((f) => ({ ...f })),
    warnings: [...p.warnings],
    ...(lists?.length ? { lists: lists.map((l) => ({ ...l, rules: [...l.rules] })) } : {}),
  };
}

/** a firewall change's destination sets, when it touches any */
function firewallSets(before: unknown, after: unknown): { sets?: SetChangeDoc[] } {
  const sets = setChanges(rulesetOf(before), rulesetOf(after));
  return sets.length ? { sets } : {};
}
type SetChangeDoc = z.infer<typeof SetChangeDoc>;
