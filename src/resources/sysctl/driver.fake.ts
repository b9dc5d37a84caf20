/** In-memory sysctl driver with the real contract (see route/fake.ts). */
import { ids } from '../../model/identity.js';
import type { SysctlSpec } from '../../model/resources.js';
import { FakeDriver } from '../driver.fake.js';

export class FakeSysctlDriver extends FakeDriver<'sysctl'> {
  constructor() {
    super('sysctl', (s: SysctlSpec) => ids.sysctl(s.key));
  }
}
