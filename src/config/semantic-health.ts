/**
 * Semantic checks of a tunnel's active probe (`tunnels.<name>.health`, schema-health.ts):
 * what the schema cannot say alone.
 */
import type { PathKey } from './positions.js';
import { isIP } from 'node:net';
import { durationMs, splitHostPort, type TunnelHealth } from './schema-health.js';

export const MIN_PROBE_INTERVAL_MS = 1000;

export function checkHealth(
  h: TunnelHealth,
  wgLike: boolean,
  base: PathKey[],
  err: (path: PathKey[], message: string) => void,
): void {
  const interval = durationMs(h.interval);
  const timeout = durationMs(h.timeout);
  if (interval === undefined) err([...base, 'interval'], `"${h.interval}" is not a duration`);
  else if (interval < MIN_PROBE_INTERVAL_MS)
    err([...base, 'interval'], `interval ${h.interval} is below 1s`);
  if (timeout === undefined) err([...base, 'timeout'], `"${h.timeout}" is not a duration`);
  else if (timeout <= 0) err([...base, 'timeout'], 'timeout must be more than 0');
  else if (interval !== undefined && timeout >= interval)
    err(
      [...base, 'timeout'],
      `timeout ${h.timeout} must be less than interval ${h.interval} (one probe at a time)`,
    );
  const host =
    'tcp' in h.probe
      ? splitHostPort(h.probe.tcp)?.host
      : 'url' in h.probe
        ? urlHost(h.probe.url)
        : undefined;
  const key = 'tcp' in h.probe ? 'tcp' : 'url';
  if (wgLike && host !== undefined && isIP(host) === 0)
    err(
      [...base, 'probe', key],
      `the probe of a wireguard/amneziawg tunnel needs an address, not the name "${host}": a lookup would leave outside the tunnel`,
    );
  if ('icmp' in h.probe && !wgLike)
    err(
      [...base, 'probe', 'icmp'],
      'an icmp probe needs a tunnel with a link (wireguard, amneziawg): a proxy carries TCP (use tcp or url)',
    );
}

function urlHost(s: string): string | undefined {
  try {
    return new URL(s).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return undefined;
  }
}
