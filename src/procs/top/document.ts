/**
 * What `awg top --json` prints once per interval, and what the daemon's Top call streams: the
 * one definition of the monitor's document (zod), the source of schema/top.schema.json
 * (scripts/schemas.ts). The monitor (aggregate.ts) builds it; the proto's TopDocument has the
 * same fields (test/unit/daemon/wire-definition.test.ts). Pure.
 *
 * Units: byte counts are payload bytes (what the applications wrote and read: no IP, TCP or
 * UDP headers, no tunnel encapsulation), rates are payload bytes per second, limits are bit/s.
 */
import * as z from 'zod';

const Count = z.number().int().min(0);
const Bytes = z.number().int().min(0);
const BytesPerSecond = z.number().int().min(0);

/** the counters every row has */
const traffic = {
  upload: BytesPerSecond.meta({
    description: 'payload bytes per second sent over the last interval (`intervalMs`)',
  }),
  download: BytesPerSecond.meta({
    description: 'payload bytes per second received over the last interval (`intervalMs`)',
  }),
  sent: Bytes.meta({ description: 'payload bytes sent since `since`' }),
  received: Bytes.meta({ description: 'payload bytes received since `since`' }),
  connections: Count.meta({
    description: 'connections open now (TCP sockets, UDP flows)',
  }),
};

export const TopTraffic = z.strictObject(traffic).meta({
  id: 'TopTraffic',
  description: 'Rates over the last interval, totals since the monitor started, open connections.',
});

const Route = z.string().meta({
  description:
    'where the traffic goes: a tunnel name, `direct` (no tunnel) or `blocked` (dropped by the firewall)',
});

export const TopLimit = z
  .strictObject({
    upload: z.number().int().min(1).optional().meta({ description: 'upload limit, bit/s' }),
    download: z.number().int().min(1).optional().meta({ description: 'download limit, bit/s' }),
  })
  .meta({ id: 'TopLimit', description: 'A bandwidth limit in force (bit/s).' });

export const TopProcess = z
  .strictObject({
    pid: Count,
    name: z.string().meta({ description: 'the short name (comm)' }),
    exe: z
      .string()
      .optional()
      .meta({ description: 'the executable (absent when it could not be read)' }),
    uid: Count.optional().meta({ description: "the process's user id, when known" }),
    rule: z.string().optional().meta({
      description:
        'the rule whose cgroup the process sits in (`exec:<tunnel>`, `exec:direct` for `awg exec`); absent: none',
    }),
    route: Route.meta({
      description:
        'the route all its connections of this reading take; when they differ or it has none, the route its rule gives new connections: a tunnel name, `direct` or `blocked`',
    }),
    ...traffic,
    limit: TopLimit.optional().meta({
      description: 'the runtime limit of this process (`awg limit`), when one is set',
    }),
  })
  .meta({ id: 'TopProcess' });

export const TopRule = z
  .strictObject({
    name: z.string().meta({ description: 'the rule (`exec:<target>` for `awg exec` groups)' }),
    target: z
      .string()
      .optional()
      .meta({ description: "the rule's target in the config (absent: not in the config now)" }),
    route: Route.meta({ description: "the route the rule's new connections take now" }),
    processes: Count.meta({ description: 'processes listed in this rule' }),
    ...traffic,
  })
  .meta({
    id: 'TopRule',
    description: "Every connection whose socket sits in the rule's cgroup, attributed or not.",
  });

export const TopTunnel = z
  .strictObject({ name: z.string(), ...traffic })
  .meta({ id: 'TopTunnel', description: 'Every connection routed through the tunnel.' });

export const TopEndpoint = z
  .strictObject({
    addr: z.string().meta({ description: 'IP address (an IPv4-mapped IPv6 address as IPv4)' }),
    port: z.number().int().min(0).max(65535),
  })
  .meta({ id: 'TopEndpoint' });

export const TopConnection = z
  .strictObject({
    id: z.string().meta({
      description:
        'stable for the life of the connection: `<proto>/<family>/<local>/<remote>` plus the socket where known',
    }),
    proto: z.enum(['tcp', 'udp']),
    family: z.number().int().min(4).max(6).multipleOf(2).meta({ description: '4 or 6' }),
    local: TopEndpoint,
    remote: TopEndpoint,
    pid: Count.optional().meta({ description: 'the owning process; absent: unattributed' }),
    rule: z.string().optional(),
    route: Route,
    upload: traffic.upload,
    download: traffic.download,
    sent: traffic.sent,
    received: traffic.received,
    started: z.string().optional().meta({
      description:
        'when the monitor first saw it (ISO 8601): at most one interval after it opened; one open when the monitor started shows `since`',
    }),
    closed: z
      .boolean()
      .optional()
      .meta({ description: 'true: it ended during the interval; its counts are final' }),
  })
  .meta({ id: 'TopConnection' });

export const TopDocument = z
  .strictObject({
    at: z.string().meta({ description: 'when the counters were read (ISO 8601)' }),
    since: z.string().meta({
      description:
        'when the monitor started (ISO 8601): the totals count from here; connections open then count from then',
    }),
    intervalMs: Count.meta({
      description: 'milliseconds the rates span (0: the first reading, no rates yet)',
    }),
    processes: z.array(TopProcess).meta({
      description:
        'processes with connections now, or with traffic in the last minute (exited ones too), by pid',
    }),
    rules: z.array(TopRule).meta({
      description: "the config's enabled rules, then groups seen that it no longer has",
    }),
    tunnels: z.array(TopTunnel).meta({ description: "the config's tunnels" }),
    direct: TopTraffic.meta({ description: 'connections that use no tunnel' }),
    unattributed: TopTraffic.meta({
      description:
        'connections no process owns (the kernel holds them: closing sockets, conntrack flows without a socket); shown, not hidden',
    }),
    total: TopTraffic.meta({ description: 'every connection' }),
    connections: z.array(TopConnection).meta({
      description:
        'every connection open now or closed during the interval (`awg top --json`; empty when not asked for)',
    }),
    warnings: z.array(z.string()).meta({
      description: 'what the reading could not do (e.g. conntrack accounting off: no UDP counts)',
    }),
  })
  .meta({
    id: 'TopDocument',
    title: 'awg top --json',
    description:
      'One reading of the per-process traffic monitor: what `awg top --json` prints per interval, one document per line. Bytes are payload bytes (no IP/TCP/UDP headers); rates are bytes per second.',
  });

export type TopDocument = z.infer<typeof TopDocument>;
export type TopTraffic = z.infer<typeof TopTraffic>;
export type TopProcess = z.infer<typeof TopProcess>;
export type TopRule = z.infer<typeof TopRule>;
export type TopTunnel = z.infer<typeof TopTunnel>;
export type TopConnection = z.infer<typeof TopConnection>;
export type TopLimit = z.infer<typeof TopLimit>;
