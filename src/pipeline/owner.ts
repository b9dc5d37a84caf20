/**
 * Taking ownership of this host before changing it (resources/owner-lock.ts): the lock, the
 * check that no other state directory's objects are here, and the clean-up only the owner may
 * do (temporary files a killed write left in the state directory).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Platform } from '../resources/registry.js';
import {
  acquireOwner,
  describeOwner,
  type OwnerCommand,
  type OwnerLock,
  type OwnerNatives,
} from '../resources/owner-lock.js';
import { FileStateStore, APPLIED_STATE_KEY } from '../util/state.js';
import { stateDirFrom } from './host.js';

export interface OwnershipOptions {
  command: OwnerCommand;
  /** `--state-dir` (default $AWG_STATE_DIR, then the platform's) */
  stateDir?: string | undefined;
  socket?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  /** a short-lived holder is waited for this long (default 30 s) */
  waitMs?: number | undefined;
  /** warnings: a lock taken over from a holder that died, temporary files removed */
  warn: (message: string) => void;
}

/**
 * The lock for `o.command` on this host, through `natives` (a test passes its own; the
 * platform's otherwise). Throws AwgError('conflict') naming the other owner.
 */
export async function takeOwnership(
  natives: OwnerNatives | Pick<Platform, 'ownerNatives'>,
  o: OwnershipOptions,
): Promise<OwnerLock> {
  const n = 'ownerNatives' in natives ? await natives.ownerNatives() : natives;
  const env = o.env ?? process.env;
  const stateDir = stateDirFrom(o.stateDir, env);
  const lock = await acquireOwner({
    natives: n,
    command: o.command,
    stateDir,
    socket: o.socket,
    runDir: env.AWG_RUN_DIR,
    waitMs: o.waitMs,
    hasApplied: (dir) => existsSync(join(dir, `${APPLIED_STATE_KEY}.json`)),
    onTakeover: (p) =>
      o.warn(`took over from ${describeOwner(p)}, which ended without letting go (a crash?)`),
  });
  const gone = new FileStateStore(stateDir).sweepTemps();
  if (gone.length)
    o.warn(`removed ${gone.length} temporary file(s) an interrupted write left in ${stateDir}`);
  return lock;
}
