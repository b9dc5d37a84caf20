/** In-memory rule driver with the real contract (see route/fake.ts). */
import { ids } from '../../model/identity.js';
import type { RuleSpec } from '../../model/resources.js';
import { FakeDriver } from '../driver.fake.js';

export class FakeRuleDriver extends FakeDriver<'rule'> {
  constructor() {
    super('rule', (r: RuleSpec) => ids.rule(r));
  }
}
