/**
 * The closed set of error kinds. The kind decides whether the reconcile loop retries,
 * which exit code the CLI returns and which gRPC status the daemon maps it to.
 */
export type ErrorKind =
  | 'invalid-config' // user input is wrong: terminal, exit 1, nothing applied
  | 'unsupported' // the platform/kernel cannot do what is asked: terminal
  | 'permission' // not root / missing capability: terminal
  | 'conflict' // an object with our name that we do not own: terminal until resolved
  | 'driver' // an OS call failed: retryable
  | 'verification' // applied but the read-back differs: retryable
  | 'bug'; // an invariant broke: terminal

export interface ErrorKindInfo {
  retryable: boolean;
  exitCode: number;
  grpcCode: number;
}

/** gRPC codes by number so this pure module needs no gRPC import. */
export const ERROR_KINDS: Record<ErrorKind, ErrorKindInfo> = {
  'invalid-config': { retryable: false, exitCode: 1, grpcCode: 3 /* INVALID_ARGUMENT */ },
  unsupported: { retryable: false, exitCode: 3, grpcCode: 12 /* UNIMPLEMENTED */ },
  permission: { retryable: false, exitCode: 4, grpcCode: 7 /* PERMISSION_DENIED */ },
  conflict: { retryable: false, exitCode: 5, grpcCode: 6 /* ALREADY_EXISTS */ },
  driver: { retryable: true, exitCode: 6, grpcCode: 14 /* UNAVAILABLE */ },
  verification: { retryable: true, exitCode: 7, grpcCode: 10 /* ABORTED */ },
  bug: { retryable: false, exitCode: 70, grpcCode: 13 /* INTERNAL */ },
};

/** A located config problem. line/col are 1-based; absent when the source has no position. */
export interface Issue {
  file: string;
  line?: number;
  col?: number;
  /** dotted path into the document, e.g. `tunnels.work.peers[0].endpoint` */
  path: string;
  message: string;
  severity: 'error' | 'warning';
}

export class AwgError extends Error {
  readonly kind: ErrorKind;
  readonly issues: Issue[];
  readonly hint: string | undefined;
  constructor(kind: ErrorKind, message: string, opts: { issues?: Issue[]; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AwgError';
    this.kind = kind;
    this.issues = opts.issues ?? [];
    this.hint = opts.hint;
  }
  get retryable(): boolean {
    return ERROR_KINDS[this.kind].retryable;
  }
  get exitCode(): number {
    return ERROR_KINDS[this.kind].exitCode;
  }
}

export function isAwgError(e: unknown): e is AwgError {
  return e instanceof AwgError;
}

/** Wrap anything thrown into an AwgError; unknown exceptions are bugs. */
export function toAwgError(e: unknown, fallback: ErrorKind = 'bug'): AwgError {
  if (e instanceof AwgError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new AwgError(fallback, msg, { cause: e });
}

export function formatIssue(i: Issue): string {
  const loc = i.line !== undefined ? `${i.file}:${i.line}:${i.col ?? 1}` : i.file;
  const sev = i.severity === 'warning' ? 'warning: ' : '';
  return `${loc}: ${sev}${i.path ? i.path + ': ' : ''}${i.message}`;
}
