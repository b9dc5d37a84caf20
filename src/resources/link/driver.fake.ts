/**
 * In-memory link driver with the real contract (built on the generic FakeDriver): state in a
 * Map, idempotent apply, mutations recorded through ctx.exec, `failOn(n)` injects a failure
 * on the n-th apply. `addForeign(name)` simulates an unmarked `awg-*` link: observe reports
 * it as a conflict and apply refuses to touch it, like the Linux driver.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { LinkSpec } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { ApplyContext, ApplyResult } from '../driver.js';
import { FakeDriver } from '../driver.fake.js';

export class FakeLinkDriver extends FakeDriver<'link'> {
  private readonly foreignNames = new Set<string>();

  constructor() {
    super('link', (l: LinkSpec) => ids.link(l.name));
  }

  addForeign(name: string, reason = 'it has no awg:managed alias'): this {
    this.foreignNames.add(name);
    this.foreign.push({
      kind: 'link',
      id: ids.link(name),
      relation: 'conflict',
      description: `link ${name} has our name prefix but is not ours (${reason}); awg will not touch it`,
    });
    return this;
  }

  /** whether link `name` exists and is ours */
  has(name: string): boolean {
    return this.objects.has(ids.link(name));
  }

  protected override applyOne(change: Change<'link'>, ctx: ApplyContext): ApplyResult {
    const name = change.after?.name;
    if (name !== undefined && change.action !== 'delete' && this.foreignNames.has(name)) {
      throw new AwgError('conflict', `link ${name} exists but is not ours; not touching it`);
    }
    return super.applyOne(change, ctx);
  }
}
