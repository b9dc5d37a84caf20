/**
 * plan(desired, observed) → ordered changes. Pure.
 *
 * Order: deletions first, in reverse dependency order; then replacements, updates and
 * creations in dependency order (kind order from RESOURCE_KINDS breaks ties, so the
 * firewall is in place before any link and rules come after their routes).
 */
import type { AnyChange, Cause, Plan } from '../model/change.js';
import { REPLACE_ON } from '../model/identity.js';
import { RESOURCE_KINDS, type AnyResource, type DesiredState, type ObservedState } from '../model/resources.js';

export interface PlanOptions {
  /** what the last successful apply installed; tells drift from config change */
  lastApplied?: AnyResource[];
  /** include `noop` entries (for verification and `--verbose` output) */
  includeNoop?: boolean;
}

/** Canonical JSON: sorted keys, undefined dropped. Used as the equality key. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (val && typeof val === 'object' && !Array.isArray(val)) {
      const o = val as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .filter((k) => o[k] !== undefined)
          .sort()
          .map((k) => [k, o[k]]),
      );
    }
    return val;
  });
}

export function specEqual(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

export function diffFields(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => canonical(before[k]) !== canonical(after[k])).sort();
}

const KIND_RANK = new Map<string, number>(RESOURCE_KINDS.map((k, i) => [k, i]));

/** Stable topological order: deps first; among ready nodes, kind rank then id. */
export function topoOrder(resources: AnyResource[]): AnyResource[] {
  const byId = new Map(resources.map((r) => [r.id, r]));
  const indeg = new Map<string, number>();
  const children = new Map<string, string[]>();
  for (const r of resources) {
    const deps = r.deps.filter((d) => byId.has(d));
    indeg.set(r.id, deps.length);
    for (const d of deps) children.set(d, [...(children.get(d) ?? []), r.id]);
  }
  const cmp = (a: AnyResource, b: AnyResource) => KIND_RANK.get(a.kind)! - KIND_RANK.get(b.kind)! || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const ready = resources.filter((r) => indeg.get(r.id) === 0).sort(cmp);
  const out: AnyResource[] = [];
  while (ready.length) {
    const r = ready.shift()!;
    out.push(r);
    let added = false;
    for (const c of children.get(r.id) ?? []) {
      const n = indeg.get(c)! - 1;
      indeg.set(c, n);
      if (n === 0) {
        ready.push(byId.get(c)!);
        added = true;
      }
    }
    if (added) ready.sort(cmp);
  }
  if (out.length !== resources.length) {
    const stuck = resources.filter((r) => !out.includes(r)).map((r) => r.id);
    throw new Error(`dependency cycle among ${stuck.join(', ')}`);
  }
  return out;
}

function describe(r: AnyResource): string {
  switch (r.kind) {
    case 'link':
      return `${r.spec.kind} mtu ${r.spec.mtu} ${r.spec.up ? 'up' : 'down'}`;
    case 'route':
      return `${r.spec.type === 'unicast' ? '' : r.spec.type + ' '}${r.spec.dst}${r.spec.dev ? ' dev ' + r.spec.dev : ''} table ${r.spec.table}`;
    default:
      return '';
  }
}

export function plan(desired: DesiredState, observed: ObservedState, opts: PlanOptions = {}): Plan {
  const obs = new Map(observed.resources.map((r) => [r.id, r]));
  const des = new Map(desired.resources.map((r) => [r.id, r]));
  const last = opts.lastApplied ? new Map(opts.lastApplied.map((r) => [r.id, r])) : undefined;

  const causeFor = (id: string, wanted: AnyResource | undefined): Cause => {
    if (!last) return 'initial';
    const prev = last.get(id);
    if (wanted === undefined) return prev ? 'config' : 'drift';
    return prev && specEqual(prev.spec, wanted.spec) ? 'drift' : 'config';
  };

  const deletes: AnyChange[] = [];
  const forward: AnyChange[] = [];

  const obsOnly = observed.resources.filter((r) => !des.has(r.id));
  const deleteOrder = topoOrder(obsOnly.map((r) => ({ ...r, deps: r.deps ?? [] }) as AnyResource)).reverse();
  for (const o of deleteOrder) {
    deletes.push({ kind: o.kind, id: o.id, action: 'delete', before: o.spec, reason: last?.has(o.id) ? 'no longer in the config' : 'owned by awg but not desired', cause: causeFor(o.id, undefined) } as AnyChange);
  }

  for (const d of topoOrder(desired.resources)) {
    const o = obs.get(d.id);
    if (!o) {
      const what = describe(d);
      forward.push({ kind: d.kind, id: d.id, action: 'create', after: d.spec, reason: last?.has(d.id) ? 'missing (deleted outside awg)' : what ? `new: ${what}` : 'new', cause: causeFor(d.id, d) } as AnyChange);
      continue;
    }
    if (specEqual(o.spec, d.spec)) {
      if (opts.includeNoop) forward.push({ kind: d.kind, id: d.id, action: 'noop', before: o.spec, after: d.spec, reason: 'up to date', cause: causeFor(d.id, d) } as AnyChange);
      continue;
    }
    const fields = diffFields(o.spec as unknown as Record<string, unknown>, d.spec as unknown as Record<string, unknown>);
    const replace = fields.some((f) => REPLACE_ON[d.kind].includes(f));
    forward.push({ kind: d.kind, id: d.id, action: replace ? 'replace' : 'update', before: o.spec, after: d.spec, fields, reason: `${fields.join(', ')} differ${replace ? ' (cannot change in place)' : ''}`, cause: causeFor(d.id, d) } as AnyChange);
  }
  return { changes: [...deletes, ...forward], foreign: observed.foreign, warnings: desired.warnings };
}
