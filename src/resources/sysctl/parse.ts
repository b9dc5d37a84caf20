/** Sysctl key → /proc/sys path, value normalisation. Pure. */
import { AwgError } from '../../errors.js';

/** `net.ipv4.conf.all.rp_filter` or `net/ipv4/conf/eth0.100/rp_filter` (slashes keep dots) */
export function sysctlPath(key: string): string {
  if (!/^[A-Za-z0-9_./-]+$/.test(key) || key.includes('..') || key.startsWith('/'))
    throw new AwgError('invalid-config', `bad sysctl key ${JSON.stringify(key)}`);
  return key.includes('/') ? key : key.replace(/\./g, '/');
}

/** multi-value sysctls print tab-separated; compare with single spaces */
export function normaliseSysctlValue(v: string): string {
  return v.trim().split(/\s+/).join(' ');
}
