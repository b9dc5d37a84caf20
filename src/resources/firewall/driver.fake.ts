/**
 * In-memory firewall driver with the real contract (see route/fake.ts). `listedAs` makes the
 * fake's "nft" print a loaded table in another form (as nft without /etc/protocols prints
 * `{ 6, 17 }` for `{ tcp, udp }`): observe returns the table so listed, and a load reads it
 * back like the Linux driver, throwing CommittedReadBackError when the listing differs from
 * the spec (the table stays loaded).
 */
import type { Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { FirewallSpec } from '../../model/resources.js';
import { CommittedReadBackError, type ApplyContext, type ApplyResult } from '../driver.js';
import { FakeDriver } from '../driver.fake.js';

export class FakeFirewallDriver extends FakeDriver<'firewall'> {
  constructor(private readonly listedAs: (ruleset: string) => string = (r) => r) {
    super('firewall', (f: FirewallSpec) => ids.firewall(f.table));
  }

  override async observe(scope: Parameters<FakeDriver<'firewall'>['observe']>[0]) {
    const r = await super.observe(scope);
    for (const x of r.resources) x.spec = { ...x.spec, ruleset: this.listedAs(x.spec.ruleset) };
    return r;
  }

  protected override applyOne(change: Change<'firewall'>, ctx: ApplyContext): ApplyResult {
    // the kernel holds the table as loaded; what is compared is its listing
    const have = this.objects.get(change.id);
    if (change.after && have && this.listedAs(have.ruleset) === change.after.ruleset)
      return 'unchanged';
    const r = super.applyOne(change, ctx);
    const loaded = this.objects.get(change.id);
    if (change.after && loaded && !ctx.dryRun) {
      const listed = this.listedAs(loaded.ruleset);
      if (listed !== change.after.ruleset)
        throw new CommittedReadBackError(
          change.id,
          `fake firewall: table ${change.after.table} reads back differently`,
        );
    }
    return r;
  }
}
