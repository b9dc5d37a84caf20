/**
 * The document `awg status --json` prints, as a zod schema: the source of
 * schema/status.schema.json (scripts/schemas.ts). Two views: `source: daemon` (the daemon's
 * state, tunnels, rules, what it follows) and `source: direct` (this host read directly:
 * owned objects, drift against the last apply, traffic counters). Tests parse real outputs
 * of both with it (test/unit/daemon/status-document.test.ts, test/netns/fleet.test.ts).
 */
import * as z from 'zod';
import { DAEMON_STATES } from './core.js';

const Count = z.number().int().min(0);
const Traffic = z.strictObject({
  rxPackets: Count,
  rxBytes: Count,
  txPackets: Count,
  txBytes: Count,
});
const RuleCounter = z.strictObject({
  name: z.string(),
  target: z.string(),
  route: z.string(),
  txPackets: Count,
  txBytes: Count,
  rxPackets: Count,
  rxBytes: Count,
  connections: Count.optional().meta({
    description:
      "macOS: the rule's TCP connections through the flow router; present, the bytes are those connections' payload and the packets are not counted (0)",
  }),
});
const ErrorInfo = z.strictObject({ kind: z.string(), message: z.string() });

export const ConfigStateDoc = z
  .strictObject({
    revision: z.string().optional().meta({
      description:
        'git commit of the checkout holding the applied (last good) config, when it is in one',
    }),
    valid: z.boolean().meta({
      description:
        'the config as it is on disk now is valid (false: the last good one keeps running)',
    }),
    error: z.string().optional(),
    sources: z
      .array(z.string())
      .optional()
      .meta({ description: 'the files of the applied config: the config, then the overlay files' }),
    host: z.string().optional().meta({
      description: 'the host name overlays are selected for (when the daemon was given one)',
    }),
    lastConverged: z.string().optional().meta({
      description: 'end of the last run that left the host matching the config (ISO 8601)',
    }),
    lastPlanChanges: Count.meta({ description: "changes in the last run's plan" }),
    checkoutRevision: z.string().optional().meta({
      description:
        'git commit of the checkout now (differs from revision while a newer commit is invalid)',
    }),
  })
  .meta({ id: 'ConfigState' });

const Tunnel = z.strictObject({
  name: z.string(),
  type: z.string(),
  link: z.string().optional(),
  up: z.boolean(),
  health: z.enum(['connecting', 'up', 'down', 'auth-failed']).optional(),
  error: z.string().optional(),
  lastHandshakeAgeSec: z.number().optional(),
  rxBytes: Count,
  txBytes: Count,
  peers: z.array(
    z.strictObject({
      publicKey: z.string(),
      endpoint: z.string().optional(),
      lastHandshakeAgeSec: z.number().optional(),
      rxBytes: Count,
      txBytes: Count,
    }),
  ),
  connectionsActive: Count.optional(),
  connectionsTotal: Count.optional(),
  dialErrors: Count.optional(),
  linkTraffic: Traffic.optional(),
});

export const DaemonStatusDoc = z
  .strictObject({
    source: z.literal('daemon'),
    state: z.enum(DAEMON_STATES),
    config: z.string().optional().meta({ description: 'the config file the daemon follows' }),
    configState: ConfigStateDoc.optional(),
    lastReconcile: z
      .strictObject({
        at: z.string(),
        outcome: z.string(),
        durationMs: z.number(),
        error: ErrorInfo.optional(),
      })
      .optional(),
    objects: z.array(z.strictObject({ kind: z.string(), id: z.string() })),
    tunnels: z.array(Tunnel),
    confirmDeadline: z.string().optional(),
    placement: z
      .strictObject({
        state: z.enum(['active', 'unavailable', 'off']),
        reason: z.string().optional(),
        execs: Count,
        placed: Count,
        errors: Count,
        mode: z.enum(['gated', 'best-effort']).optional(),
        modeReason: z.string().optional(),
        gateMarks: z.array(z.string()).optional(),
      })
      .optional(),
    rules: z.array(RuleCounter).optional(),
  })
  .meta({ id: 'DaemonStatus', description: 'Through the awg daemon (the default when it runs).' });

export const DirectStatusDoc = z
  .strictObject({
    source: z.literal('direct'),
    state: z.enum(['converged', 'drifted', 'down', 'unmanaged-leftovers']),
    config: z.string().optional().meta({ description: 'the config file of the last apply' }),
    appliedAt: z.string().optional(),
    objects: z.array(
      z.strictObject({ kind: z.string(), id: z.string(), spec: z.record(z.string(), z.unknown()) }),
    ),
    drift: z.array(z.strictObject({ id: z.string(), action: z.string(), reason: z.string() })),
    foreign: z.array(z.record(z.string(), z.unknown())),
    traffic: z.strictObject({
      rules: z.array(RuleCounter),
      tunnels: z.array(z.strictObject({ tunnel: z.string(), link: z.string(), ...Traffic.shape })),
    }),
  })
  .meta({
    id: 'DirectStatus',
    description: 'Read from this host directly (`--direct`, or no daemon running).',
  });

export const StatusDocument = z
  .discriminatedUnion('source', [DaemonStatusDoc, DirectStatusDoc])
  .meta({
    id: 'AwgStatus',
    title: 'awg status --json',
    description: 'What `awg status --json` prints: exit 0 converged, 2 otherwise.',
  });
export type StatusDocument = z.infer<typeof StatusDocument>;
