/**
 * Linux sysctl driver: plain file I/O under /proc/sys (the daemon runs in the network
 * namespace it manages, and net.* sysctls are per namespace of the reading process).
 *
 * Ownership by record: the first time awg changes a key, the original value is saved in the
 * StateStore (`sysctl-originals`); observe reports exactly those keys; delete writes the
 * original back and forgets it. A key already at the wanted value is recorded too (its
 * original is the current value), so the next plan sees it as ours and in place.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deleteHalf, type Change } from '../../model/change.js';
import { ids } from '../../model/identity.js';
import type { Resource } from '../../model/resources.js';
import { AwgError } from '../../errors.js';
import type { StateStore } from '../../util/state.js';
import type { Driver, ObserveResult, ObserveScope } from '../driver.js';
import { normaliseSysctlValue, sysctlPath } from './parse.js';

export { normaliseSysctlValue, sysctlPath };

export const SYSCTL_STATE_KEY = 'sysctl-originals';

export interface SysctlIo {
  /** undefined when the key does not exist (e.g. a per-link key of a missing link) */
  read(key: string): Promise<string | undefined>;
  write(key: string, value: string): Promise<void>;
}

export function procSysIo(root = '/proc/sys'): SysctlIo {
  return {
    async read(key) {
      try {
        return normaliseSysctlValue(await readFile(join(root, sysctlPath(key)), 'utf8'));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return undefined;
        throw new AwgError(
          code === 'EACCES' || code === 'EPERM' ? 'permission' : 'driver',
          `cannot read sysctl ${key}: ${(e as Error).message}`,
          { cause: e },
        );
      }
    },
    async write(key, value) {
      try {
        await writeFile(join(root, sysctlPath(key)), value + '\n');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new AwgError(
          code === 'EACCES' || code === 'EPERM' ? 'permission' : 'driver',
          `cannot write sysctl ${key}=${value}: ${(e as Error).message}`,
          { cause: e },
        );
      }
    },
  };
}

type Originals = Record<string, string>;
const originals = (s: StateStore): Originals => s.get<Originals>(SYSCTL_STATE_KEY) ?? {};
function saveOriginals(s: StateStore, o: Originals): void {
  if (Object.keys(o).length) s.set(SYSCTL_STATE_KEY, o);
  else s.delete(SYSCTL_STATE_KEY);
}

export function createLinuxSysctlDriver(opts: { io?: SysctlIo } = {}): Driver<'sysctl'> {
  const io = opts.io ?? procSysIo();
  return {
    kind: 'sysctl',
    async observe(scope: ObserveScope): Promise<ObserveResult<'sysctl'>> {
      const resources: Resource<'sysctl'>[] = [];
      for (const key of Object.keys(originals(scope.state)).sort()) {
        const value = await io.read(key);
        if (value !== undefined)
          resources.push({ kind: 'sysctl', id: ids.sysctl(key), spec: { key, value }, deps: [] });
      }
      return { resources, foreign: [] };
    },

    async apply(change: Change<'sysctl'>, ctx) {
      if (change.action === 'noop') return 'unchanged';
      const held = originals(ctx.state);
      if (change.action === 'delete') {
        const key = change.before?.key;
        if (key === undefined) throw new AwgError('bug', `delete ${change.id} without before`);
        const orig = held[key];
        if (orig === undefined) return 'unchanged';
        const cur = await io.read(key);
        let changed = false;
        if (cur !== undefined && cur !== orig) {
          changed = true;
          if (ctx.exec.record(`sysctl -w ${key}=${orig}`)) await io.write(key, orig);
        }
        if (!ctx.dryRun) {
          delete held[key];
          saveOriginals(ctx.state, held);
        }
        return changed ? 'changed' : 'unchanged';
      }
      const after = change.after;
      if (!after) throw new AwgError('bug', `${change.action} ${change.id} without after`);
      let changed = false;
      if (change.action === 'replace' && change.before && change.before.key !== after.key) {
        changed = (await this.apply(deleteHalf(change), ctx)) === 'changed';
      }
      const want = normaliseSysctlValue(after.value);
      const cur = await io.read(after.key);
      if (cur === undefined)
        throw new AwgError('driver', `sysctl ${after.key} does not exist (yet)`);
      if (!ctx.dryRun && held[after.key] === undefined) {
        // saved before the write: a crash in between still leaves the original on record
        saveOriginals(ctx.state, { ...originals(ctx.state), [after.key]: cur });
      }
      if (cur === want) return changed ? 'changed' : 'unchanged';
      if (ctx.exec.record(`sysctl -w ${after.key}=${want}`)) await io.write(after.key, want);
      return 'changed';
    },
  };
}
