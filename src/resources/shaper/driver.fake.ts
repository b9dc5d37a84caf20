/**
 * In-memory shaper driver with the real contract (built on the generic FakeDriver): trees in
 * a Map by `shaper/<device>/<direction>`, idempotent apply, mutations recorded through
 * ctx.exec. `addForeign(device)` simulates a clsact the user made on that device: observe
 * reports both directions as conflicts and apply refuses to build there, like the Linux driver.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { ShaperSpec } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { ApplyContext, ApplyResult } from '../driver.js';
import { FakeDriver } from '../driver.fake.js';

export class FakeShaperDriver extends FakeDriver<'shaper'> {
  private readonly foreignDevices = new Set<string>();

  constructor() {
    super('shaper', (s: ShaperSpec) => ids.shaper(s));
  }

  addForeign(device: string): this {
    this.foreignDevices.add(device);
    for (const direction of ['egress', 'ingress'] as const)
      this.foreign.push({
        kind: 'shaper',
        id: ids.shaper({ device, direction }),
        relation: 'conflict',
        description: `${device} has a clsact qdisc awg did not create; awg will not touch it`,
      });
    return this;
  }

  protected override applyOne(change: Change<'shaper'>, ctx: ApplyContext): ApplyResult {
    const a = change.after;
    if (a?.ifb !== undefined && change.action !== 'delete' && this.foreignDevices.has(a.device))
      throw new AwgError(
        'conflict',
        `${change.id}: ${a.device} has a clsact qdisc awg did not create`,
      );
    return super.applyOne(change, ctx);
  }
}
