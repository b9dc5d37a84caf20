/**
 * `fleet:` — how a host that follows a repository takes new revisions (docs/fleet.md). The
 * rollout keys (waves, halt) come from schema-fleet-rollout.ts.
 */
import * as z from 'zod';
import { fleetRolloutShape } from './schema-fleet-rollout.js';

export const Fleet = z.strictObject({ ...fleetRolloutShape }).meta({
  id: 'Fleet',
  description:
    'How new revisions of a followed repository reach this host (docs/fleet.md "The rollout model"). Only the daemon following a git checkout acts on it.',
});
export type Fleet = z.infer<typeof Fleet>;
