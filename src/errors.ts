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

/** What each kind means to a user and what to do: docs/troubleshooting.md is generated from it. */
export const ERROR_KIND_HELP: Record<
  ErrorKind,
  { meaning: string; causes: string[]; todo: string[] }
> = {
  'invalid-config': {
    meaning:
      'The input is wrong: the config (or an overlay of it), a flag, a secret, an identity or a file awg was asked to read. Nothing was applied.',
    causes: [
      'a field with the wrong type or value — the message starts with file:line:col and the field path',
      'an overlay selected for this host sets something invalid (the location names the overlay file)',
      'a `{file:}` / `{env:}` / `{age:}` secret that cannot be read, is not a key, or is not encrypted to this host',
      'a bad `--labels`, `--host` or `--observed` argument',
      '`awg limit` of a process awg does not limit (pid 1, the daemon or its children, a kernel thread, another network namespace), a 33rd limit, or no config applied yet',
    ],
    todo: [
      'fix the named line; `awg validate -f FILE [--host H]` shows every problem at once',
      '`awg render -f FILE --host H` shows the effective config a host gets',
    ],
  },
  unsupported: {
    meaning:
      'This machine cannot do what the config asks (a kernel feature, a platform without a driver for a kind).',
    causes: [
      'no cgroup v2 (per-app rules need it)',
      'no nftables or TUN support in the kernel',
      "an `engine:` this host cannot run: `kernel` without Linux's WireGuard module, an external program that is missing or not executable, either on macOS — the message names the line",
      'a command that needs the awg daemon while none runs (`status --watch`, `apply --confirm-timeout`, `limit`)',
      '`--git` on macOS',
    ],
    todo: [
      'see the platform notes (docs/platform-linux.md, docs/platform-macos.md) for what each feature needs',
      'start the daemon (`awg service install`) where the message says it needs one',
    ],
  },
  permission: {
    meaning:
      'awg is not allowed to do this: not root, a missing capability, a file or socket it may not use, or a policy of the daemon.',
    causes: [
      'running a changing command without root',
      'a socket-group member asking for something only root may do (docs/security.md), e.g. `awg limit` of another user’s process or of a limit root set',
      'a file that is not trusted (owned by another user, writable by others)',
      'an age identity readable by group or others',
      'a locked daemon (`--locked`) refusing apply/down',
      'a commit not signed by an allowed signer (`awg sync`)',
    ],
    todo: [
      'run it as root (sudo)',
      "fix the file's owner and mode as the message says (e.g. chmod 600)",
      'on a locked host, change the repository instead',
    ],
  },
  conflict: {
    meaning:
      "Something awg would create already exists and is not awg's, or the repository moved in a way awg will not follow.",
    causes: [
      "a link, route table, rule priority or nft table with awg's name or number owned by another tool",
      'an engine for the tunnel already running',
      'a branch that was rewritten (not a fast-forward) or a checkout with local edits (`awg sync`)',
    ],
    todo: [
      "remove the other object or move awg's claims (`routing:` in the config reference)",
      "`awg status` lists foreign objects; `awg down` removes only awg's",
      'reset the checkout to the repository (`git -C DIR checkout -- .`)',
    ],
  },
  driver: {
    meaning:
      'An OS call or tool failed while applying (ip, nft, resolvectl, systemctl, a netlink request). Retried by the daemon; a one-off apply rolled back or failed closed.',
    causes: [
      'a transient kernel or tool error',
      'a tool missing from PATH',
      'a timeout of a tool (AWG_EXEC_TIMEOUT_MS)',
      'the awg daemon socket is held by a process that does not accept (a daemon stopped or too busy): the CLI does not act directly behind its back',
      'the awg daemon went away under `awg events`, `status --watch` or `top` run with `--no-reconnect` (without it they wait for the daemon and resume)',
    ],
    todo: [
      'read the `[#]` mutation log and the message for the command that failed',
      'run `awg apply` again; `awg status` shows what is in place',
      'with the kill switch on, traffic stays blocked until an apply succeeds or `awg down`',
    ],
  },
  verification: {
    meaning:
      'awg applied the changes but reading them back found something else: another program changed them at the same time, or the kernel normalised a value.',
    causes: [
      'a network manager rewriting routes, DNS or links concurrently',
      'a kernel that stores a value differently than it was written',
    ],
    todo: [
      'retry; the daemon does so by itself',
      "stop the other manager from touching awg's objects (awg-* links, its route tables, the `inet awg` table)",
    ],
  },
  bug: {
    meaning: "An invariant of awg broke. This is awg's fault.",
    causes: ['a defect in awg'],
    todo: [
      "report it with the message, `awg status --json` and the daemon's log (journalctl -u awg)",
      'the kill switch, if on, keeps traffic blocked; `awg down` restores the host',
    ],
  },
};

export interface ErrorKindInfo {
  retryable: boolean;
  exitCode: number;
  grpcCode: number;
  /** the HTTP API's status for it (src/daemon/http/server.ts) */
  httpStatus: number;
}

/** gRPC codes by number so this pure module needs no gRPC import; HTTP statuses of the HTTP API. */
export const ERROR_KINDS: Record<ErrorKind, ErrorKindInfo> = {
  'invalid-config': {
    retryable: false,
    exitCode: 1,
    grpcCode: 3 /* INVALID_ARGUMENT */,
    httpStatus: 400,
  },
  unsupported: { retryable: false, exitCode: 3, grpcCode: 12 /* UNIMPLEMENTED */, httpStatus: 501 },
  permission: {
    retryable: false,
    exitCode: 4,
    grpcCode: 7 /* PERMISSION_DENIED */,
    httpStatus: 403,
  },
  conflict: { retryable: false, exitCode: 5, grpcCode: 6 /* ALREADY_EXISTS */, httpStatus: 409 },
  driver: { retryable: true, exitCode: 6, grpcCode: 14 /* UNAVAILABLE */, httpStatus: 503 },
  verification: { retryable: true, exitCode: 7, grpcCode: 10 /* ABORTED */, httpStatus: 502 },
  bug: { retryable: false, exitCode: 70, grpcCode: 13 /* INTERNAL */, httpStatus: 500 },
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
  constructor(
    kind: ErrorKind,
    message: string,
    opts: { issues?: Issue[]; hint?: string | undefined; cause?: unknown } = {},
  ) {
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
