/**
 * TCP client sockets that carry SO_MARK from their first packet (docs/platform-linux.md#so_mark): the
 * socket is created with koffi, marked, then wrapped in a net.Socket and connected. Setting
 * the mark after `net.connect()` would be too late for the SYN, which the kill switch and
 * the transparent-proxy redirect judge. Needs CAP_NET_ADMIN.
 */
import { lookup } from 'node:dns/promises';
import { isIP, Socket } from 'node:net';
import { AwgError } from '../errors.js';
import {
  AF_INET,
  AF_INET6,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SO_MARK,
  SOL_SOCKET,
  SyscallError,
  close,
  setsockopt,
  socket,
} from './libc.js';

/** A fresh, unconnected TCP socket fd of `family` with SO_MARK = `mark`. */
export function markedTcpFd(family: 4 | 6, mark: number): number {
  const fd = socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError('socket(SOCK_STREAM)', -fd);
  const v = Buffer.alloc(4);
  v.writeUInt32LE(mark >>> 0);
  const r = setsockopt(fd, SOL_SOCKET, SO_MARK, v);
  if (r < 0) {
    close(fd);
    throw new SyscallError('setsockopt(SO_MARK)', -r, `0x${(mark >>> 0).toString(16)}`);
  }
  return fd;
}

export interface MarkedConnectOptions {
  host: string;
  port: number;
  /** SO_MARK for the socket; undefined → a plain `net.connect` (no privileges needed) */
  mark?: number | undefined;
  /** a fresh unconnected TCP socket fd of the destination's family (e.g. one pinned to an
   *  interface); replaces `mark`'s socket. What it throws is thrown as is. */
  socketFd?: (family: 4 | 6) => number;
  timeoutMs?: number;
  allowHalfOpen?: boolean;
  /** forwarded to the net.Socket (bounded buffers) */
  highWaterMark?: number | undefined;
  signal?: AbortSignal | undefined;
  /** host name → addresses, first preferred (default: the system resolver, getaddrinfo) */
  resolve?: (host: string) => Promise<string[]>;
}

/**
 * Connects a TCP socket and resolves once it is connected. Host names are resolved first
 * (the socket's family must match the address). Rejects with the socket error
 * (ECONNREFUSED, ETIMEDOUT as `code`) or an AwgError for a timeout.
 */
export async function connectTcp(o: MarkedConnectOptions): Promise<Socket> {
  let address = o.host.replace(/^\[(.*)\]$/, '$1');
  let family = isIP(address);
  if (family === 0) {
    if (o.resolve) {
      const a = (await o.resolve(address)).find((x) => isIP(x) !== 0);
      if (!a) throw new AwgError('driver', `${o.host}: no address`);
      address = a;
      family = isIP(a);
    } else {
      const r = await lookup(address);
      address = r.address;
      family = r.family;
    }
  }
  const mark = o.mark;
  const fdOf = o.socketFd ?? (mark === undefined ? undefined : (f: 4 | 6) => markedTcpFd(f, mark));
  const sock =
    fdOf === undefined
      ? new Socket({ allowHalfOpen: o.allowHalfOpen ?? false })
      : new Socket({
          fd: fdOf(family as 4 | 6),
          allowHalfOpen: o.allowHalfOpen ?? false,
          readable: true,
          writable: true,
        });
  // an error listener from birth: the socket is handed to its owner after `await`s (a SOCKS
  // or TLS handshake, a UDP bind) and an 'error' in between must not end the process; the
  // owner adds its own handling (or sees 'close' with hadError)
  sock.on('error', () => {});
  return await new Promise<Socket>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const fail = (e: Error) => {
      cleanup();
      sock.destroy();
      reject(e);
    };
    const onAbort = () => fail(new AwgError('driver', `connect to ${o.host}:${o.port} aborted`));
    const cleanup = () => {
      if (timer) clearTimeout(timer);
      sock.off('error', fail);
      o.signal?.removeEventListener('abort', onAbort);
    };
    if (o.timeoutMs !== undefined)
      timer = setTimeout(() => {
        const e = Object.assign(
          new Error(`connect to ${o.host}:${o.port} timed out after ${o.timeoutMs} ms`),
          {
            code: 'ETIMEDOUT',
          },
        );
        fail(e);
      }, o.timeoutMs);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    sock.once('error', fail);
    sock.connect({ host: address, port: o.port, family }, () => {
      cleanup();
      resolve(sock);
    });
  });
}
