/** Policy-routing rules (`ip rule`) do not exist on macOS. */
import { PER_APP_ON_DARWIN, unsupportedDarwinDriver } from '../unsupported-driver.js';

export const createDarwinRuleDriver = () =>
  unsupportedDarwinDriver('rule', `ip rules are Linux-only: ${PER_APP_ON_DARWIN}`);
