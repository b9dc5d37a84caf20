/** The Awg gRPC service definition, from proto/awg.proto (loaded once, at first use; ~200 ms, so only when a daemon is used). */
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS, PROTO_PATH, SERVICE_NAME } from './wire/proto.js';

/** where the definition is read from (a bundle entry point re-exports it: scripts/pack-smoke.sh checks it) */
export { PROTO_PATH };

let definition: grpc.ServiceDefinition | undefined;

/** The Awg service definition (proto loaded once, at first use). */
export function awgService(): grpc.ServiceDefinition {
  definition ??= protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS)[
    SERVICE_NAME
  ] as grpc.ServiceDefinition;
  return definition;
}
