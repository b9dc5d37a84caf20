/**
 * Where the daemon API's definition is and how @grpc/proto-loader reads it. The message
 * types under generated/ are produced with these same options (scripts/wire-types.ts turns
 * them into proto-loader-gen-types flags), so they describe exactly what the loader hands
 * the server and the client.
 *
 * Loader options: camelCase fields, int64 as JS numbers (byte counters stay far below
 * 2^53), enums as their names, proto3 `optional` fields absent when unset (`defaults`
 * fills only non-optional scalars, repeated fields and, with null, message fields),
 * `oneofs` names the set member of a oneof (`Event.event`, `ExecRequest.choice`).
 */
import { packagePath } from '../../util/package-root.js';

export const PROTO_PATH = packagePath('proto', 'awg.proto');
export const SERVICE_NAME = 'awg.v1.Awg';
export const LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;
