/**
 * schema/api.openapi.json: the HTTP API of `awg daemon` (docs/api.md) as OpenAPI 3.1, generated
 * from its routes (src/daemon/http/routes.ts: path, method, RPC, body, query, answer) and the
 * zod schemas of the documents they carry, which gRPC's conversion layer maps to the proto:
 * one definition for both APIs. Each operation says the authorisation of its RPC (GROUP_POLICY,
 * and what `--locked` refuses).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod';
import { ApiErrorDoc } from '../src/daemon/api-documents.js';
import { GROUP_POLICY, GROUP_RULE_TEXT, LOCKED_RPCS, type Rpc } from '../src/daemon/authz.js';
import { ROUTES } from '../src/daemon/http/routes.js';
import type { Route } from '../src/daemon/http/server.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const root = join(import.meta.dirname, '..');

function rewriteRefs(node: Json): Json {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([k, v]) => [
      k,
      k === '$ref' && typeof v === 'string'
        ? v.replace(/^#\/\$defs\//, '#/components/schemas/')
        : rewriteRefs(v),
    ]),
  );
}

/** `schema` as an OpenAPI schema object; the named schemas it uses go to `defs` */
function schemaOf(schema: z.ZodType, io: 'input' | 'output', defs: JsonObject): Json {
  const json = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  }) as JsonObject;
  const { $schema: _, $defs, ...rest } = json;
  for (const [name, def] of Object.entries(($defs ?? {}) as JsonObject)) {
    const d = rewriteRefs(def);
    if (name in defs && JSON.stringify(defs[name]) !== JSON.stringify(d))
      throw new Error(`two different schemas are named ${name} (their .meta({id}))`);
    defs[name] = d;
  }
  return rewriteRefs(rest);
}

/** who may make the request: the rule of the route's RPC, as for the gRPC call */
export function authorisationText(rpc: Rpc): string {
  const locked = LOCKED_RPCS[rpc];
  return (
    `Authorisation: that of the gRPC call ${rpc}. root: yes; socket group (\`awg daemon --socket-group\`): ${GROUP_RULE_TEXT[GROUP_POLICY[rpc]]}; others: no.` +
    (locked ? ` Refused by \`awg daemon --locked\` (${locked}), even to root.` : '')
  );
}

function operationId(r: Route): string {
  const name = r.path
    .replace(/^\/api\//, '')
    .split(/[/-]/)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
  return `${r.method.toLowerCase()}${name}`;
}

const ERROR = { $ref: '#/components/responses/Error' };

function operation(r: Route, defs: JsonObject): JsonObject {
  const params: Json[] = [];
  if (r.query instanceof z.ZodObject) {
    // required: what an empty query lacks
    const none = r.query.safeParse({});
    const missing = new Set(none.success ? [] : none.error.issues.map((i) => String(i.path[0])));
    for (const [name, field] of Object.entries(r.query.shape as Record<string, z.ZodType>))
      params.push({
        name,
        in: 'query',
        required: missing.has(name),
        schema: schemaOf(field, 'input', defs),
      });
  }
  const answer: JsonObject = r.response
    ? {
        description: 'OK',
        content: { 'application/json': { schema: schemaOf(r.response, 'output', defs) } },
      }
    : { description: 'not a JSON document: see docs/api.md' };
  return {
    operationId: operationId(r),
    ...(r.summary ? { summary: r.summary } : {}),
    description: authorisationText(r.rpc),
    'x-awg-rpc': r.rpc,
    ...(params.length ? { parameters: params } : {}),
    ...(r.body
      ? {
          requestBody: {
            required: !r.body.safeParse({}).success,
            content: { 'application/json': { schema: schemaOf(r.body, 'input', defs) } },
          },
        }
      : {}),
    responses: {
      '200': answer,
      ...(r.body || r.query || r.configPath ? { '400': ERROR } : {}),
      '403': ERROR,
      default: ERROR,
    },
  };
}

/** the OpenAPI document of `routes` */
export function apiOpenApi(routes: readonly Route[] = ROUTES): JsonObject {
  const version = (
    JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
  ).version;
  const defs: JsonObject = {};
  const paths: Record<string, JsonObject> = {};
  for (const r of routes) {
    const p = (paths[r.path] ??= {});
    p[r.method.toLowerCase()] = operation(r, defs);
  }
  const error = schemaOf(ApiErrorDoc, 'output', defs);
  return {
    openapi: '3.1.0',
    info: {
      title: 'awg daemon HTTP API',
      version,
      description:
        "HTTP/1.1 on the daemon's Unix socket (the gRPC API's, /run/awg/awg.sock by default), e.g. `curl --unix-socket /run/awg/awg.sock http://awg/api/status`. The caller is who the kernel says (SO_PEERCRED): root may do everything, members of the socket group what each operation says, others nothing. Bodies are JSON; errors are `{error: {kind, message, issues?, hint?}}` with the HTTP status of their kind. docs/api.md has the rest.",
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    paths,
    components: {
      schemas: Object.fromEntries(Object.entries(defs).sort(([a], [b]) => a.localeCompare(b))),
      responses: {
        Error: {
          description:
            'The request failed: 400 invalid request or config, 403 permission, 404 no such path, 405 wrong method, 409 conflict, 501 unsupported, 502 verification, 503 driver (retry), 500 bug',
          content: { 'application/json': { schema: error } },
        },
      },
    },
  };
}
