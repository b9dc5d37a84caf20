/** cgroups do not exist on macOS. */
import { PER_APP_ON_DARWIN, unsupportedDarwinDriver } from '../unsupported-driver.js';

export const createDarwinCgroupDriver = () =>
  unsupportedDarwinDriver('cgroup', `cgroups are Linux-only: ${PER_APP_ON_DARWIN}`);
