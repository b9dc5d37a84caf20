/**
 * Test double (excluded from the build, tsconfig.build.json): in-memory drivers with the real
 * contract, for reconciler and daemon tests. `FakeDriver` is generic (every kind's fake builds
 * on it): apply of an object already in place is 'unchanged' with no mutation; every real
 * change is recorded through `ctx.exec.record` (counted, dry-run aware); `failOn(n)` makes the
 * n-th apply call (1-based, counted over the fake's lifetime) throw.
 */
import type { Change } from '../model/change.js';
import type { ForeignObject, Resource, ResourceKind, SpecByKind } from '../model/resources.js';
import { AwgError, type ErrorKind } from '../errors.js';
import { specEqual } from '../util/canonical.js';
import type { ApplyContext, ApplyResult, Driver, ObserveResult, ObserveScope } from './driver.js';

export class FakeDriver<K extends ResourceKind> implements Driver<K> {
  readonly objects = new Map<string, SpecByKind[K]>();
  readonly foreign: ForeignObject[] = [];
  facts: Record<string, unknown> = {};
  applyCalls = 0;
  readonly applied: Change<K>[] = [];
  private readonly failures = new Map<number, ErrorKind>();

  constructor(
    readonly kind: K,
    private readonly idOf: (spec: SpecByKind[K]) => string,
  ) {}

  /** put an object in place without a mutation (initial system state) */
  seed(...specs: SpecByKind[K][]): this {
    for (const s of specs) this.objects.set(this.idOf(s), structuredClone(s));
    return this;
  }

  /** the n-th apply call (1-based, lifetime count) throws AwgError(kind) */
  failOn(n: number, kind: ErrorKind = 'driver'): this {
    this.failures.set(n, kind);
    return this;
  }

  async observe(_scope: ObserveScope): Promise<ObserveResult<K>> {
    const resources: Resource<K>[] = [...this.objects.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, spec]) => ({ kind: this.kind, id, spec: structuredClone(spec), deps: [] }));
    return { resources, foreign: [...this.foreign], facts: { ...this.facts } };
  }

  async apply(change: Change<K>, ctx: ApplyContext): Promise<ApplyResult> {
    this.applyCalls++;
    const fail = this.failures.get(this.applyCalls);
    if (fail)
      throw new AwgError(
        fail,
        `fake ${this.kind}: injected failure on apply #${this.applyCalls} (${change.id})`,
      );
    this.applied.push(change);
    return this.applyOne(change, ctx);
  }

  protected applyOne(change: Change<K>, ctx: ApplyContext): ApplyResult {
    if (change.action === 'noop') return 'unchanged';
    if (change.action === 'delete') {
      const id = change.before ? this.idOf(change.before) : change.id;
      if (!this.objects.has(id)) return 'unchanged';
      if (ctx.exec.record(`fake ${this.kind} delete ${id}`)) this.objects.delete(id);
      return 'changed';
    }
    if (!change.after)
      throw new AwgError('bug', `fake ${this.kind}: ${change.action} ${change.id} without after`);
    let changed = false;
    if (change.action === 'replace' && change.before) {
      const old = this.idOf(change.before);
      if (old !== this.idOf(change.after) && this.objects.has(old)) {
        if (ctx.exec.record(`fake ${this.kind} delete ${old}`)) this.objects.delete(old);
        changed = true;
      }
    }
    const id = this.idOf(change.after);
    if (specEqual(this.objects.get(id), change.after)) return changed ? 'changed' : 'unchanged';
    if (ctx.exec.record(`fake ${this.kind} ${this.objects.has(id) ? 'update' : 'create'} ${id}`))
      this.objects.set(id, structuredClone(change.after));
    return 'changed';
  }
}
