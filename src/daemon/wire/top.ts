/**
 * The traffic monitor on the wire (Top): the request, and the document (procs/top/document.ts),
 * whose proto message has the same fields under the same names. The receiver checks what
 * arrives against the document's schema: a message that breaks it is malformed. Pure.
 */
import {
  TopDocument,
  type TopConnection,
  type TopProcess,
  type TopRule,
  type TopTraffic,
  type TopTunnel,
} from '../../procs/top/document.js';
import type { TopRequest } from '../core.js';
import { bad, opt } from './common.js';
import type { TopConnection__Output } from './generated/awg/v1/TopConnection.js';
import type { TopDocument__Output } from './generated/awg/v1/TopDocument.js';
import type { TopProcess__Output } from './generated/awg/v1/TopProcess.js';
import type {
  TopRequest as TopRequestWire,
  TopRequest__Output,
} from './generated/awg/v1/TopRequest.js';
import type { TopRule__Output } from './generated/awg/v1/TopRule.js';
import type { TopTraffic__Output } from './generated/awg/v1/TopTraffic.js';
import type { TopTunnel__Output } from './generated/awg/v1/TopTunnel.js';

export const DEFAULT_TOP_INTERVAL_MS = 1000;

export const topRequestToWire = (r: TopRequest): TopRequestWire => ({
  intervalMs: r.intervalMs,
  connections: r.connections,
});

export const topRequestFromWire = (w: TopRequest__Output): TopRequest => ({
  intervalMs: w.intervalMs || DEFAULT_TOP_INTERVAL_MS,
  connections: w.connections,
});

// The copies are typed as both sides' shapes where the types agree (the proto says `string`
// where the document has a list of names: those are checked on the way in).
type Counted = TopTraffic;
const traffic = (t: Counted): TopTraffic & TopTraffic__Output => ({
  upload: t.upload,
  download: t.download,
  sent: t.sent,
  received: t.received,
  connections: t.connections,
});

/** a process row either side (the wire gives an unset limit as null) */
type ProcessIn = Omit<TopProcess, 'limit'> & { limit?: TopProcess['limit'] | null };
const processRow = (p: ProcessIn): TopProcess & TopProcess__Output => ({
  pid: p.pid,
  name: p.name,
  ...opt('exe', p.exe),
  ...opt('uid', p.uid),
  ...opt('rule', p.rule),
  route: p.route,
  ...traffic(p),
  ...opt(
    'limit',
    p.limit
      ? { ...opt('upload', p.limit.upload), ...opt('download', p.limit.download) }
      : undefined,
  ),
});

const ruleRow = (r: TopRule): TopRule & TopRule__Output => ({
  name: r.name,
  ...opt('target', r.target),
  route: r.route,
  processes: r.processes,
  ...traffic(r),
});

const tunnelRow = (t: TopTunnel): TopTunnel & TopTunnel__Output => ({
  name: t.name,
  ...traffic(t),
});

type WireConnection = Omit<TopConnection, 'proto'> & { proto: string };
const connection = (c: WireConnection): WireConnection & TopConnection__Output => ({
  id: c.id,
  proto: c.proto,
  family: c.family,
  local: { addr: c.local.addr, port: c.local.port },
  remote: { addr: c.remote.addr, port: c.remote.port },
  ...opt('pid', c.pid),
  ...opt('rule', c.rule),
  route: c.route,
  upload: c.upload,
  download: c.download,
  sent: c.sent,
  received: c.received,
  ...opt('started', c.started),
  ...opt('closed', c.closed),
});

export function topDocumentToWire(d: TopDocument): TopDocument__Output {
  return {
    at: d.at,
    since: d.since,
    intervalMs: d.intervalMs,
    processes: d.processes.map(processRow),
    rules: d.rules.map(ruleRow),
    tunnels: d.tunnels.map(tunnelRow),
    direct: traffic(d.direct),
    unattributed: traffic(d.unattributed),
    total: traffic(d.total),
    connections: d.connections.map(connection),
    warnings: [...d.warnings],
  };
}

export function topDocumentFromWire(w: TopDocument__Output): TopDocument {
  const need = <T>(v: T | null, what: string): T => {
    if (v === null) throw bad(`TopDocument without ${what}`);
    return v;
  };
  const doc = {
    at: w.at,
    since: w.since,
    intervalMs: w.intervalMs,
    processes: w.processes.map(processRow),
    rules: w.rules.map(ruleRow),
    tunnels: w.tunnels.map(tunnelRow),
    direct: traffic(need(w.direct, 'direct')),
    unattributed: traffic(need(w.unattributed, 'unattributed')),
    total: traffic(need(w.total, 'total')),
    connections: w.connections.map((c) =>
      connection({
        ...c,
        local: need(c.local, 'a connection’s local end'),
        remote: need(c.remote, 'a connection’s remote end'),
      } as WireConnection),
    ),
    warnings: [...w.warnings],
  };
  const r = TopDocument.safeParse(doc);
  if (!r.success) throw bad(`TopDocument: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}
