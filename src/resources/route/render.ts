/**
 * RouteSpec → iproute2 arguments. Pure.
 *
 * Every route carries `proto <ours>`: it is the ownership marker, and `ip route del ... proto N`
 * only ever removes a route that carries it (the kernel compares the protocol on delete).
 */
import type { RouteSpec } from '../../model/resources.js';

/** `route replace ...` without the leading `ip [-6]`; usable as an argv tail or a batch line */
export function routeReplaceArgs(r: RouteSpec): string[] {
  const a = ['route', 'replace'];
  if (r.type !== 'unicast') a.push(r.type);
  a.push(r.dst);
  if (r.type === 'unicast') {
    if (r.via !== undefined) a.push('via', r.via);
    if (r.dev !== undefined) a.push('dev', r.dev);
  }
  a.push('table', String(r.table), 'metric', String(r.metric), 'proto', String(r.protocol));
  return a;
}

/** identity fields plus our protocol: deletes exactly our route, whatever its nexthop became */
export function routeDelArgs(
  r: Pick<RouteSpec, 'type' | 'dst' | 'table' | 'metric' | 'protocol'>,
): string[] {
  const a = ['route', 'del'];
  if (r.type !== 'unicast') a.push(r.type);
  a.push(r.dst, 'table', String(r.table), 'metric', String(r.metric), 'proto', String(r.protocol));
  return a;
}

export function familyFlag(family: 4 | 6): string {
  return family === 6 ? '-6' : '-4';
}

/** `ip -batch -` input: one command per line, no shell quoting (our words never contain spaces) */
export function batchScript(lines: string[][]): string {
  return lines.map((l) => l.join(' ')).join('\n') + '\n';
}
