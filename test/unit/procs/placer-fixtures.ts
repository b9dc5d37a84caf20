/** Rules and the cgroup mount the placer tests share. */
import { Rule } from '../../../src/config/schema.js';

export const MOUNT = { mountPoint: '/sys/fs/cgroup/unified', root: '/' };
export const rule = (r: Record<string, unknown>) => Rule.parse(r);
export const WORK = rule({ name: 'work', match: { dir: '/opt/work' }, target: 'vpn' });
export const FF = rule({
  name: 'ff',
  match: { name: 'firefox' },
  target: 'vpn2',
  fallback: 'failover',
});
export const FF2 = rule({ name: 'ff2', match: { regex: 'fire' }, target: 'direct' });
