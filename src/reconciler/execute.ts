/**
 * Run a plan through the drivers, in plan order. Consecutive changes of a kind whose driver
 * offers `applyBatch` (routes: one `ip -batch`) go in one call. Stops at the first error and
 * reports which changes completed, so the caller can roll back from the observation it
 * took before applying.
 */
import { AwgError, toAwgError } from '../errors.js';
import type { AnyChange, Change } from '../model/change.js';
import type { ResourceKind } from '../model/resources.js';
import type { ApplyContext, ApplyResult, Driver, DriverSet } from '../resources/driver.js';
import { crashPoint, withChange } from '../util/crash-point.js';

export interface BatchDriver<K extends ResourceKind> extends Driver<K> {
  applyBatch?(changes: Change<K>[], ctx: ApplyContext): Promise<ApplyResult[]>;
}

export interface ExecuteResult {
  done: AnyChange[];
  changed: number;
  /** `group`: the changes sent together with the failing one (a batch); none of them counts as done */
  failed?: { change: AnyChange; error: AwgError; group: AnyChange[] };
}

export async function executeChanges(
  changes: AnyChange[],
  drivers: Partial<DriverSet>,
  ctx: ApplyContext,
  signal?: AbortSignal,
): Promise<ExecuteResult> {
  const work = changes.filter((c) => c.action !== 'noop');
  const done: AnyChange[] = [];
  let changed = 0;
  let i = 0;
  while (i < work.length) {
    if (signal?.aborted) throw new AwgError('driver', 'apply aborted');
    const c = work[i]!;
    const driver = drivers[c.kind] as BatchDriver<ResourceKind> | undefined;
    if (!driver)
      return {
        done,
        changed,
        failed: {
          change: c,
          error: new AwgError('unsupported', `no driver for ${c.kind} on this platform`),
          group: [c],
        },
      };
    let j = i + 1;
    if (driver.applyBatch) while (j < work.length && work[j]!.kind === c.kind) j++;
    const group = work.slice(i, j);
    const point = `apply:${c.id}:${c.action}${group.length > 1 ? `+${group.length - 1}` : ''}`;
    crashPoint(`${point}:before`);
    withChange(c.id);
    try {
      if (group.length > 1 && driver.applyBatch) {
        const rs = await driver.applyBatch(group as Change<ResourceKind>[], ctx);
        changed += rs.filter((r) => r === 'changed').length;
      } else {
        if ((await driver.apply(c as Change<ResourceKind>, ctx)) === 'changed') changed++;
      }
      done.push(...group);
    } catch (e) {
      return { done, changed, failed: { change: c, error: toAwgError(e, 'driver'), group } };
    } finally {
      withChange(undefined);
    }
    crashPoint(`${point}:after`);
    i = j;
  }
  return { done, changed };
}

/**
 * Execute every change, continuing past failures (rollback, teardown). Batches are kept;
 * a failed batch is retried change by change so one bad object does not strand the rest.
 */
export async function executeBestEffort(
  changes: AnyChange[],
  drivers: Partial<DriverSet>,
  ctx: ApplyContext,
): Promise<{ changed: number; errors: AwgError[] }> {
  const errors: AwgError[] = [];
  let changed = 0;
  let rest = changes.filter((c) => c.action !== 'noop');
  while (rest.length) {
    const r = await executeChanges(rest, drivers, ctx);
    changed += r.changed;
    if (!r.failed) break;
    const group = r.failed.group;
    if (group.length > 1) {
      for (const c of group) {
        const one = await executeChanges([c], drivers, ctx);
        changed += one.changed;
        if (one.failed) errors.push(one.failed.error);
      }
    } else errors.push(r.failed.error);
    const last = rest.indexOf(group[group.length - 1]!);
    rest = rest.slice(last + 1);
  }
  return { changed, errors };
}
