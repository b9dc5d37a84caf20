/**
 * IP_BOUND_IF / IPV6_BOUND_IF on Node sockets (macOS's counterpart of SO_MARK,
 * native/sockmark.ts): a socket bound to an interface sends there whatever the routing
 * table says, which is how the flow router dials "direct" past a tunnel's routes. Facts
 * (netinet/in.h, netinet6/in6.h): IP_BOUND_IF = 25 at IPPROTO_IP (0), IPV6_BOUND_IF = 125 at
 * IPPROTO_IPV6 (41); the value is the interface index as an int. NEVER RUN ON A MAC.
 */
import type { Socket as DgramSocket } from 'node:dgram';
import type { Socket as NetSocket } from 'node:net';
import { AwgError } from '../../errors.js';
import { dgramFd } from '../sockmark.js';
import { IPPROTO_IP, IPPROTO_IPV6, IPV6_BOUND_IF, IP_BOUND_IF, encodeBoundIf } from './layouts.js';
import { check, ifNameToIndex, setsockopt } from './libsystem.js';

export { IPPROTO_IP, IPPROTO_IPV6, IPV6_BOUND_IF, IP_BOUND_IF, encodeBoundIf };

/** the setsockopt arguments for pinning to interface `index` */
export function boundIfOption(
  index: number,
  family: 4 | 6,
): { level: number; name: number; value: Uint8Array } {
  return family === 6
    ? { level: IPPROTO_IPV6, name: IPV6_BOUND_IF, value: encodeBoundIf(index) }
    : { level: IPPROTO_IP, name: IP_BOUND_IF, value: encodeBoundIf(index) };
}

/** The fd of a dgram socket (bound) or a net socket (connected or connecting), or a raw fd. */
export function socketFd(sock: DgramSocket | NetSocket | number): number {
  if (typeof sock === 'number') return sock;
  if ('send' in sock && typeof sock.send === 'function') return dgramFd(sock as DgramSocket);
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd === 'number' && fd >= 0) return fd;
  throw new AwgError(
    'bug',
    'cannot find the fd of a net socket (not yet created, or Node internals changed?)',
  );
}

/** Pin `sock` to `ifname`: its packets leave there, whatever the routes say. */
export function bindToInterface(
  sock: DgramSocket | NetSocket | number,
  ifname: string,
  family: 4 | 6,
): void {
  const fd = socketFd(sock);
  const index = ifNameToIndex(ifname);
  if (!index) throw new AwgError('driver', `no interface ${ifname}`);
  const o = boundIfOption(index, family);
  check(
    `setsockopt(${family === 6 ? 'IPV6' : 'IP'}_BOUND_IF ${ifname})`,
    setsockopt(fd, o.level, o.name, o.value),
  );
}
