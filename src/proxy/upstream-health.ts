/**
 * Health of a proxy tunnel: "up" while its upstream accepts connections. A cheap probe runs
 * periodically — SOCKS5: TCP connect + method greeting (+ RFC 1929 when auth is configured);
 * HTTP: TCP (+TLS) connect + a CONNECT whose only purpose is to see whether the credentials
 * pass (407 = auth failure, any other answer = up). Wrong credentials are their own state,
 * `auth-failed`, distinct from `down` (unreachable), because retrying does not fix them.
 *
 * Scheduling: `intervalMs` while up; while down, exponential backoff from `backoff.initialMs`
 * (×`factor`, capped at `maxMs`), reset on success; auth-failed retries at `maxMs`. Each
 * state change emits `change` once.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { httpConnectHandshake, type HttpConnectOptions } from './http-connect.js';
import { connectToProxy, type Socks5Options } from './socks5.js';
import { ProxyDialError, type Destination } from './types.js';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';

export type HealthState = 'unknown' | 'up' | 'down' | 'auth-failed';

export interface HealthChange {
  from: HealthState;
  to: HealthState;
  /** why the probe failed (absent for `up`) */
  error?: ProxyDialError;
}

export type Probe = (signal: AbortSignal) => Promise<void>;

export interface Timers {
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (h: unknown) => void;
}

export interface ProxyHealthOptions {
  probe: Probe;
  intervalMs?: number;
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  /** a probe taking longer counts as `timeout` (default 5 s) */
  probeTimeoutMs?: number;
  timers?: Timers;
}

export function stateOf(e: ProxyDialError): HealthState {
  return e.kind === 'auth' ? 'auth-failed' : 'down';
}

export class ProxyHealth extends EventEmitter<{ change: [HealthChange] }> {
  private st: HealthState = 'unknown';
  private err: ProxyDialError | undefined;
  private timer: unknown;
  private failures = 0;
  private running = false;
  private inflight: AbortController | undefined;
  private readonly o: Required<Omit<ProxyHealthOptions, 'backoff'>> & {
    backoff: { initialMs: number; maxMs: number; factor: number };
  };

  constructor(o: ProxyHealthOptions) {
    super();
    this.o = {
      probe: o.probe,
      intervalMs: o.intervalMs ?? 10_000,
      probeTimeoutMs: o.probeTimeoutMs ?? 5_000,
      timers: o.timers ?? {
        setTimeout: (f, ms) => setTimeout(f, ms).unref(),
        clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
      },
      backoff: {
        initialMs: o.backoff?.initialMs ?? 1_000,
        maxMs: o.backoff?.maxMs ?? 60_000,
        factor: o.backoff?.factor ?? 2,
      },
    };
  }

  get state(): HealthState {
    return this.st;
  }
  get lastError(): ProxyDialError | undefined {
    return this.err;
  }
  isUp(): boolean {
    return this.st === 'up';
  }

  /** Probes now and then on schedule until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.tick();
  }

  stop(): void {
    this.running = false;
    this.inflight?.abort();
    if (this.timer !== undefined) this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One probe; updates the state (emitting `change`) and returns it. */
  async check(): Promise<HealthState> {
    const ac = new AbortController();
    this.inflight = ac;
    let to: HealthState;
    let error: ProxyDialError | undefined;
    try {
      await withTimeout(this.o.probe(ac.signal), this.o.probeTimeoutMs, ac, this.o.timers);
      to = 'up';
    } catch (e) {
      error =
        e instanceof ProxyDialError
          ? e
          : new ProxyDialError('unreachable', (e as Error).message, { cause: e });
      to = stateOf(error);
    } finally {
      if (this.inflight === ac) this.inflight = undefined;
    }
    this.err = error;
    this.failures = to === 'up' ? 0 : this.failures + 1;
    if (to !== this.st) {
      const from = this.st;
      this.st = to;
      this.emit('change', error ? { from, to, error } : { from, to });
    }
    return to;
  }

  /** Delay before the next probe in the current state. */
  nextDelay(): number {
    const b = this.o.backoff;
    if (this.st === 'up') return this.o.intervalMs;
    if (this.st === 'auth-failed') return b.maxMs;
    return Math.min(b.maxMs, b.initialMs * b.factor ** Math.max(0, this.failures - 1));
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    await this.check();
    if (!this.running) return;
    this.timer = this.o.timers.setTimeout(() => void this.tick(), this.nextDelay());
  }
}

async function withTimeout(
  p: Promise<void>,
  ms: number,
  ac: AbortController,
  t: Timers,
): Promise<void> {
  let h: unknown;
  const timeout = new Promise<never>((_, reject) => {
    h = t.setTimeout(() => {
      ac.abort();
      reject(new ProxyDialError('timeout', `health probe timed out after ${ms} ms`));
    }, ms);
  });
  try {
    await Promise.race([p, timeout]);
  } finally {
    t.clearTimeout(h);
  }
}

/** Reads exactly `n` bytes (or fails when the peer closes first). */
function readBytes(s: Duplex, n: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = () => {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('error', onErr);
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= n) {
        cleanup();
        s.pause();
        resolve(buf.subarray(0, n));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new ProxyDialError('protocol', `proxy closed the connection during ${what}`));
    };
    const onErr = (e: Error) => {
      cleanup();
      reject(new ProxyDialError('unreachable', `${what}: ${e.message}`, { cause: e }));
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('error', onErr);
    s.resume();
  });
}

/** SOCKS5 probe: greeting, and the RFC 1929 exchange when credentials are configured. */
export function socks5Probe(o: Socks5Options): Probe {
  const where = `SOCKS5 proxy ${o.server}:${o.port}`;
  return async (signal) => {
    const s: Socket = await connectToProxy(o, { signal });
    try {
      s.write(Buffer.from(o.auth ? [5, 2, 0, 2] : [5, 1, 0]));
      const [ver, method] = await readBytes(s, 2, 'the SOCKS5 greeting');
      if (ver !== 5)
        throw new ProxyDialError('protocol', `${where} answered the greeting with version ${ver}`);
      if (method === 0xff)
        throw new ProxyDialError(
          'auth',
          o.auth
            ? `${where} accepts none of our authentication methods`
            : `${where} requires authentication; set auth in the tunnel`,
        );
      if (method === 2) {
        if (!o.auth)
          throw new ProxyDialError(
            'auth',
            `${where} requires authentication; set auth in the tunnel`,
          );
        const u = Buffer.from(o.auth.username, 'utf8');
        const p = Buffer.from(o.auth.password, 'utf8');
        s.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
        const [, status] = await readBytes(s, 2, 'SOCKS5 authentication');
        if (status !== 0)
          throw new ProxyDialError(
            'auth',
            `${where} refused the credentials of user ${JSON.stringify(o.auth.username)}`,
            {
              status,
            },
          );
      } else if (method !== 0)
        throw new ProxyDialError('protocol', `${where} chose unknown method ${method}`);
    } finally {
      s.destroy();
    }
  };
}

/**
 * HTTP probe: connect (+TLS), then CONNECT to `target` (default 127.0.0.1:9, the proxy's own
 * discard port: cheap to refuse) only to learn whether the credentials pass.
 */
export function httpProbe(o: HttpConnectOptions & { target?: Destination }): Probe {
  return async (signal) => {
    const sock = await connectToProxy(o, { signal });
    let s: Duplex = sock;
    try {
      if (o.tls) {
        s = tlsConnect({
          ...(isIP(o.server) ? {} : { servername: o.server }),
          ...(typeof o.tls === 'object' ? o.tls : {}),
          socket: sock,
        });
        s.on('error', () => {}); // from birth (see native/tcpsock.ts)
        await new Promise<void>((resolve, reject) => {
          s.once('secureConnect', () => resolve());
          s.once('error', (e: Error) =>
            reject(
              new ProxyDialError(
                'unreachable',
                `TLS to HTTP proxy ${o.server}:${o.port} failed: ${e.message}`,
                { cause: e },
              ),
            ),
          );
        });
      }
      try {
        await httpConnectHandshake(
          s,
          o.target ?? { host: '127.0.0.1', port: 9 },
          o,
          o.timeoutMs ?? 5_000,
        );
      } catch (e) {
        if (e instanceof ProxyDialError && e.kind === 'rejected') return;
        throw e;
      }
    } finally {
      s.destroy();
      sock.destroy();
    }
  };
}
