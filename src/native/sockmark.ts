/**
 * SO_MARK on Node sockets (docs/platform-linux.md#so_mark). Node exposes no fd for dgram sockets; the
 * handle sits behind an internal state symbol (reading `_handle` warns, DEP0112). Needs
 * CAP_NET_ADMIN. The engines' sockets carry the bypass mark so the kill switch admits them
 * and per-app marking never loops their traffic back into a tunnel.
 */
import type { Socket } from 'node:dgram';
import { AwgError } from '../errors.js';
import { SO_MARK, SOL_SOCKET, setsockopt } from './libc.js';

export function dgramFd(sock: Socket): number {
  for (const sym of Object.getOwnPropertySymbols(sock)) {
    if (sym.description !== 'state symbol') continue;
    const st = (sock as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym];
    const fd = st?.handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
  }
  throw new AwgError('bug', 'cannot find the fd of a dgram socket (Node internals changed?)');
}

export function setSocketMark(fd: number, mark: number): void {
  const v = Buffer.alloc(4);
  v.writeUInt32LE(mark >>> 0);
  const r = setsockopt(fd, SOL_SOCKET, SO_MARK, v);
  if (r < 0)
    throw new AwgError(
      r === -1 ? 'permission' : 'driver',
      `setsockopt(SO_MARK=0x${mark.toString(16)}) failed: errno ${-r}`,
    );
}

export function markDgram(sock: Socket, mark: number): void {
  setSocketMark(dgramFd(sock), mark);
}
