/**
 * The boundary between proto/awg.proto and the domain types of core.ts: the only code that
 * knows the shape of the API's messages (their types are generated from the proto into
 * wire/generated/; `npm run gen`). server.ts and client.ts pass them through untouched. The
 * mappings live by concern under wire/: plans and the calls that change the host
 * (plan.ts), status and processes (status.ts), events (events.ts), errors (errors.ts), the
 * Exec choice (exec.ts), the traffic monitor (top.ts), runtime limits (limits.ts), the
 * observation record (observation.ts), lists fetched by URL (lists.ts).
 */
export { LOADER_OPTIONS, PROTO_PATH, SERVICE_NAME } from './wire/proto.js';
export { stateFromWire, stateToWire } from './wire/status.js';
export { wakeFromWire, wakeToWire } from './wire/events.js';
export {
  applyRequestFromWire,
  applyRequestToWire,
  applyResponseFromWire,
  applyResponseToWire,
  diffResponseFromWire,
  diffResponseToWire,
  downResponseFromWire,
  downResponseToWire,
  planFromWire,
  planToWire,
} from './wire/plan.js';
export { processesFromWire, processesToWire, statusFromWire, statusToWire } from './wire/status.js';
export { eventFromWire, eventToWire } from './wire/events.js';
export { ERROR_TRAILER, errorFromWire, errorToWire, type WireError } from './wire/errors.js';
export { execRequestFromWire, execRequestToWire } from './wire/exec.js';
export {
  limitRequestFromWire,
  limitRequestToWire,
  limitResponseFromWire,
  limitResponseToWire,
  limitsFromWire,
  limitsToWire,
} from './wire/limits.js';
export {
  topDocumentFromWire,
  topDocumentToWire,
  topRequestFromWire,
  topRequestToWire,
} from './wire/top.js';
export { observationFromWire, observationToWire } from './wire/observation.js';
export { updateListsFromWire, updateListsToWire } from './wire/lists.js';
