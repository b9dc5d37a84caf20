/** The plan's unit of work. Pure data; rendered by `awg diff`, executed by `awg apply`. */
import type { ResourceKind, SpecByKind } from './resources.js';

export type Action = 'create' | 'update' | 'replace' | 'delete' | 'noop';

/**
 * Why a change is needed:
 * - `config`: the desired state changed since the last successful apply;
 * - `drift`: the desired state is what we last applied, but the system no longer matches it
 *   (someone or something changed the machine);
 * - `initial`: nothing was applied before (no record in the state directory).
 */
export type Cause = 'config' | 'drift' | 'initial';

export interface Change<K extends ResourceKind = ResourceKind> {
  kind: K;
  id: string;
  action: Action;
  before?: SpecByKind[K];
  after?: SpecByKind[K];
  /** human sentence: what differs */
  reason: string;
  cause: Cause;
  /** for update/replace: the top-level spec fields that differ */
  fields?: string[];
}

export type AnyChange = { [K in ResourceKind]: Change<K> }[ResourceKind];

export interface Plan {
  changes: AnyChange[];
  /** conflicts and competing owners found while observing */
  foreign: import('./resources.js').ForeignObject[];
  warnings: string[];
}

export function hasChanges(p: Plan): boolean {
  return p.changes.some((c) => c.action !== 'noop');
}

/**
 * The halves of a replace a driver carries out as a delete then a create (the object moves:
 * another DNS scope, sysctl key or engine host). Each half leaves out the other side's spec.
 */
export function deleteHalf<K extends ResourceKind>(c: Change<K>): Change<K> {
  const { after: _after, ...rest } = c;
  return { ...rest, action: 'delete' };
}

export function createHalf<K extends ResourceKind>(c: Change<K>): Change<K> {
  const { before: _before, ...rest } = c;
  return { ...rest, action: 'create' };
}
