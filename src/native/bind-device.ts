/**
 * SO_BINDTODEVICE (socket(7)): a socket that sends only through one link, whatever the routing
 * tables say (a route lookup constrained to the device; a destination with no route there is
 * taken as on-link, which is what a point-to-point tunnel link is). awg's own fetches through
 * a tunnel (`to.lists: [{url, via}]`, util/list-fetch.ts) and the tunnel health probe
 * (daemon/probe-run.ts) use it for tunnels with a link: the
 * embedded engine's TUN and the kernel's `wireguard` link. Needs CAP_NET_RAW.
 */
import type { Socket as DgramSocket } from 'node:dgram';
import {
  AF_INET,
  AF_INET6,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SOL_SOCKET,
  SyscallError,
  close,
  setsockopt,
  socket,
} from './libc.js';
import { dgramFd } from './sockmark.js';

export const SO_BINDTODEVICE = 25;

export function bindToDevice(fd: number, device: string): void {
  const r = setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(`${device}\0`, 'utf8'));
  if (r < 0) throw new SyscallError('setsockopt(SO_BINDTODEVICE)', -r, device);
}

/** A fresh, unconnected TCP socket fd of `family` bound to `device` (tcpsock.ts socketFd). */
export function deviceTcpFd(family: 4 | 6, device: string): number {
  const fd = socket(family === 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new SyscallError('socket(SOCK_STREAM)', -fd);
  try {
    bindToDevice(fd, device);
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

/** a bound (not yet sending) dgram socket sends through `device` only */
export function bindDgramToDevice(sock: DgramSocket, device: string): void {
  bindToDevice(dgramFd(sock), device);
}
