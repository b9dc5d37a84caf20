/**
 * The daemon's status, as zod schemas: the one definition of it. `DaemonStatus` is what the
 * daemon answers (core.ts's StatusResponse and its parts are its types; the proto's
 * StatusResponse has the same fields, which test/unit/daemon/wire-definition.test.ts checks),
 * and the document `awg status --json` prints is built from it, the source of
 * schema/status.schema.json (scripts/schemas.ts). Two views: `source: daemon` (the daemon's
 * state, tunnels, rules, what it follows) and `source: direct` (this host read directly:
 * owned objects, drift against the last apply, traffic counters). Tests parse real outputs
 * of both with it (test/unit/daemon/status-document.test.ts, test/netns/fleet.test.ts).
 *
 * Comments on fields that are not `.meta()` descriptions stay out of the JSON Schema.
 */
import * as z from 'zod';
import {
  DAEMON_STATES,
  DOWN_REASONS,
  LIST_STATES,
  PLACEMENT_MODES,
  PLACEMENT_STATES,
  ROLLOUT_HOLDS,
  TUNNEL_HEALTH,
} from './names.js';
import type { PlacementErrorKind } from '../procs/placement-errors.js';

const Count = z.number().int().min(0);
/** the kernel's counters of a TUN link (IFLA_STATS64): inner IP packets, headers included */
const Traffic = z.strictObject({
  rxPackets: Count,
  rxBytes: Count,
  txPackets: Count,
  txBytes: Count,
});
/**
 * per-rule traffic: the firewall's counters of the rule's cgroup, i.e. the total of every
 * process in it (the kernel counts per socket cgroup, not per process). tx: packets the rule's
 * sockets send (counted before routing, whatever the route: tunnel, direct or dropped); rx:
 * packets delivered to them (input hook). Bytes are IP packet lengths (IP header included, no
 * tunnel encapsulation).
 */
/**
 * A destination set of a rule (`to:`): its route_out line's counter and its entries. Its
 * packets are the rule's packets to destinations in the set (a part of the rule's tx).
 */
const RuleSet = z.strictObject({
  name: z
    .string()
    .meta({ description: 'nft set: `d4_/d6_<rule>` static, `l4_/l6_<rule>` learned' }),
  kind: z.enum(['static', 'learned']),
  elements: Count.optional().meta({
    description:
      'entries in the set: static, the count it was loaded with; learned, the addresses it holds now (absent: not read)',
  }),
  packets: Count,
  bytes: Count,
});
const RuleCounter = z.strictObject({
  name: z.string(),
  target: z.string(),
  route: z.string(),
  txPackets: Count,
  txBytes: Count,
  rxPackets: Count,
  rxBytes: Count,
  // absent (Linux): all four are the rule cgroup's IP packets and bytes
  connections: Count.optional().meta({
    description:
      "macOS: the rule's TCP connections through the flow router; present, the bytes are those connections' payload and the packets are not counted (0)",
  }),
  sets: z.array(RuleSet).optional().meta({
    description: 'Linux, rules with destinations (`to:`): per set, its hits and entries',
  }),
  learned: Count.optional().meta({
    description:
      'rules with `to.domains`: addresses learned from DNS answers that the rule holds now',
  }),
  learnedNames: Count.optional().meta({
    description:
      'rules with `to.domains`: names whose answers the DNS stub learned from (when it reports them)',
  }),
});
const ErrorInfo = z.strictObject({ kind: z.string(), message: z.string() });

/** A runtime limit (`awg limit PID`, src/daemon/limit-book.ts). */
export const ProcessLimitDoc = z
  .strictObject({
    pid: Count.meta({ description: 'the process the limit was set on' }),
    upload: Count.optional().meta({ description: 'bit/s; absent: upload is not limited' }),
    download: Count.optional().meta({ description: 'bit/s; absent: download is not limited' }),
    group: z.string().meta({
      description:
        'its cgroup below the cgroup v2 mount: the process and the children that inherit it',
    }),
    name: z.string().meta({ description: "the process's name when it was limited" }),
    path: z.string().meta({ description: 'its executable when it was limited' }),
    uid: Count.meta({ description: 'its uid when it was limited' }),
    since: z.string().meta({ description: 'when it was limited (ISO 8601)' }),
    processes: Count.meta({ description: 'processes in its cgroup now' }),
  })
  .meta({ id: 'ProcessLimit' });

/** A new revision the rollout gate holds back (daemon/rollout-gate.ts, docs/fleet.md). */
export const RolloutStateDoc = z
  .strictObject({
    revision: z.string().meta({ description: "the git commit held back (the checkout's)" }),
    state: z.enum(ROLLOUT_HOLDS).meta({
      description:
        "`waiting`: this host's wave is not due yet; `halted`: the new revision says fleet.halt",
    }),
    wave: z.number().int().min(1).optional().meta({ description: "this host's wave (1-based)" }),
    waveName: z.string().optional(),
    dueAt: z.string().optional().meta({
      description:
        "when the wave is due on this host's clock (ISO 8601); the daemon looks again then",
    }),
    message: z.string().meta({ description: 'e.g. "waiting for wave 2 (wave-2) at …"' }),
  })
  .meta({ id: 'RolloutState' });
/** A revision that failed its check after the apply (src/daemon/revision-gate.ts). */
const RejectedRevisionDoc = z
  .strictObject({
    revision: z.string(),
    reason: z.string().meta({ description: 'what the check found' }),
    at: z.string().meta({ description: 'when it was rejected (ISO 8601)' }),
  })
  .meta({ id: 'RejectedRevision' });

/** What the daemon follows (fleet: the revision it runs and whether the newest one is valid). */
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
    rollout: RolloutStateDoc.optional(),
    rejected: z.array(RejectedRevisionDoc).optional().meta({
      description:
        'revisions that failed their check after the apply (docs/fleet.md, "Rollouts"): never applied again on this host; the last good one runs while HEAD is at one',
    }),
    verifying: z
      .strictObject({
        revision: z.string(),
        deadline: z.string().meta({ description: 'when the check ends at the latest (ISO 8601)' }),
      })
      .optional()
      .meta({ description: 'the revision being checked after its apply' }),
  })
  .meta({ id: 'ConfigState' });

/** A tunnel's line: a detached engine's answer (the same fields), plus what only the daemon knows. */
const Tunnel = z.strictObject({
  name: z.string(),
  type: z.string(),
  link: z.string().optional(),
  up: z.boolean(),
  // what the loop routes by (rules take their fallback while down/auth-failed)
  health: z.enum(TUNNEL_HEALTH).optional(),
  error: z.string().optional(),
  // why it is down (docs/architecture.md, "Tunnel health")
  reason: z.enum(DOWN_REASONS).optional(),
  // when the health last changed (RFC 3339)
  since: z.string().optional(),
  // when it was last rated up (RFC 3339; absent: never)
  lastUp: z.string().optional(),
  // amneziawg tunnels with obfuscation profiles: the active one and its switches, oldest first
  profile: z.string().optional(),
  profileSwitches: z
    .array(
      z.strictObject({
        at: z.string(),
        from: z.string(),
        to: z.string(),
        // handshake | no-data (down with the one before) | network (the one that worked there)
        reason: z.string(),
      }),
    )
    .optional(),
  // the active probe (`health.probe`): consecutive failures now, the last failure and when
  probe: z
    .strictObject({
      failures: Count,
      lastFailure: z.string().optional(),
      lastFailureAt: z.string().optional(),
    })
    .optional(),
  // sticky rules (`sticky: true`) that keep their fallback although this tunnel is up again
  heldRules: z
    .array(
      z.strictObject({
        rule: z.string(),
        // when the rule took its fallback (RFC 3339)
        since: z.string(),
      }),
    )
    .optional(),
  // seconds since the most recent handshake of any peer; absent: never
  lastHandshakeAgeSec: z.number().optional(),
  rxBytes: Count,
  txBytes: Count,
  peers: z.array(
    z.strictObject({
      publicKey: z.string(),
      endpoint: z.string().optional(),
      // seconds between persistent keepalives as configured, or AmneziaWG 3.x "MIN-MAX" (a
      // fresh interval drawn each time); absent: off
      persistentKeepalive: z.string().optional(),
      lastHandshakeAgeSec: z.number().optional(),
      rxBytes: Count,
      txBytes: Count,
    }),
  ),
  // proxy tunnels
  connectionsActive: Count.optional(),
  connectionsTotal: Count.optional(),
  dialErrors: Count.optional(),
  // TUN tunnels: the kernel's counters of the link (absent when it could not be read)
  linkTraffic: Traffic.optional(),
});

/** What this host's routing keeps from working (model/unrouted.ts HostCondition). */
const HostCondition = z
  .strictObject({
    kind: z.enum(['no-default-route', 'default-route-unusable', 'endpoint-unreachable']),
    message: z.string(),
    family: z
      .number()
      .int()
      .optional()
      .meta({ description: 'the IP family (4 or 6) of a default-route condition' }),
    reach: z.array(z.string()).optional().meta({
      description:
        'no-default-route: the prefixes the main table routes, all that direct traffic reaches',
    }),
    tunnel: z.string().optional(),
    address: z
      .string()
      .optional()
      .meta({ description: 'endpoint-unreachable: the endpoint address without a route' }),
  })
  .meta({ id: 'HostCondition' });

const hostConditions = z.array(HostCondition).optional().meta({
  description:
    "Linux: what this host's routing keeps from working: no default route (direct traffic reaches only the main table's prefixes), a default route that fails every lookup, an endpoint without a route",
});

/** awg's own releases, as the configured apt source offers them (daemon/update-watch.ts). */
const UpdateDoc = z
  .strictObject({
    checkedAt: z.string().meta({ description: 'when apt was last asked (ISO time)' }),
    available: z.boolean().meta({ description: 'the candidate is newer than the installed awg' }),
    installed: z.string().optional(),
    candidate: z
      .string()
      .optional()
      .meta({ description: 'the version `apt install` would choose (apt-cache policy)' }),
    suites: z.array(z.string()).optional().meta({ description: 'the suites offering it' }),
    error: z.string().optional().meta({ description: 'why the last check failed' }),
  })
  .meta({ id: 'UpdateStatus' });

/** A list fetched by URL (`to.lists: [{url}]`, daemon/list-refresh.ts). */
export const UrlListDoc = z
  .strictObject({
    list: z.string().meta({
      description: 'the URL without credentials or query (`?…`), with `:category` when one is read',
    }),
    rules: z.array(z.string()).meta({ description: 'the rules that name it' }),
    state: z.enum(LIST_STATES).meta({
      description:
        '`ok`: its copy is in use and current; `stale`: its copy is in use, the last fetch failed (`error`); `pending`: no copy yet, the list contributes nothing',
    }),
    format: z.string().optional(),
    entries: Count.optional().meta({ description: 'entries of the copy in use' }),
    fetchedAt: z.string().optional().meta({ description: 'when the copy in use was fetched' }),
    checkedAt: z.string().optional().meta({
      description: 'when the server last confirmed it (a new copy, or 304: unchanged)',
    }),
    ageSec: Count.optional().meta({ description: 'seconds since checkedAt' }),
    error: z.string().optional().meta({ description: 'why the last fetch failed' }),
    failures: Count.meta({ description: 'fetches failed in a row' }),
    failuresTotal: Count.meta({ description: 'fetches failed since the daemon started' }),
    nextCheckAt: z.string().optional(),
    refresh: z.string(),
    via: z.string().optional().meta({ description: 'the tunnel it is fetched through' }),
  })
  .meta({ id: 'UrlListStatus' });
export type UrlListStatus = z.infer<typeof UrlListDoc>;

/** The daemon's status: the API's Status answer (core.ts StatusResponse). */
export const DaemonStatus = z.strictObject({
  state: z.enum(DAEMON_STATES),
  configPath: z.string().optional().meta({ description: 'the config file the daemon follows' }),
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
  // ISO time by which `awg confirm` must arrive (the last apply is reverted otherwise)
  confirmDeadline: z.string().optional(),
  placement: z
    .strictObject({
      state: z.enum(PLACEMENT_STATES),
      reason: z.string().optional(),
      execs: Count,
      placed: Count,
      // the sum of errorsByKind (kept for clients that read only the total)
      errors: Count,
      errorsByKind: z
        .strictObject({
          missingCgroup: Count,
          writeFailed: Count,
          gateLate: Count,
          gateFailed: Count,
        } satisfies Record<PlacementErrorKind, typeof Count>)
        .optional()
        .meta({
          description:
            "placement errors by kind (while the watcher runs): missingCgroup (the rule's cgroup did not exist), writeFailed (opening or writing cgroup.procs failed: EACCES, EBUSY…), gateLate (the exec gate answered past its deadline undecided), gateFailed (the exec gate failed to decide or answer)",
        }),
      mode: z.enum(PLACEMENT_MODES).optional(),
      modeReason: z.string().optional(),
      // mount points of the file systems the gate marks
      gateMarks: z.array(z.string()).optional(),
    })
    .optional(),
  rules: z.array(RuleCounter).optional(),
  config: ConfigStateDoc.optional(),
  limits: z
    .array(ProcessLimitDoc)
    .optional()
    .meta({ description: 'processes limited at run time (`awg limit`)' }),
  dnsStub: z
    .strictObject({
      port: Count,
      queries: Count,
      answers: Count,
      servfails: Count,
      upstreamTimeouts: Count,
      learnedAnswers: Count,
      installs: Count,
      installFailures: Count,
      elements: Count,
      names: Count,
    })
    .optional()
    .meta({ description: 'the DNS learning stub of domain rules, while one learns' }),
  hostConditions,
  update: UpdateDoc.optional().meta({
    description:
      "Debian package with awg's apt source configured: the release that source offers (`awg update`)",
  }),
  lists: z.array(UrlListDoc).optional().meta({
    description:
      'the lists fetched by URL of the config followed: each copy, its age and how its refresh goes',
  }),
});
export type DaemonStatus = z.infer<typeof DaemonStatus>;

// The document spells two fields of the daemon's status otherwise: `config` is the config
// file's path, `configState` what the daemon follows. Every other field is the status's own.
const { state, configPath, config, ...rest } = DaemonStatus.shape;
export const DaemonStatusDoc = z
  .strictObject({
    source: z.literal('daemon'),
    state,
    config: configPath,
    configState: config,
    ...rest,
  })
  .meta({ id: 'DaemonStatus', description: 'Through the awg daemon (the default when it runs).' });
export type DaemonStatusDoc = z.infer<typeof DaemonStatusDoc>;

/**
 * The document of the daemon's status: what `awg status --json` prints through the daemon and
 * what `GET /api/status` answers (src/daemon/http/api-routes.ts).
 */
export function statusDocument(s: DaemonStatus): DaemonStatusDoc {
  return {
    source: 'daemon',
    state: s.state,
    ...(s.configPath !== undefined ? { config: s.configPath } : {}),
    ...(s.config ? { configState: s.config } : {}),
    ...(s.lastReconcile ? { lastReconcile: s.lastReconcile } : {}),
    objects: s.objects,
    tunnels: s.tunnels,
    ...(s.confirmDeadline ? { confirmDeadline: s.confirmDeadline } : {}),
    ...(s.placement ? { placement: s.placement } : {}),
    ...(s.rules ? { rules: s.rules } : {}),
    ...(s.limits ? { limits: s.limits } : {}),
    ...(s.dnsStub ? { dnsStub: s.dnsStub } : {}),
    ...(s.hostConditions ? { hostConditions: s.hostConditions } : {}),
    ...(s.update ? { update: s.update } : {}),
    ...(s.lists ? { lists: s.lists } : {}),
  };
}

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
    hostConditions,
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
