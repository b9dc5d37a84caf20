/** In-memory firewall driver with the real contract (see route/fake.ts). */
import { ids } from '../../model/identity.js';
import type { FirewallSpec } from '../../model/resources.js';
import { FakeDriver } from '../driver.fake.js';

export class FakeFirewallDriver extends FakeDriver<'firewall'> {
  constructor() {
    super('firewall', (f: FirewallSpec) => ids.firewall(f.table));
  }
}
