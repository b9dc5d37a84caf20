/**
 * SOCKS5 upstream (RFC 1928 CONNECT, RFC 1929 username/password) over the `socks` package.
 * The TCP connection to the proxy is ours: created with the bypass SO_MARK before connect
 * (src/native/tcpsock.ts) so that the kill switch admits it and the transparent-proxy
 * redirect never sends it back to ourselves; `socks` only runs the handshake on it.
 * Destinations may be IPv4, IPv6 or host names (ATYP 1/4/3; names resolve at the proxy).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { SocksClient, type SocksProxy } from 'socks';
import { connectTcp } from '../native/tcpsock.js';
import {
  ProxyDialError,
  classifySocketError,
  formatDst,
  type Destination,
  type DialOptions,
  type Dialer,
} from './types.js';

export interface ProxyAuth {
  username: string;
  /** the resolved secret */
  password: string;
}

export interface Socks5Options {
  server: string;
  port: number;
  auth?: ProxyAuth | undefined;
  /** SO_MARK of the socket to the proxy (the bypass mark); undefined: unmarked */
  bypassMark?: number;
  /** TCP connect to the proxy plus the whole handshake (default 10 s) */
  timeoutMs?: number;
  /** bounded socket buffers for the returned stream (default: Node's 16 KiB) */
  highWaterMark?: number;
  /** the proxy's host name → addresses (default: the system resolver) */
  resolve?: (host: string) => Promise<string[]>;
}

export function socksProxy(o: Socks5Options): SocksProxy {
  return {
    host: o.server,
    port: o.port,
    type: 5,
    ...(o.auth ? { userId: o.auth.username, password: o.auth.password } : {}),
  };
}

/** `socks` reports failures as message strings; map them onto dial-error kinds. */
export function classifySocksError(message: string): ProxyDialError['kind'] {
  if (
    /Authentication failed|no accepted authentication type|unknown authentication type/i.test(
      message,
    )
  )
    return 'auth';
  if (/rejected connection/i.test(message)) return 'rejected';
  if (/timed out/i.test(message)) return 'timeout';
  if (/Socket closed/i.test(message)) return 'protocol';
  return 'protocol';
}

/** Opens the marked TCP connection to the proxy; errors become ProxyDialError('unreachable'|'timeout'). */
export async function connectToProxy(
  o: {
    server: string;
    port: number;
    bypassMark?: number;
    timeoutMs?: number;
    highWaterMark?: number;
    resolve?: (host: string) => Promise<string[]>;
  },
  opts: DialOptions = {},
): Promise<Socket> {
  try {
    return await connectTcp({
      host: o.server,
      port: o.port,
      mark: o.bypassMark,
      ...(o.resolve ? { resolve: o.resolve } : {}),
      timeoutMs: o.timeoutMs ?? 10_000,
      allowHalfOpen: true,
      highWaterMark: o.highWaterMark,
      signal: opts.signal,
    });
  } catch (e) {
    const kind = classifySocketError(e);
    throw new ProxyDialError(
      kind,
      `proxy ${formatDst({ host: o.server, port: o.port })} ${kind === 'timeout' ? 'did not answer' : 'is unreachable'}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/**
 * The handshake `run` on `sock` (the connection to the proxy), ended by `signal`: an abort
 * destroys the connection at once and rejects (`timeout`), so a caller that gave up (a health
 * probe past its timeout) leaves no socket open until the handshake's own timeout; a stream
 * the handshake yields after the abort is destroyed too.
 */
export async function untilAbort(
  sock: Socket,
  signal: AbortSignal | undefined,
  what: string,
  run: () => Promise<Duplex>,
): Promise<Duplex> {
  if (!signal) return run();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => {
      sock.destroy();
      const why = signal.reason instanceof Error ? signal.reason.message : 'aborted';
      reject(new ProxyDialError('timeout', `${what}: given up (${why})`));
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  const handshake = run();
  try {
    return await Promise.race([handshake, aborted]);
  } catch (e) {
    // the handshake's own end after the abort: its stream is not wanted, its error not read
    handshake.then(
      (s) => s.destroy(),
      () => {},
    );
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}

/** A Dialer that reaches each destination through the SOCKS5 proxy with CONNECT. */
export function socks5Dialer(o: Socks5Options): Dialer {
  return async (dst: Destination, opts: DialOptions = {}) => {
    const sock = await connectToProxy(o, opts);
    return untilAbort(sock, opts.signal, `SOCKS5 proxy ${o.server}:${o.port}`, () =>
      socks5Handshake(sock, dst, o),
    );
  };
}

/** CONNECT to `dst` on `sock`, an open connection to the proxy (destroyed on failure). */
async function socks5Handshake(sock: Socket, dst: Destination, o: Socks5Options): Promise<Duplex> {
  // the socket is half-open capable (the tunnelled stream needs it), so a proxy that closes
  // in the middle of the handshake would leave `socks` waiting for its timeout
  const closedEarly = () => sock.destroy();
  sock.once('end', closedEarly);
  try {
    const { socket, remoteHost } = await SocksClient.createConnection({
      proxy: socksProxy(o),
      command: 'connect',
      destination: { host: dst.host, port: dst.port },
      existing_socket: sock,
      timeout: o.timeoutMs ?? 10_000,
    });
    // `socks` reports success for a reply whose address type is not 1, 3 or 4 without
    // consuming it, and then hands the reply's bytes to the stream as if the destination sent them
    if (remoteHost === undefined) {
      socket.destroy();
      throw new Error('SOCKS5 reply with an invalid address type');
    }
    sock.off('end', closedEarly);
    return socket;
  } catch (e) {
    sock.destroy();
    const msg = (e as Error).message;
    const kind = classifySocksError(msg);
    const what =
      kind === 'auth'
        ? `SOCKS5 proxy ${o.server}:${o.port} refused the credentials${o.auth ? ` of user ${JSON.stringify(o.auth.username)}` : ' (the proxy requires authentication)'}`
        : `SOCKS5 proxy ${o.server}:${o.port} could not connect to ${formatDst(dst)}`;
    throw new ProxyDialError(kind, `${what}: ${msg}`, { cause: e });
  }
}
