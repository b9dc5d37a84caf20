/**
 * Leave the host as if awg had never run: remove every owned object (reconciler/teardown.ts)
 * and forget the applied record. With the kill switch kept (a daemon stopping with it on),
 * the firewall and its cgroups stay and so does the record, so the next start adopts them.
 */
import { removeOwned, type RemoveResult } from '../reconciler/teardown.js';
import type { ReconcileEnv } from '../reconciler/observe.js';
import type { AppliedStore } from './applied.js';

export async function teardown(
  env: ReconcileEnv,
  applied: AppliedStore,
  o: { keepKillSwitch?: boolean } = {},
): Promise<RemoveResult> {
  const r = await removeOwned(env, o);
  if (!env.exec.dryRun && r.left.length === 0 && r.kept.length === 0) applied.clear();
  return r;
}
