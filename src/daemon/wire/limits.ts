/**
 * Runtime limits on the wire (Limit, ListLimits; the limits of Status and ListProcesses): the
 * proto's ProcessLimit and the domain's LimitInfo have the same fields under the same names,
 * so one copy serves both ways. Pure.
 */
import { AwgError } from '../../errors.js';
import type { LimitInfo, LimitRequest, LimitResponse, ProcessInfo } from '../core.js';
import { opt } from './common.js';
import type { LimitRef__Output } from './generated/awg/v1/LimitRef.js';
import type { LimitRequest__Output } from './generated/awg/v1/LimitRequest.js';
import type { LimitResponse__Output } from './generated/awg/v1/LimitResponse.js';
import type { ListLimitsResponse__Output } from './generated/awg/v1/ListLimitsResponse.js';
import type { ProcessLimit__Output } from './generated/awg/v1/ProcessLimit.js';

export const processLimit = (l: LimitInfo): LimitInfo & ProcessLimit__Output => ({
  pid: l.pid,
  ...opt('upload', l.upload),
  ...opt('download', l.download),
  group: l.group,
  name: l.name,
  path: l.path,
  uid: l.uid,
  since: l.since,
  processes: l.processes,
});

type Ref = NonNullable<ProcessInfo['limit']>;
export const limitRef = (r: Ref): Ref & LimitRef__Output => ({
  pid: r.pid,
  ...opt('upload', r.upload),
  ...opt('download', r.download),
});

export function limitRequestToWire(r: LimitRequest): LimitRequest__Output {
  return {
    pid: r.pid,
    ...opt('upload', r.upload),
    ...opt('download', r.download),
    clear: Boolean(r.clear),
  };
}

/** A request as the daemon takes it: a pid; rates (bit/s) or clear, not both. */
export function limitRequestFromWire(w: LimitRequest__Output): LimitRequest {
  if (!w.pid) throw new AwgError('invalid-config', 'Limit: a pid is needed');
  const rates = { ...opt('upload', w.upload), ...opt('download', w.download) };
  if (w.clear) {
    if (rates.upload !== undefined || rates.download !== undefined)
      throw new AwgError('invalid-config', 'Limit: clear takes no rates');
    return { pid: w.pid, clear: true };
  }
  return { pid: w.pid, ...rates };
}

export function limitResponseToWire(r: LimitResponse): LimitResponse__Output {
  return { ...opt('limit', r.limit ? processLimit(r.limit) : undefined), changed: r.changed };
}

export function limitResponseFromWire(w: LimitResponse__Output): LimitResponse {
  return { ...opt('limit', w.limit ? processLimit(w.limit) : undefined), changed: w.changed };
}

export function limitsToWire(ls: LimitInfo[]): ListLimitsResponse__Output {
  return { limits: ls.map(processLimit) };
}

export function limitsFromWire(w: ListLimitsResponse__Output): LimitInfo[] {
  return (w.limits ?? []).map(processLimit);
}
