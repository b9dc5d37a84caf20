/** In-memory DNS driver with the real contract (see route/fake.ts). */
import { ids } from '../../model/identity.js';
import type { DnsSpec } from '../../model/resources.js';
import { FakeDriver } from '../driver.fake.js';

export class FakeDnsDriver extends FakeDriver<'dns'> {
  constructor() {
    super('dns', (d: DnsSpec) => ids.dns(d.scope));
  }
}
