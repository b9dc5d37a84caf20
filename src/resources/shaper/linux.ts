/**
 * Linux shaper driver (model/shaping.ts, docs/limits.md): HTB trees on our TUNs and on our
 * ifbs, clsact redirects on the devices whose traffic they shape. Work in progress.
 */
import type { Exec } from '../../util/exec.js';
import { AwgError } from '../../errors.js';
import type { Driver } from '../driver.js';

export interface LinuxShaperOptions {
  exec: Pick<Exec, 'read'>;
}

export function createLinuxShaperDriver(_opts: LinuxShaperOptions): Driver<'shaper'> {
  return {
    kind: 'shaper',
    async observe() {
      return { resources: [], foreign: [] };
    },
    async apply(change) {
      if (change.action === 'noop') return 'unchanged';
      throw new AwgError('unsupported', `${change.id}: limits are not implemented yet`);
    },
  };
}
