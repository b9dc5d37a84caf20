/**
 * A failed RPC on the wire: the gRPC status code of the error's kind (ERROR_KINDS) and the
 * whole AwgError (kind, message, issues, hint) as UTF-8 JSON in a trailer. Pure.
 */
import { AwgError, ERROR_KINDS, type ErrorKind, type Issue } from '../../errors.js';
import { opt } from './common.js';

/** trailer carrying the AwgError of a failed RPC as UTF-8 JSON (a -bin key: paths need not be ASCII) */
export const ERROR_TRAILER = 'awg-error-bin';

/** the trailer's JSON */
export interface WireError {
  kind: ErrorKind;
  message: string;
  issues?: Issue[];
  hint?: string;
}

export function errorToWire(e: AwgError): { code: number; trailer: string } {
  const w: WireError = {
    kind: e.kind,
    message: e.message,
    ...(e.issues.length ? { issues: e.issues } : {}),
    ...opt('hint', e.hint),
  };
  return { code: ERROR_KINDS[e.kind].grpcCode, trailer: JSON.stringify(w) };
}

/** gRPC code → kind, for failures without our trailer (transport errors, an older daemon) */
const KIND_BY_CODE = new Map<number, ErrorKind>(
  Object.entries(ERROR_KINDS).map(([k, v]) => [v.grpcCode, k as ErrorKind]),
);

export function errorFromWire(
  code: number,
  details: string,
  trailer: string | undefined,
): AwgError {
  if (trailer) {
    try {
      const w = JSON.parse(trailer) as WireError;
      if (w && typeof w.kind === 'string' && w.kind in ERROR_KINDS)
        return new AwgError(w.kind, w.message, {
          issues: w.issues ?? [],
          ...(w.hint ? { hint: w.hint } : {}),
        });
    } catch {
      /* fall through to the status code */
    }
  }
  return new AwgError(KIND_BY_CODE.get(code) ?? 'driver', details || `gRPC status ${code}`);
}
