/**
 * Typed client of the daemon API (proto/awg.proto) over its Unix socket. It implements
 * DaemonCore, so the CLI drives a remote daemon through the same interface the server
 * wraps. Failed RPCs reject with the daemon's AwgError (kind, message, issues, hint), taken
 * from the `awg-error-bin` trailer.
 */
import { explainFromWire, explainRequestToWire } from './wire/explain.js';
import type { ExplainDocument, ExplainRequest } from './core.js';
import type * as Grpc from '@grpc/grpc-js';
import { AwgError, toAwgError } from '../errors.js';
import type { Plan } from '../model/change.js';
import type { ExecChoice } from '../model/match.js';
import type { PlanDocument } from '../model/plan-document.js';
import type {
  ApplyRequest,
  ApplyResponse,
  DaemonCore,
  DaemonEvent,
  LimitInfo,
  LimitRequest,
  LimitResponse,
  ObservationRecord,
  ProcessInfo,
  StatusResponse,
  TopDocument,
  TopRequest,
  UpdateListsResponse,
} from './core.js';
import type { Socket } from 'node:net';
import { otherNetns, socketAnswers, socketFrom } from './socket.js';
import {
  applyRequestToWire,
  applyResponseFromWire,
  diffResponseFromWire,
  downResponseFromWire,
  ERROR_TRAILER,
  errorFromWire,
  eventFromWire,
  execRequestToWire,
  limitRequestToWire,
  limitResponseFromWire,
  limitsFromWire,
  observationFromWire,
  processesFromWire,
  statusFromWire,
  topDocumentFromWire,
  topRequestToWire,
  updateListsFromWire,
} from './convert.js';
import type { AwgDefinition } from './wire/generated/awg/v1/Awg.js';

// gRPC and the proto loader cost ~200 ms of start-up: loaded only when a daemon answers, so
// direct-mode commands (and `awg --version`) do not pay for them.
type GrpcModule = typeof Grpc;
let loaded: { grpc: GrpcModule; ctor: Grpc.ServiceClientConstructor } | undefined;
async function loadGrpc(): Promise<NonNullable<typeof loaded>> {
  if (!loaded) {
    const grpc = await import('@grpc/grpc-js');
    const { awgService } = await import('./grpc-service.js');
    loaded = { grpc, ctor: grpc.makeGenericClientConstructor(awgService(), 'Awg') };
  }
  return loaded;
}

/** the service's named methods (without ServiceDefinition's index signature) */
type Service = {
  [
    K in keyof AwgDefinition as string extends K ? never : number extends K ? never : K
  ]: AwgDefinition[K];
};
type Method = keyof Service & string;
/** what we may send a method, and what we receive from it */
type RequestOf<M extends Method> = Parameters<Service[M]['requestSerialize']>[0];
type ResponseOf<M extends Method> = ReturnType<Service[M]['responseDeserialize']>;
type UnaryMethod = (
  req: object,
  md: Grpc.Metadata,
  opts: Grpc.CallOptions,
  cb: (e: Grpc.ServiceError | null, r?: unknown) => void,
) => Grpc.ClientUnaryCall;
type StreamMethod = (req: object, opts?: Grpc.CallOptions) => Grpc.ClientReadableStream<unknown>;

const UNAVAILABLE = 14;
const CANCELLED = 1;

/**
 * The daemon is not there (it stopped or was killed, its socket is gone or stale): not an
 * answer of the daemon, so a client following a stream may reconnect (src/cli/reconnect.ts).
 */
export class DaemonUnavailable extends AwgError {
  constructor(message: string) {
    super('driver', message);
  }
}

function toError(e: Grpc.ServiceError): AwgError {
  const raw = e.metadata?.get(ERROR_TRAILER)[0];
  const trailer = raw === undefined ? undefined : Buffer.isBuffer(raw) ? raw.toString('utf8') : raw;
  if (e.code === UNAVAILABLE && !trailer)
    return new DaemonUnavailable(`the awg daemon is not reachable: ${e.details}`);
  return errorFromWire(e.code, e.details, trailer);
}

export interface ClientOptions {
  /** deadline of quick calls (Status, Confirm, ListProcesses); Apply/Diff/Down wait for the reconcile queue */
  quickTimeoutMs?: number;
}

export class DaemonClient implements DaemonCore {
  private readonly client: Grpc.Client;
  private readonly quickMs: number;
  private readonly grpc: GrpcModule;

  /** A client of the daemon at `socketPath` (connects lazily, on the first call). */
  static async open(socketPath: string, o: ClientOptions = {}): Promise<DaemonClient> {
    return new DaemonClient(socketPath, o, await loadGrpc());
  }

  private constructor(
    readonly socketPath: string,
    o: ClientOptions,
    g: NonNullable<typeof loaded>,
  ) {
    this.grpc = g.grpc;
    this.client = new g.ctor(`unix:${socketPath}`, g.grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
    this.quickMs = o.quickTimeoutMs ?? 15_000;
  }

  private call<M extends Method>(
    method: M,
    req: RequestOf<M>,
    timeoutMs?: number,
  ): Promise<ResponseOf<M>> {
    const fn = (this.client as unknown as Record<string, UnaryMethod>)[method]!.bind(this.client);
    const opts: Grpc.CallOptions = timeoutMs ? { deadline: Date.now() + timeoutMs } : {};
    return new Promise((resolve, reject) => {
      fn(req, new this.grpc.Metadata(), opts, (e, r) =>
        e ? reject(toError(e)) : resolve(r as ResponseOf<M>),
      );
    });
  }

  private stream<M extends Method>(
    method: M,
    req: RequestOf<M>,
  ): Grpc.ClientReadableStream<ResponseOf<M>> {
    const fn = (this.client as unknown as Record<string, StreamMethod>)[method]!.bind(this.client);
    return fn(req) as Grpc.ClientReadableStream<ResponseOf<M>>;
  }

  async apply(req: ApplyRequest): Promise<ApplyResponse> {
    return applyResponseFromWire(await this.call('Apply', applyRequestToWire(req)));
  }

  async diff(req: { configPath: string }): Promise<{ plan: PlanDocument; changes: boolean }> {
    return diffResponseFromWire(await this.call('Diff', { configPath: req.configPath }));
  }

  async status(): Promise<StatusResponse> {
    return statusFromWire(await this.call('Status', {}, this.quickMs));
  }

  /** waits for a run in progress (the daemon observes between runs) */
  async observation(): Promise<ObservationRecord> {
    return observationFromWire(await this.call('Observation', {}));
  }

  async down(): Promise<{ removed: string[]; mutations: number }> {
    return downResponseFromWire(await this.call('Down', {}));
  }

  async confirm(): Promise<{ confirmed: boolean }> {
    const r = await this.call('Confirm', {}, this.quickMs);
    return { confirmed: r.confirmed };
  }

  async listProcesses(): Promise<ProcessInfo[]> {
    return processesFromWire(await this.call('ListProcesses', {}, this.quickMs));
  }

  /** the caller is who the socket says; the daemon answers once the run that applies it ended */
  async limit(req: LimitRequest): Promise<LimitResponse> {
    return limitResponseFromWire(await this.call('Limit', limitRequestToWire(req)));
  }

  async explain(req: ExplainRequest): Promise<ExplainDocument> {
    return explainFromWire(await this.call('Explain', explainRequestToWire(req), this.quickMs));
  }

  async listLimits(): Promise<LimitInfo[]> {
    return limitsFromWire(await this.call('ListLimits', {}, this.quickMs));
  }

  /** waits for every fetch (each bounded by the fetcher's deadline) */
  async updateLists(req: { list?: string | undefined }): Promise<UpdateListsResponse> {
    return updateListsFromWire(await this.call('UpdateLists', { list: req.list ?? '' }));
  }

  /**
   * Follow Watch. `onEnd` is called once when the stream stops for any reason other than
   * the returned unsubscribe (the daemon stopped, the connection broke).
   */
  subscribe(
    listener: (e: DaemonEvent, id: string) => void,
    o: {
      after?: string | undefined;
      onEnd?: ((err?: AwgError) => void) | undefined;
      onReady?: (() => void) | undefined;
    } = {},
  ): () => void {
    const { onEnd, onReady } = o;
    const stream = this.stream('Watch', { after: o.after ?? '' });
    let cancelled = false;
    let ended = false;
    const end = (err?: AwgError) => {
      if (ended || cancelled) return;
      ended = true;
      onEnd?.(err);
    };
    stream.on('metadata', () => onReady?.());
    stream.on('data', (w: ResponseOf<'Watch'>) => {
      const e = eventFromWire(w);
      if (e) listener(e, w.id);
    });
    stream.on('error', (e: Grpc.ServiceError) =>
      end(e.code === CANCELLED ? undefined : toError(e)),
    );
    stream.on('end', () => end());
    return () => {
      cancelled = true;
      stream.cancel();
    };
  }

  /**
   * Resolves once Watch is live (its headers arrived), or rejects with why it is not.
   * `o.after`: resume after that event id (the replayed events, or a `gap`, come first).
   */
  watch(
    listener: (e: DaemonEvent, id: string) => void,
    onEnd?: (err?: AwgError) => void,
    o: { after?: string | undefined } = {},
  ): Promise<() => void> {
    return new Promise((resolve, reject) => {
      let ready = false;
      const unsub = this.subscribe(listener, {
        after: o.after,
        onEnd: (err) => {
          if (!ready) reject(err ?? new AwgError('driver', 'the daemon closed the event stream'));
          else onEnd?.(err);
        },
        onReady: () => {
          ready = true;
          resolve(unsub);
        },
      });
    });
  }

  /**
   * Follow Top (`awg top`): `listener` gets each document; `onEnd` is called once when the
   * stream stops for any reason other than the returned cancel (the daemon stopped or refused,
   * the connection broke, a malformed document).
   */
  top(
    req: TopRequest,
    listener: (d: TopDocument) => void,
    onEnd: (err?: AwgError) => void,
  ): () => void {
    const stream = this.stream('Top', topRequestToWire(req));
    let cancelled = false;
    let ended = false;
    const end = (err?: AwgError) => {
      if (ended || cancelled) return;
      ended = true;
      onEnd(err);
    };
    stream.on('data', (w: ResponseOf<'Top'>) => {
      if (ended || cancelled) return;
      let d: TopDocument;
      try {
        d = topDocumentFromWire(w);
      } catch (e) {
        end(toAwgError(e));
        stream.cancel();
        return;
      }
      listener(d);
    });
    stream.on('error', (e: Grpc.ServiceError) =>
      end(e.code === CANCELLED ? undefined : toError(e)),
    );
    stream.on('end', () => end());
    return () => {
      cancelled = true;
      stream.cancel();
    };
  }

  /**
   * `awg exec` on macOS (the Exec RPC): resolves once the daemon routes this process (the pid
   * it registered: ours, from the socket) and its descendants by `choice`, or rejects with why
   * not. `onEnd` is called once if the registration ends other than by `cancel()` (the daemon
   * ended it, stopped, or the connection broke).
   */
  execSession(
    choice: ExecChoice,
    onEnd: (err: AwgError) => void,
  ): Promise<{ pid: number; cancel(): void }> {
    const stream = this.stream('Exec', execRequestToWire(choice));
    let registered = false;
    let cancelled = false;
    let ended = false;
    return new Promise((resolve, reject) => {
      const end = (err: AwgError) => {
        if (ended || cancelled) return;
        ended = true;
        if (registered) onEnd(err);
        else reject(err);
      };
      stream.on('data', (w: ResponseOf<'Exec'>) => {
        if (registered || ended) return;
        registered = true;
        resolve({
          pid: w.pid,
          cancel: () => {
            cancelled = true;
            stream.cancel();
          },
        });
      });
      stream.on('error', (e: Grpc.ServiceError) =>
        end(
          e.code === CANCELLED
            ? new AwgError('driver', 'the awg daemon cancelled the awg exec registration')
            : toError(e),
        ),
      );
      stream.on('end', () =>
        end(new AwgError('driver', 'the awg daemon ended the awg exec registration')),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

export type Connection =
  | { client: DaemonClient; reason?: undefined; code?: undefined }
  | { client?: undefined; reason: string; code?: string };

/** the code of a daemon that answers from another network namespace (Connection.code) */
export const OTHER_NETNS = 'EOTHERNETNS';

/** How a client tells where the daemon behind a socket runs (Linux; injectable for tests). */
export interface NetnsCheck {
  /** the listening process's pid, read from the connected socket */
  listener: (s: Socket) => number | undefined | Promise<number | undefined>;
  /** whether that process runs in another network namespace (undefined: cannot tell) */
  other: (pid: number) => boolean | undefined;
}

/**
 * Linux's: SO_PEERCRED on the connected socket names the process that listens (the kernel
 * records it at listen()), and /proc/PID/ns/net its network namespace. A daemon manages the
 * namespace it runs in; `ip netns exec other awg apply` must not hand it a config for another.
 */
function linuxNetnsCheck(): NetnsCheck | undefined {
  if (process.platform !== 'linux') return undefined;
  return {
    // the native module (koffi) is loaded only once a daemon has answered: a command with
    // no daemon to ask starts as before
    listener: async (s) => {
      const { netSocketFd, peerCredentials } = await import('../native/peercred.js');
      try {
        const { pid } = peerCredentials(netSocketFd(s));
        return pid > 0 ? pid : undefined; // 0: the listener is outside our pid namespace
      } catch {
        return undefined;
      }
    },
    other: otherNetns,
  };
}

/**
 * A client when something answers on the socket; otherwise why not (ENOENT: no daemon;
 * ECONNREFUSED: a stale socket; EACCES: not allowed by the socket's mode; OTHER_NETNS: the
 * daemon there runs in another network namespace, and is not this one's).
 */
export async function connectDaemon(
  socketPath: string,
  o: ClientOptions & { probeTimeoutMs?: number; netns?: NetnsCheck | null } = {},
): Promise<Connection> {
  const check = o.netns === undefined ? linuxNetnsCheck() : (o.netns ?? undefined);
  const probe = await socketAnswers(socketPath, o.probeTimeoutMs ?? 1000, check?.listener);
  if (!probe.ok)
    return {
      reason: `no awg daemon answers on ${socketPath} (${probe.code})`,
      ...(probe.code ? { code: probe.code } : {}),
    };
  if (probe.pid !== undefined && check?.other(probe.pid) === true)
    return {
      reason: `the awg daemon on ${socketPath} (pid ${probe.pid}) runs in another network namespace`,
      code: OTHER_NETNS,
    };
  return { client: await DaemonClient.open(socketPath, o) };
}

// ---- CLI client mode --------------------------------------------------------------------

export interface DaemonChoice {
  /** `--socket` */
  socket?: string;
  /** `--direct`: act on the host even if a daemon runs */
  direct?: boolean;
  /**
   * a daemon of another network namespace will do: the command has no direct mode and acts
   * on the daemon itself (events, confirm, limit), not on the namespace it runs in
   */
  anyNetns?: boolean;
}

/**
 * The daemon to use for a CLI command: a client when its socket answers (the caller must
 * `close()` it), undefined for direct mode (no socket, a stale one, or `--direct`). A socket
 * we may not use (EACCES) is an error, not a silent fall-back: a daemon runs and acting
 * behind its back would fight it.
 */
export async function daemonFor(
  o: DaemonChoice,
  env: NodeJS.ProcessEnv = process.env,
  netns?: NetnsCheck | null,
): Promise<{ client?: DaemonClient; socket: string; reason: string; elsewhere?: true }> {
  const socket = socketFrom(o.socket, env);
  if (o.direct) return { socket, reason: '--direct was given' };
  const check = o.anyNetns ? null : netns;
  const c = await connectDaemon(socket, check === undefined ? {} : { netns: check });
  if (c.client) return { client: c.client, socket, reason: '' };
  if (refused(c.code)) throw socketRefused(socket);
  // a listener that neither accepts nor refuses is a daemon too busy or stopped, not none:
  // acting behind its back would fight it
  if (c.code === 'EAGAIN' || c.code === 'ETIMEDOUT')
    throw new AwgError('driver', `the awg daemon socket ${socket} does not answer: ${c.reason}`, {
      hint: 'try again; `awg doctor` checks the daemon, and `--direct` acts on the host without it',
    });
  // a daemon of another network namespace: this one has none, so the command acts directly
  return {
    socket,
    reason: c.reason,
    ...(c.code === OTHER_NETNS ? { elsewhere: true as const } : {}),
  };
}

const refused = (code: string | undefined) => code === 'EACCES' || code === 'EPERM';

function socketRefused(socket: string): AwgError {
  return new AwgError('permission', `the awg daemon socket ${socket} does not let this user in`, {
    hint: 'run as root, or as a member of the group given to `awg daemon --socket-group`; `--direct` acts on the host without the daemon',
  });
}

/**
 * A new client of the daemon at `socket` for a reconnect: DaemonUnavailable while nothing
 * answers there, the permission error when the socket does not let this user in.
 */
export async function reconnectDaemon(socket: string): Promise<DaemonClient> {
  // the daemon the command chose at its start, come back: where it runs was decided then
  const c = await connectDaemon(socket, { netns: null });
  if (c.client) return c.client;
  if (refused(c.code)) throw socketRefused(socket);
  throw new DaemonUnavailable(c.reason);
}

/** the error of a feature that exists only with a running daemon */
export function needsDaemon(what: string, reason: string): AwgError {
  return new AwgError('unsupported', `${what} needs the awg daemon: ${reason}`, {
    hint: 'start it with `awg service install` (or run `awg daemon`), or point --socket / $AWG_SOCKET at its socket',
  });
}

/** A plan document back into the planner's shape, for the same text rendering as direct mode. */
export function planFromDocument(doc: PlanDocument): Plan {
  return {
    changes: doc.changes as unknown as Plan['changes'],
    foreign: doc.foreign.map((f) => ({ ...f })),
    warnings: [...doc.warnings],
  };
}
