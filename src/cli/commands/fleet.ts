/**
 * `awg fleet status`: where a rollout stands — per revision, how many hosts applied it, wait
 * for their wave, are halted, rejected it (pipeline/fleet-status.ts). Reads what the fleet
 * already reports, never the hosts themselves: a Prometheus scrape (`--metrics`, text format,
 * e.g. a /federate of the hosts' awg_* series), a Prometheus instant query's JSON (`--query`),
 * or a directory of observation records (`--observed`). Exit 0, or 2 when a host rejected a
 * revision.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { AwgError, toAwgError } from '../../errors.js';
import {
  fleetStatus,
  hostFromRecord,
  hostsFromSamples,
  parsePrometheusJson,
  parsePrometheusText,
  type FleetStatus,
  type HostRollout,
} from '../../pipeline/fleet-status.js';
import { observationFromJson } from '../../pipeline/observation.js';
import { LIMITS, readTextFileSync } from '../../util/files.js';
import { safeLine } from '../../util/sanitize.js';
import { printError, type Io } from '../output.js';

export interface FleetStatusOptions {
  metrics?: string;
  query?: string;
  observed?: string;
  json?: boolean;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readTextFileSync(file, { maxBytes: LIMITS.observed })) as unknown;
  } catch (e) {
    if (e instanceof SyntaxError)
      throw new AwgError('invalid-config', `${file}: not JSON: ${e.message}`);
    throw e;
  }
}

function hostsOf(o: FleetStatusOptions): HostRollout[] {
  const given = [o.metrics, o.query, o.observed].filter((x) => x !== undefined);
  if (given.length !== 1)
    throw new AwgError(
      'invalid-config',
      'give exactly one of --metrics FILE (Prometheus text), --query FILE (a Prometheus query answer, JSON) or --observed DIR (observation records)',
    );
  if (o.metrics !== undefined)
    return hostsFromSamples(
      parsePrometheusText(readTextFileSync(o.metrics, { maxBytes: LIMITS.observed }), o.metrics),
    );
  if (o.query !== undefined)
    return hostsFromSamples(parsePrometheusJson(readJson(o.query), o.query));
  const dir = o.observed!;
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  return files.map((f) => {
    const r = observationFromJson(readJson(join(dir, f)), join(dir, f));
    return hostFromRecord(r);
  });
}

export function fleetStatusText(s: FleetStatus): string {
  if (!s.revisions.length) return 'no host reports a revision\n';
  const rows = s.revisions.map((r) => [
    r.revision.slice(0, 12) || '(none)',
    String(r.applied),
    String(r.waiting),
    String(r.halted),
    String(r.rejected),
    r.nextDue ?? '',
  ]);
  const head = ['revision', 'applied', 'waiting', 'halted', 'rejected', 'next wave due'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 0 || i === 5 ? c.padEnd(w[i]!) : c.padStart(w[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...rows.map(line)];
  const rejecting = s.hosts.filter((h) => h.rejected.length);
  for (const h of rejecting)
    out.push(`${safeLine(h.host)} rejected ${h.rejected.map((r) => r.slice(0, 12)).join(', ')}`);
  return out.join('\n') + '\n';
}

export async function fleetStatusCommand(io: Io, o: FleetStatusOptions): Promise<number> {
  try {
    const s = fleetStatus(hostsOf(o));
    io.out(o.json ? JSON.stringify(s, null, 2) + '\n' : fleetStatusText(s));
    return s.revisions.some((r) => r.rejected > 0) ? 2 : 0;
  } catch (e) {
    const err = toAwgError(e, 'invalid-config');
    printError(io, err);
    return err.exitCode;
  }
}
