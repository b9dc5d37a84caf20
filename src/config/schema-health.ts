/**
 * A tunnel's active health probe (`tunnels.<name>.health`, docs/architecture.md "Tunnel
 * health"): what the daemon sends through the tunnel, how often, how long it waits and how
 * many consecutive failures make the tunnel `down` (reason `probe-failed`). Part of the model
 * in schema-tunnels.ts; semantic checks (interval ≥ 1s, timeout < interval, icmp only on
 * WireGuard-like tunnels) in semantic-health.ts.
 */
import * as z from 'zod';
import { isHostOrIp } from './grammar.js';
import { Duration } from './schema-rules.js';
import { parseDuration } from './duration.js';
import { IpAddress, Text } from './schema-values.js';

/** `host:port`, `[v6]:port` */
export function splitHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535 || !isHostOrIp(host)) return undefined;
  return { host, port };
}

/** an `http://host[:port]/path` URL (no credentials, no https: the probe speaks plain HTTP/1.1) */
export function probeUrlProblem(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return 'must be a URL like http://host[:port]/path';
  }
  if (u.protocol !== 'http:') return 'must be an http:// URL (the probe speaks plain HTTP/1.1)';
  if (u.username || u.password) return 'must not carry credentials';
  if (!isHostOrIp(u.hostname.replace(/^\[(.*)\]$/, '$1'))) return 'has an invalid host';
  return undefined;
}

const UrlProbe = z
  .strictObject({
    url: Text()
      .max(2048)
      .superRefine((s, ctx) => {
        const p = probeUrlProblem(s);
        if (p) ctx.addIssue({ code: 'custom', message: p });
      })
      .meta({
        description:
          'GET this URL through the tunnel: any HTTP status line within `timeout` is a success (the path works end to end); no answer, a refused or reset connection, or something not HTTP is a failure.',
      }),
  })
  .meta({ id: 'UrlProbe' });

const TcpProbe = z
  .strictObject({
    tcp: Text()
      .refine((s) => splitHostPort(s) !== undefined, 'must be host:port (IPv6: [addr]:port)')
      .meta({
        description:
          'Open a TCP connection to `host:port` through the tunnel: connected within `timeout` is a success. Through a proxy tunnel, the proxy must connect it (a proxy that accepts but stalls fails).',
      }),
  })
  .meta({ id: 'TcpProbe' });

const IcmpProbe = z
  .strictObject({
    icmp: IpAddress.meta({
      description:
        "Ping this address through the tunnel's link (WireGuard/AmneziaWG only): an echo reply within `timeout` is a success.",
    }),
  })
  .meta({ id: 'IcmpProbe' });

export const HealthProbe = z
  .union([UrlProbe, TcpProbe, IcmpProbe], {
    error: 'must be {url: http://host[:port]/path}, {tcp: host:port} or {icmp: address}',
  })
  .meta({
    id: 'HealthProbe',
    description:
      "What the daemon sends through the tunnel to see that it carries traffic. It never leaves by another way: WireGuard/AmneziaWG probes use a socket bound to the tunnel's link (when the link is gone the probe fails), proxy probes go through the proxy.",
  });
export type HealthProbe = z.infer<typeof HealthProbe>;

export const TunnelHealth = z
  .strictObject({
    probe: HealthProbe,
    interval: Duration.default('10s').meta({
      description: 'Time between probes (at least 1s).',
    }),
    timeout: Duration.default('5s').meta({
      description: 'How long one probe may take; less than `interval`.',
    }),
    failures: z.number().int().min(1).max(100).default(2).meta({
      description:
        'Consecutive failed probes that make the tunnel `down` (reason `probe-failed`) and rules take their fallback; one success brings it back (after the 2 s hold against flapping). Detection takes at most (failures − 1) × interval + interval + timeout.',
    }),
  })
  .meta({
    id: 'TunnelHealth',
    description:
      'An active probe of the tunnel\'s path, on top of handshake and data-path health (docs/architecture.md, "Tunnel health").',
  });
export type TunnelHealth = z.infer<typeof TunnelHealth>;

/** `1h30m`, `10s`, `500ms` → ms (config/duration.ts) */
export const durationMs = parseDuration;
