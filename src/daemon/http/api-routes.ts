/**
 * The HTTP API's routes for state and the calls that change the host (docs/api.md): each the
 * counterpart of one gRPC call, with its authorisation (the framework asks ApiGate for the
 * route's `rpc`, with the config path for Apply/Diff) and the same work after it
 * (api-calls.ts: `--locked`, the audit line, the confirm window, the Limit caller). Answers
 * are the domain documents (api-documents.ts, status-document.ts, procs/top/document.ts),
 * also the source of schema/api.openapi.json.
 */
import * as z from 'zod';
import { AwgError } from '../../errors.js';
import { TopDocument } from '../../procs/top/document.js';
import { ExplainDocument } from '../../model/explain-document.js';
import { parseTarget } from '../../procs/explain.js';
import { applyAs, confirmAs, downAs, limitAs, requirePath } from '../api-calls.js';
import {
  ApplyRequestDoc,
  ApplyResponseDoc,
  ConfirmResponseDoc,
  ConnectionsDoc,
  connectionsDocument,
  DiffRequestDoc,
  DiffResponseDoc,
  DownResponseDoc,
  LimitRequestDoc,
  LimitResponseDoc,
  LimitsDoc,
  ProcessesDoc,
  UpdateListsRequestDoc,
  UpdateListsResponseDoc,
} from '../api-documents.js';
import type { Rpc } from '../authz.js';
import type { TopRequest } from '../core.js';
import { DaemonStatusDoc, statusDocument } from '../status-document.js';
import { parseInput } from './input.js';
import type { Route, RouteContext } from './server.js';

/** the monitor's interval a GET may ask for (`?interval=` ms): its answer waits about one */
export const TOP_INTERVAL = { min: 200, max: 5000, default: 1000 } as const;

export const TopQuery = z.object({
  interval: z.coerce
    .number()
    .int()
    .min(TOP_INTERVAL.min)
    .max(TOP_INTERVAL.max)
    .exactOptional()
    .meta({
      description: `milliseconds the rates span (default ${TOP_INTERVAL.default}); the answer comes after about one`,
    }),
});

/** GET /api/explain's query: `?pid=4242&to=example.org:443[&udp=true]` */
export const ExplainQuery = z.object({
  pid: z.coerce.number().int().min(1).meta({ description: 'the process' }),
  to: z.string().min(1).meta({
    description: 'HOST:PORT: an address or a name; an IPv6 address in brackets ([2001:db8::1]:443)',
  }),
  udp: z
    .enum(['true', 'false'])
    .exactOptional()
    .meta({ description: 'a UDP destination (default TCP)' }),
});

/** a POST that carries nothing (Confirm, Down): an empty body or `{}` */
const NoBody = z.strictObject({});

function get<R extends z.ZodType>(
  path: string,
  rpc: Rpc,
  summary: string,
  response: R,
  run: (ctx: RouteContext) => Promise<z.infer<R>>,
  query?: z.ZodType<Record<string, unknown>>,
): Route {
  return { method: 'GET', path, rpc, summary, response, handle: run, ...(query ? { query } : {}) };
}

function post<B extends z.ZodType<Record<string, unknown>>, R extends z.ZodType>(
  path: string,
  rpc: Rpc,
  summary: string,
  body: B,
  response: R,
  run: (ctx: RouteContext, body: z.infer<B>) => Promise<z.infer<R>>,
  configPath?: (body: z.infer<B>) => string,
): Route {
  // the framework parsed ctx.body with `body` before authorising (http/server.ts)
  return {
    method: 'POST',
    path,
    rpc,
    summary,
    body,
    response,
    handle: (ctx) => run(ctx, ctx.body as z.infer<B>),
    ...(configPath ? { configPath: (b) => configPath(b as z.infer<B>) } : {}),
  };
}

/**
 * One document of the daemon's traffic monitor, then unsubscribe: what a GET answers. Ends
 * with an error when the monitor ends first, the daemon stops or the client goes away.
 */
export function oneTopDocument(ctx: RouteContext, req: TopRequest): Promise<TopDocument> {
  return new Promise((resolve, reject) => {
    let done = false;
    // set once core.top returns (its callbacks may come before)
    const sub: { stop?: () => void } = {};
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      sub.stop?.();
      release();
      ctx.res.off('close', gone);
      settle();
    };
    const gone = () =>
      finish(() => reject(new AwgError('driver', 'the client went away before the reading')));
    const release = ctx.onClose(() =>
      finish(() => reject(new AwgError('driver', 'the awg daemon is stopping'))),
    );
    ctx.res.once('close', gone);
    sub.stop = ctx.core.top(
      req,
      (d) => finish(() => resolve(d)),
      (err) =>
        finish(() =>
          reject(
            err ?? new AwgError('driver', 'the traffic monitor ended before its first reading'),
          ),
        ),
    );
    if (done) sub.stop();
  });
}

const topRequest = (ctx: RouteContext, connections: boolean): TopRequest => ({
  intervalMs:
    parseInput(TopQuery, Object.fromEntries(ctx.url.searchParams), 'query').interval ??
    TOP_INTERVAL.default,
  connections,
});

export const API_ROUTES: readonly Route[] = [
  get(
    '/api/status',
    'Status',
    'The daemon’s status: what `awg status --json` prints through the daemon.',
    DaemonStatusDoc,
    async ({ core }) => statusDocument(await core.status()),
  ),
  get(
    '/api/processes',
    'ListProcesses',
    'Running processes and the route each takes (`awg processes --json`).',
    ProcessesDoc,
    async ({ core }) => ({ processes: await core.listProcesses() }),
  ),
  get(
    '/api/connections',
    'Top',
    'Every connection with its process, rule, route, bytes and start time (one reading of the monitor).',
    ConnectionsDoc,
    async (ctx) => connectionsDocument(await oneTopDocument(ctx, topRequest(ctx, true))),
    TopQuery,
  ),
  get(
    '/api/traffic',
    'Top',
    'Rates and totals per process, rule and tunnel (one reading of the monitor, `awg top --json` without connections).',
    TopDocument,
    (ctx) => oneTopDocument(ctx, topRequest(ctx, false)),
    TopQuery,
  ),
  get(
    '/api/limits',
    'ListLimits',
    'The runtime limits held now (`awg limit --list --json`).',
    LimitsDoc,
    async ({ core }) => ({ limits: await core.listLimits() }),
  ),
  get(
    '/api/explain',
    'Explain',
    'Why a connection of a running process to HOST:PORT takes its route: the rules in the firewall’s order with their program and destination parts, and the decision (`awg explain --json`).',
    ExplainDocument,
    async ({ core, url }) => {
      const q = parseInput(ExplainQuery, Object.fromEntries(url.searchParams), 'query');
      return core.explain({
        pid: q.pid,
        ...parseTarget(q.to),
        proto: q.udp === 'true' ? 'udp' : 'tcp',
      });
    },
    ExplainQuery,
  ),
  post(
    '/api/limit',
    'Limit',
    'Set, change or clear the runtime limit of a process (`awg limit`).',
    LimitRequestDoc,
    LimitResponseDoc,
    ({ core, gate, peer }, req) => limitAs(core, gate, peer, req),
  ),
  post(
    '/api/diff',
    'Diff',
    'The plan of a config file against the host (`awg diff`); nothing changes.',
    DiffRequestDoc,
    DiffResponseDoc,
    ({ core }, { configPath }) => core.diff({ configPath }),
    (b) => requirePath(b.configPath),
  ),
  post(
    '/api/apply',
    'Apply',
    'Apply a config file (`awg apply`): the daemon follows it from now on.',
    ApplyRequestDoc,
    ApplyResponseDoc,
    ({ core, gate, peer }, req) => applyAs(core, gate, peer, req),
    (b) => requirePath(b.configPath),
  ),
  post(
    '/api/confirm',
    'Confirm',
    'Keep the pending apply (`awg confirm`).',
    NoBody,
    ConfirmResponseDoc,
    ({ core, gate, peer }) => confirmAs(core, gate, peer),
  ),
  post(
    '/api/lists/update',
    'UpdateLists',
    'Fetch the lists by URL now (all, or one) and apply what changed (`awg lists update`).',
    UpdateListsRequestDoc,
    UpdateListsResponseDoc,
    ({ core, gate, peer }, req) => {
      gate.audit('UpdateLists', peer, { list: req.list ?? 'all' });
      return core.updateLists({ list: req.list });
    },
  ),
  post(
    '/api/down',
    'Down',
    'Remove every tunnel and the kill switch (`awg down`).',
    NoBody,
    DownResponseDoc,
    ({ core, gate, peer }) => downAs(core, gate, peer),
  ),
];
