/**
 * plan(desired, observed) → ordered changes. Pure.
 *
 * Order: deletions first, in reverse dependency order; then replacements, updates and
 * creations in dependency order (kind order from RESOURCE_KINDS breaks ties, so the
 * firewall is in place before any link and rules come after their routes); last, the
 * deletions of routes whose successors must be in place first (make before break, below).
 */
import type { AnyChange, Cause, Plan } from '../model/change.js';
import { REPLACE_ON } from '../model/identity.js';
import {
  RESOURCE_KINDS,
  type AnyResource,
  type DesiredState,
  type ObservedState,
} from '../model/resources.js';

export interface PlanOptions {
  /** what the last successful apply installed; tells drift from config change */
  lastApplied?: AnyResource[] | undefined;
  /** include `noop` entries (for verification and `--verbose` output) */
  includeNoop?: boolean;
}

export { canonical, specEqual } from '../util/canonical.js';
import { formatRate } from '../model/shaping.js';
import { canonical, specEqual } from '../util/canonical.js';

export function diffFields(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => canonical(before[k]) !== canonical(after[k])).sort();
}

const KIND_RANK = new Map<string, number>(RESOURCE_KINDS.map((k, i) => [k, i]));

/** Stable topological order: deps first; among ready nodes, kind rank then id (binary heap). */
export function topoOrder(resources: AnyResource[]): AnyResource[] {
  const n = resources.length;
  // rank[i] = position of resource i in (kind rank, id) order; the heap compares ints
  const sorted = resources
    .map((_, i) => i)
    .sort((a, b) => {
      const ra = resources[a]!;
      const rb = resources[b]!;
      const k = KIND_RANK.get(ra.kind)! - KIND_RANK.get(rb.kind)!;
      return k !== 0 ? k : ra.id < rb.id ? -1 : ra.id > rb.id ? 1 : 0;
    });
  const rank = new Int32Array(n);
  sorted.forEach((idx, pos) => (rank[idx] = pos));
  const indexOf = new Map<string, number>();
  resources.forEach((r, i) => indexOf.set(r.id, i));
  const indeg = new Int32Array(n);
  const children: (number[] | undefined)[] = new Array(n);
  resources.forEach((r, i) => {
    for (const d of r.deps) {
      const j = indexOf.get(d);
      if (j === undefined) continue;
      indeg[i]!++;
      (children[j] ??= []).push(i);
    }
  });
  const heap: number[] = [];
  const push = (x: number) => {
    heap.push(x);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (rank[heap[p]!]! <= rank[x]!) break;
      heap[i] = heap[p]!;
      i = p;
    }
    heap[i] = x;
  };
  const pop = (): number => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const c = r < heap.length && rank[heap[r]!]! < rank[heap[l]!]! ? r : l;
        if (rank[heap[c]!]! >= rank[last]!) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  };
  for (let i = 0; i < n; i++) if (indeg[i] === 0) push(i);
  const out: AnyResource[] = [];
  while (heap.length) {
    const i = pop();
    out.push(resources[i]!);
    for (const c of children[i] ?? []) if (--indeg[c]! === 0) push(c);
  }
  if (out.length !== n) {
    const done = new Set(out.map((r) => r.id));
    const stuck = resources.filter((r) => !done.has(r.id)).map((r) => r.id);
    throw new Error(`dependency cycle among ${stuck.join(', ')}`);
  }
  return out;
}

function describe(r: AnyResource): string {
  switch (r.kind) {
    case 'link':
      return `${r.spec.kind} mtu ${r.spec.mtu} ${r.spec.up ? 'up' : 'down'}`;
    case 'route':
      return `${r.spec.type === 'unicast' ? '' : r.spec.type + ' '}${r.spec.dst}${r.spec.dev ? ' dev ' + r.spec.dev : ''}${r.spec.ifscope ? ' ifscope ' + r.spec.ifscope : ''} table ${r.spec.table}`;
    case 'shaper':
      return [
        ...(r.spec.total !== undefined ? [`all ${formatRate(r.spec.total)}`] : []),
        ...r.spec.classes.map((k) => `${k.name} ${formatRate(k.rate)}`),
      ].join(', ');
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
  const late: AnyChange[] = [];

  // Make before break: a route no longer wanted whose destination no wanted route takes, and
  // whose link stays, goes after the creations, not before them. Traffic still on it keeps its
  // path until its successor is in place: an engine's packets to its old endpoint, whose
  // bypass route (macOS) must outlive the engine's move to the new one (an engine depends on
  // its bypass routes, so the new one comes first). A route that shares its destination with a
  // wanted one (another slot of the same prefix) still goes first, as before.
  // (Drivers do not always know deps: a route on a link this plan deletes is told by its dev.)
  const wantedDst = new Set(
    desired.resources
      .filter((r) => r.kind === 'route')
      .map((r) => `${r.spec.family}/${r.spec.dst}`),
  );
  const goneLinks = new Set(
    observed.resources.flatMap((r) => (r.kind === 'link' && !des.has(r.id) ? [r.spec.name] : [])),
  );
  const goesLate = (o: AnyResource): boolean =>
    o.kind === 'route' &&
    !wantedDst.has(`${o.spec.family}/${o.spec.dst}`) &&
    !(o.spec.dev && goneLinks.has(o.spec.dev)) &&
    (o.deps ?? []).every((d) => des.has(d));

  const obsOnly = observed.resources.filter((r) => !des.has(r.id));
  const deleteOrder = topoOrder(
    obsOnly.map((r) => ({ ...r, deps: r.deps ?? [] }) as AnyResource),
  ).reverse();
  for (const o of deleteOrder) {
    (goesLate(o) ? late : deletes).push({
      kind: o.kind,
      id: o.id,
      action: 'delete',
      before: o.spec,
      reason: last?.has(o.id) ? 'no longer in the config' : 'owned by awg but not desired',
      cause: causeFor(o.id, undefined),
    } as AnyChange);
  }

  // objects this plan creates or replaces: a firewall that depends on one is loaded again
  // after it (macOS binds the PF anchor's tunnel macros to the utun a starting engine gets)
  const renewed = new Set<string>();
  // objects this plan replaces: what depends on one went with it (a link of another kind takes
  // its addresses, routes and per-link settings along) and is made again after it
  const replaced = new Set<string>();
  for (const d of topoOrder(desired.resources)) {
    const o = obs.get(d.id);
    if (!o) {
      renewed.add(d.id);
      const what = describe(d);
      forward.push({
        kind: d.kind,
        id: d.id,
        action: 'create',
        after: d.spec,
        reason: last?.has(d.id) ? 'missing (deleted outside awg)' : what ? `new: ${what}` : 'new',
        cause: causeFor(d.id, d),
      } as AnyChange);
      continue;
    }
    if (specEqual(o.spec, d.spec)) {
      // an object as wanted that still has to be touched: no field differs
      const again = (action: 'update' | 'replace' | 'noop', reason: string) =>
        forward.push({
          kind: d.kind,
          id: d.id,
          action,
          before: o.spec,
          after: d.spec,
          ...(action !== 'noop' ? { fields: [] } : {}),
          reason,
          cause: causeFor(d.id, d),
        } as AnyChange);
      const dep = d.kind === 'firewall' ? d.deps.find((x) => renewed.has(x)) : undefined;
      if (dep) {
        again('update', `reload after ${dep} starts`);
        continue;
      }
      const gone = d.kind !== 'firewall' ? d.deps.find((x) => replaced.has(x)) : undefined;
      if (gone) {
        replaced.add(d.id);
        renewed.add(d.id);
        again('replace', `made again: ${gone} is replaced`);
        continue;
      }
      if (opts.includeNoop) again('noop', 'up to date');
      continue;
    }
    const fields = diffFields(
      o.spec as unknown as Record<string, unknown>,
      d.spec as unknown as Record<string, unknown>,
    );
    const replace =
      fields.some((f) => REPLACE_ON[d.kind].includes(f)) || d.deps.some((x) => replaced.has(x));
    if (replace) {
      renewed.add(d.id);
      replaced.add(d.id);
    }
    forward.push({
      kind: d.kind,
      id: d.id,
      action: replace ? 'replace' : 'update',
      before: o.spec,
      after: d.spec,
      fields,
      reason: `${fields.join(', ')} differ${replace ? ' (cannot change in place)' : ''}`,
      cause: causeFor(d.id, d),
    } as AnyChange);
  }
  return {
    changes: [...deletes, ...forward, ...late],
    foreign: observed.foreign,
    warnings: desired.warnings,
  };
}
