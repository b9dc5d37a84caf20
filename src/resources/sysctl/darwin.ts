/**
 * The sysctl kind carries Linux keys (`net.ipv4.conf.*.rp_filter`, `src_valid_mark`) that
 * exist only for fwmark policy routing; macOS's sysctl namespace is different and awg does
 * not need to change any of it.
 */
import { unsupportedDarwinDriver } from '../unsupported-driver.js';

export const createDarwinSysctlDriver = () =>
  unsupportedDarwinDriver(
    'sysctl',
    'Linux sysctls (rp_filter, src_valid_mark) have no macOS counterpart; the macOS backend changes no sysctl',
  );
