/**
 * The `fleet:` section: how a host that follows a repository (docs/fleet.md, "Rollouts")
 * takes a new revision. `verify` is the check after the apply: within `within`, the tunnels
 * named are up and every `reach` target answers a TCP connect; a revision that fails it is
 * reverted and rejected (src/daemon/revision-gate.ts decides, revision-watch.ts acts).
 * The rollout keys before the apply (waves, halt) come from schema-fleet-rollout.ts. Semantic
 * checks (names exist, bounds) in semantic-fleet.ts. Pure.
 */
import * as z from 'zod';
import { splitHostPort } from './schema-health.js';
import { fleetRolloutShape } from './schema-fleet-rollout.js';
import { Duration } from './schema-rules.js';
import { Text } from './schema-values.js';

/** the bounds of `verify.within` (semantic-fleet.ts) */
export const MIN_VERIFY_MS = 1000;
export const MAX_VERIFY_MS = 3_600_000;
export const DEFAULT_VERIFY_WITHIN = '60s';

/** `tcp:host:port` → host and port; undefined when it is not one */
export function tcpTarget(s: string): { host: string; port: number } | undefined {
  return s.startsWith('tcp:') ? splitHostPort(s.slice(4)) : undefined;
}

export const ReachTarget = Text()
  .refine(
    (s) => s === 'git' || tcpTarget(s) !== undefined,
    'must be "git" or "tcp:host:port" (IPv6: tcp:[addr]:port)',
  )
  .meta({
    id: 'ReachTarget',
    description:
      "`git`: the host and port of the followed checkout's remote (ssh://, user@host:path, https://, git://; a file:// or local remote is not checked). `tcp:host:port`: a TCP connect to it. The daemon connects as an ordinary process: the connection follows the config's rules and kill switch, as the next pull would.",
  });

export const FleetVerify = z
  .strictObject({
    within: Duration.default(DEFAULT_VERIFY_WITHIN).meta({
      description:
        'How long a new revision has to pass the check after it converged (1s to 1h). Failing it reverts to the last good revision.',
    }),
    tunnels: z
      .union([z.literal('all'), z.array(Text())], {
        error: 'must be "all" or a list of tunnel names',
      })
      .default('all')
      .meta({
        description:
          '`all`: every tunnel of the new revision that was up before the apply must be up again. A list: these tunnels must be up (each must be a tunnel of the config).',
      }),
    reach: z.array(ReachTarget).default(['git']).meta({
      description:
        'Targets that must answer a TCP connect. Default `[git]`: the repository the next fix comes from stays reachable. `[]`: no reach check.',
    }),
  })
  .default({ within: DEFAULT_VERIFY_WITHIN, tunnels: 'all', reach: ['git'] })
  .meta({
    id: 'FleetVerify',
    description:
      'The health check of a new revision after its apply (only when the daemon follows a config in a git checkout).',
  });
export type FleetVerify = z.infer<typeof FleetVerify>;

export const Fleet = z
  .strictObject({
    verify: FleetVerify,
    ...fleetRolloutShape,
  })
  .meta({
    id: 'Fleet',
    description:
      'How a host following a repository takes a new revision (docs/fleet.md, "Rollouts" and "The rollout model"): when its wave lets it (waves, halt) and the check after the apply (verify). Only the daemon following a git checkout acts on it; without `fleet:`, the defaults apply.',
  });
export type Fleet = z.infer<typeof Fleet>;

/** the verify settings of a config (its defaults when the config has no `fleet:`) */
export function verifyOf(fleet: Fleet | undefined): FleetVerify {
  return fleet?.verify ?? FleetVerify.parse(undefined);
}
