/**
 * In-memory address driver with the real contract (generic FakeDriver). Given the fake
 * link driver it behaves like the kernel: adding to a missing link fails (except under
 * dry-run), and addresses vanish when their link is deleted.
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { AddressSpec } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { ApplyContext, ApplyResult, ObserveResult, ObserveScope } from '../driver.js';
import { FakeDriver } from '../driver.fake.js';
import type { FakeLinkDriver } from '../link/driver.fake.js';

export class FakeAddressDriver extends FakeDriver<'address'> {
  constructor(private readonly links?: FakeLinkDriver) {
    super('address', (a: AddressSpec) => ids.address(a));
  }

  override async observe(scope: ObserveScope): Promise<ObserveResult<'address'>> {
    if (this.links) {
      for (const [id, a] of this.objects) if (!this.links.has(a.link)) this.objects.delete(id);
    }
    const o = await super.observe(scope);
    return { ...o, resources: o.resources.map((r) => ({ ...r, deps: [ids.link(r.spec.link)] })) };
  }

  protected override applyOne(change: Change<'address'>, ctx: ApplyContext): ApplyResult {
    const a = change.after;
    if (a && change.action !== 'delete' && this.links && !this.links.has(a.link) && !ctx.dryRun) {
      throw new AwgError('driver', `link ${a.link} does not exist; cannot add ${a.cidr}`);
    }
    return super.applyOne(change, ctx);
  }
}
