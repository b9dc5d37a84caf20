/**
 * The documents of the daemon's API that have no definition elsewhere, as zod schemas: the
 * requests and answers of the calls that change the host (Apply, Diff, Down, Confirm, Limit)
 * and the lists (processes, limits, connections). With status-document.ts (Status),
 * model/plan-document.ts (plans) and procs/top/document.ts (the traffic monitor) they are the
 * one definition of what both APIs carry: core.ts's request and response types are their
 * z.infer, gRPC's conversion layer (wire/) maps them to the proto, the HTTP API answers them
 * as they are, and schema/api.openapi.json is generated from them (scripts/schemas.ts). Pure.
 */
import { isAbsolute } from 'node:path';
import * as z from 'zod';
import { ERROR_KINDS, type ErrorKind } from '../errors.js';
import { PlanDocument } from '../model/plan-document.js';
import { TopConnection, TopDocument } from '../procs/top/document.js';
import { MAX_CONFIRM_TIMEOUT_SEC } from './confirm.js';
import { LIST_RESULTS } from './names.js';
import { ProcessLimitDoc, UrlListDoc } from './status-document.js';

const Count = z.number().int().min(0);
/** a process id as the kernel gives them (pid_max is at most 2^22 on Linux, 99 999 on macOS) */
const Pid = z.number().int().min(1).max(0x3fffffff);
const ErrorInfo = z.strictObject({ kind: z.string(), message: z.string() });

const ConfigPath = z
  .string()
  .min(1, 'config path missing')
  .refine((p) => isAbsolute(p), 'config path must be absolute')
  .meta({
    description:
      'absolute path of the config file on the daemon host; the daemon reads it (and its secrets) itself',
  });

export const ApplyRequestDoc = z
  .strictObject({
    configPath: ConfigPath,
    dryRun: z
      .boolean()
      .exactOptional()
      .meta({ description: 'plan only (not refused by `awg daemon --locked`)' }),
    confirmTimeoutSec: z.number().int().min(0).max(MAX_CONFIRM_TIMEOUT_SEC).exactOptional().meta({
      description:
        'revert unless a confirm arrives within this many seconds (netplan-try style); 0 or left out: no confirm needed',
    }),
  })
  .meta({ id: 'ApplyRequest' });

export const DiffRequestDoc = z
  .strictObject({ configPath: ConfigPath })
  .meta({ id: 'DiffRequest' });

export const LimitRequestDoc = z
  .strictObject({
    pid: Pid.meta({ description: 'the process (its children started from now on included)' }),
    upload: z
      .number()
      .int()
      .min(1)
      .exactOptional()
      .meta({ description: 'bit/s; left out: upload is not limited' }),
    download: z
      .number()
      .int()
      .min(1)
      .exactOptional()
      .meta({ description: 'bit/s; left out: download is not limited' }),
    clear: z.boolean().exactOptional().meta({ description: 'remove the limit instead (no rates)' }),
  })
  .refine((r) => !(r.clear && (r.upload !== undefined || r.download !== undefined)), {
    message: 'clear takes no upload or download',
    path: ['clear'],
  })
  .meta({
    id: 'LimitRequest',
    description: 'The limit becomes exactly these rates (one left out: not limited).',
  });

export const ApplyResponseDoc = z
  .strictObject({
    outcome: z.string().meta({
      description: 'converged, unchanged, planned (dry run), reverted, failed, …',
    }),
    plan: PlanDocument,
    mutations: Count.meta({ description: 'changes made to the host' }),
    // an in-process answer may hold it as undefined; the wire form leaves it out (wire/plan.ts)
    error: ErrorInfo.optional(),
    confirmDeadline: z
      .string()
      .exactOptional()
      .meta({ description: 'ISO time by which a confirm must arrive (confirmTimeoutSec)' }),
  })
  .meta({ id: 'ApplyResponse' });

export const DiffResponseDoc = z
  .strictObject({
    plan: PlanDocument,
    changes: z.boolean().meta({ description: 'the plan changes something' }),
  })
  .meta({ id: 'DiffResponse' });

export const DownResponseDoc = z
  .strictObject({
    removed: z.array(z.string()).meta({ description: 'ids of the objects removed' }),
    mutations: Count,
  })
  .meta({ id: 'DownResponse' });

export const ConfirmResponseDoc = z
  .strictObject({
    confirmed: z.boolean().meta({ description: 'false: no apply awaited confirmation' }),
  })
  .meta({ id: 'ConfirmResponse' });

export const LimitResponseDoc = z
  .strictObject({
    limit: ProcessLimitDoc.exactOptional().meta({
      description: 'the limit now; absent after a clear',
    }),
    changed: z.boolean().meta({ description: 'false: it already was so' }),
  })
  .meta({ id: 'LimitResponse' });

export const LimitsDoc = z
  .strictObject({ limits: z.array(ProcessLimitDoc) })
  .meta({ id: 'Limits', description: 'The runtime limits held now (`awg limit --list`).' });

/** `awg lists update` through the daemon: one list (its URL, or its name as status shows it) or all */
export const UpdateListsRequestDoc = z
  .strictObject({
    list: z.string().min(1).max(8192).optional().meta({
      description: "a list's URL, or its name as the status shows it; absent: every list",
    }),
  })
  .meta({ id: 'UpdateListsRequest' });

/** one list's fetch, as the `list` event says it */
export const ListFetchedDoc = z
  .strictObject({
    type: z.literal('list'),
    at: z.string(),
    list: z.string(),
    result: z.enum(LIST_RESULTS),
    entries: Count.optional(),
    error: z.string().optional(),
    refused: z.boolean().optional().meta({
      description: "failed: the server's copy was refused (the sha256 pin, the parse, maxEntries)",
    }),
  })
  .meta({ id: 'ListFetched' });

export const UpdateListsResponseDoc = z
  .strictObject({ results: z.array(ListFetchedDoc), lists: z.array(UrlListDoc) })
  .meta({
    id: 'UpdateListsResponse',
    description: 'Each list fetched, and every list’s status after (`awg lists update --json`).',
  });

/** A process as `awg processes --json` lists it (procs/placer.ts ProcessInfo). */
export const ProcessDoc = z
  .strictObject({
    pid: Pid,
    name: z.string(),
    path: z.string().meta({ description: 'its executable' }),
    rule: z.string().exactOptional().meta({ description: 'the rule whose cgroup it sits in' }),
    target: z.string().exactOptional().meta({ description: "that rule's target" }),
    route: z.string().meta({
      description: 'effective route now: a tunnel name, `direct` or `blocked`',
    }),
    ppid: Count.exactOptional(),
    cgroup: z.string().exactOptional().meta({ description: 'its cgroup v2 path' }),
    pending: z.string().exactOptional().meta({
      description: 'the rule the executable matches now, when it differs from where it sits',
    }),
    limit: z
      .strictObject({
        pid: Pid.meta({ description: 'the process the limit was set on (itself or an ancestor)' }),
        upload: Count.exactOptional(),
        download: Count.exactOptional(),
      })
      .exactOptional()
      .meta({ description: 'the runtime limit it is under (`awg limit`), bit/s' }),
  })
  .meta({ id: 'Process' });

export const ProcessesDoc = z
  .strictObject({ processes: z.array(ProcessDoc) })
  .meta({ id: 'Processes', description: 'Running processes and the route each takes.' });

/** a connection of the monitor with its process's name */
export const ApiConnectionDoc = TopConnection.extend({
  process: z
    .strictObject({
      pid: Pid,
      name: z.string().meta({ description: 'the short name (comm)' }),
      exe: z.string().exactOptional(),
    })
    .exactOptional()
    .meta({ description: 'the owning process; absent: unattributed' }),
}).meta({ id: 'Connection' });

const { at, since, intervalMs, warnings } = TopDocument.shape;
export const ConnectionsDoc = z
  .strictObject({
    at,
    since,
    intervalMs,
    connections: z.array(ApiConnectionDoc),
    warnings,
  })
  .meta({
    id: 'Connections',
    description:
      "Every connection open now or closed during the last interval, from the daemon's traffic monitor (`awg top --json`).",
  });

export type ApplyRequest = z.infer<typeof ApplyRequestDoc>;
export type ApplyResponse = z.infer<typeof ApplyResponseDoc>;
export type DiffResponse = z.infer<typeof DiffResponseDoc>;
export type DownResponse = z.infer<typeof DownResponseDoc>;
export type ConfirmResponse = z.infer<typeof ConfirmResponseDoc>;
export type LimitRequest = z.infer<typeof LimitRequestDoc>;
export type LimitResponse = z.infer<typeof LimitResponseDoc>;
export type ApiConnection = z.infer<typeof ApiConnectionDoc>;
export type ConnectionsDocument = z.infer<typeof ConnectionsDoc>;

/** The connections of a monitor document, each with its process's name (GET /api/connections). */
export function connectionsDocument(d: TopDocument): ConnectionsDocument {
  const procs = new Map(d.processes.map((p) => [p.pid, p]));
  return {
    at: d.at,
    since: d.since,
    intervalMs: d.intervalMs,
    connections: d.connections.map((c) => {
      const p = c.pid !== undefined ? procs.get(c.pid) : undefined;
      return p
        ? {
            ...c,
            process: { pid: p.pid, name: p.name, ...(p.exe !== undefined ? { exe: p.exe } : {}) },
          }
        : c;
    }),
    warnings: d.warnings,
  };
}

/** A failed HTTP request's body (http/server.ts sendError); the status says the kind too. */
export const ApiErrorDoc = z
  .strictObject({
    error: z.strictObject({
      kind: z.enum(Object.keys(ERROR_KINDS) as [ErrorKind, ...ErrorKind[]]),
      message: z.string(),
      issues: z
        .array(
          z.strictObject({
            file: z.string(),
            line: Count.exactOptional(),
            col: Count.exactOptional(),
            path: z.string().meta({ description: 'the field (dotted)' }),
            message: z.string(),
            severity: z.enum(['error', 'warning']),
          }),
        )
        .exactOptional()
        .meta({ description: 'each problem of an invalid request or config, located' }),
      hint: z.string().exactOptional().meta({ description: 'what to do about it' }),
    }),
  })
  .meta({ id: 'Error' });
