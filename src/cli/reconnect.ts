/**
 * Following a daemon stream across the daemon's restarts (`awg events`, `awg status --watch`,
 * `awg top`): when the stream ends because the daemon went away (it stopped or was killed, its
 * socket is gone), the client says so, reconnects with backoff and resumes; when the daemon
 * answers again it says that too. An answer of the daemon (refused, invalid, a failed reader)
 * ends the command with that error as before; so does any loss with `--no-reconnect`.
 */
import { AwgError, toAwgError } from '../errors.js';
import { DaemonUnavailable, reconnectDaemon, type DaemonClient } from '../daemon/client.js';

/** the first delay before a reconnect, doubled after each failed attempt up to BACKOFF_MAX_MS */
export const BACKOFF_FIRST_MS = 250;
export const BACKOFF_MAX_MS = 5000;
/** each delay is spread by ±20 % so the clients of one daemon do not knock all at once */
const JITTER = 0.2;

export class Backoff {
  private base = BACKOFF_FIRST_MS;
  constructor(private readonly random: () => number = Math.random) {}

  /** the next delay in ms: 250, 500, 1000, 2000, 4000, 5000, 5000, … each ±20 % */
  next(): number {
    const base = this.base;
    this.base = Math.min(BACKOFF_MAX_MS, base * 2);
    return Math.round(base * (1 - JITTER + 2 * JITTER * this.random()));
  }

  reset(): void {
    this.base = BACKOFF_FIRST_MS;
  }
}

/** a service-availability record: printed as a JSON line by `awg events --json` */
export interface ServiceChange {
  type: 'service';
  state: 'unavailable' | 'available';
  at: string;
  /** why it went away; when it came back, what the client resumed from */
  reason: string;
}

export function serviceText(c: ServiceChange): string {
  return c.state === 'unavailable'
    ? `service unavailable: ${c.reason}; reconnecting`
    : `service available again${c.reason ? `: ${c.reason}` : ''}`;
}

/** a stream's end or a connection's failure that means "the daemon is away" (undefined: it closed the stream) */
export function isUnavailable(err: unknown): boolean {
  return err === undefined || err instanceof DaemonUnavailable;
}

/** injection for tests: the clock, the randomness of the jitter, the connection */
export interface ReconnectDeps {
  sleep?: ((ms: number) => Promise<void>) | undefined;
  random?: (() => number) | undefined;
  now?: (() => Date) | undefined;
  connect?: ((socket: string) => Promise<DaemonClient>) | undefined;
}

export interface FollowOptions {
  /** the connection to start on; follow closes every connection it leaves, this one included */
  client: DaemonClient;
  /**
   * Begin the stream on `client`: resolves once it is live, with its stop; `end` once when it
   * stops by itself (no error: the daemon closed it, as it does when it stops).
   */
  start(client: DaemonClient, end: (err?: AwgError) => void): Promise<() => void>;
  /** the daemon went away / answers again (not called for the first connection) */
  onService(c: ServiceChange): void;
  /** resolves when the command should stop (Ctrl-C, `until` of a test) */
  until: Promise<unknown>;
  /** false (`--no-reconnect`): the first loss ends follow with its error */
  reconnect: boolean;
  /** the error a stream the daemon closed ends with when follow does not reconnect */
  closed?: string | undefined;
  deps?: ReconnectDeps | undefined;
}

const STOP = Symbol('stop');

/**
 * Follow a stream until `until` (resolves undefined) or an error that is not the daemon's
 * absence (resolves with it; any error with `reconnect: false`).
 */
export async function follow(o: FollowOptions): Promise<AwgError | undefined> {
  const sleep = o.deps?.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = o.deps?.now ?? (() => new Date());
  const connect = o.deps?.connect ?? reconnectDaemon;
  const backoff = new Backoff(o.deps?.random);
  const socket = o.client.socketPath;
  const stopping = o.until.then((): typeof STOP => STOP);
  const tell = (state: ServiceChange['state'], reason: string) =>
    o.onService({ type: 'service', state, at: now().toISOString(), reason });
  let client: DaemonClient | undefined = o.client;
  let away = false;
  /** a loss: undefined to reconnect, else the error that ends follow */
  const lost = (err: AwgError | undefined): AwgError | undefined => {
    client?.close();
    client = undefined;
    if (!o.reconnect || !isUnavailable(err))
      return err ?? new AwgError('driver', o.closed ?? 'the awg daemon closed the stream');
    if (!away) tell('unavailable', err?.message ?? 'the awg daemon closed the stream (it stopped)');
    away = true;
    return undefined;
  };
  try {
    for (;;) {
      if (!client) {
        if ((await Promise.race([stopping, sleep(backoff.next())])) === STOP) return undefined;
        const connecting = connect(socket);
        const got = await Promise.race([
          stopping,
          connecting.then(
            (c) => ({ c }),
            (e: unknown) => ({ err: toAwgError(e, 'driver') }),
          ),
        ]);
        if (got === STOP) {
          connecting.then((c) => c.close()).catch(() => {});
          return undefined;
        }
        if ('err' in got) {
          const fatal = lost(got.err);
          if (fatal) return fatal;
          continue;
        }
        client = got.c;
        if (away) tell('available', '');
        away = false;
      }
      let end!: (err: AwgError | undefined) => void;
      const ended = new Promise<{ err: AwgError | undefined }>(
        (resolve) => (end = (err) => resolve({ err })),
      );
      const started = o.start(client, (err) => end(err));
      const first = await Promise.race([
        stopping,
        started.then(
          (stop) => ({ stop }),
          (e: unknown) => ({ err: toAwgError(e, 'driver') }),
        ),
      ]);
      if (first === STOP) {
        started.then((stop) => stop()).catch(() => {});
        return undefined;
      }
      if ('err' in first) {
        const fatal = lost(first.err);
        if (fatal) return fatal;
        continue;
      }
      backoff.reset();
      const r = await Promise.race([stopping, ended]);
      first.stop();
      if (r === STOP) return undefined;
      const fatal = lost(r.err);
      if (fatal) return fatal;
    }
  } finally {
    client?.close();
  }
}
