/** The route fake: the generic fake plus the batch path of the Linux driver. */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { RouteSpec } from '../../model/resources.js';
import type { ApplyContext, ApplyResult } from '../driver.js';
import { FakeDriver } from '../driver.fake.js';

export class FakeRouteDriver extends FakeDriver<'route'> {
  constructor() {
    super('route', (r: RouteSpec) => ids.route(r));
  }
  /** same contract as the Linux batch path: one call, per-change results */
  async applyBatch(changes: Change<'route'>[], ctx: ApplyContext): Promise<ApplyResult[]> {
    const out: ApplyResult[] = [];
    for (const c of changes) out.push(await this.apply(c, ctx));
    return out;
  }
}
