/**
 * How awg's own sockets are held to a tunnel's link, whatever the routing tables say: the
 * health probes (daemon/probe-run.ts) and the fetches of a list `via` a tunnel (via.ts, with
 * their DNS queries, native/dns-client.ts). Never a fallback to the main table: a link that
 * cannot be held to fails the socket.
 * - Linux: SO_BINDTODEVICE on the link itself (`awg-work`: native/bind-device.ts).
 * - macOS: IP(V6)_BOUND_IF on the utun the link got when its engine opened it (the utun
 *   registry, platform/darwin/utun.ts), through the flow router's natives (their
 *   `boundTcpFd` and `pinUdp`). NEVER RUN ON A MAC: tested on the host model.
 */
import type { Socket as DgramSocket } from 'node:dgram';
import type { SocketPin } from '../../native/dns-client.js';

/** a TCP socket fd, or a dgram socket, held to one link */
export type LinkPin = SocketPin;

/** the link pin of a link by name (loads its bindings first); rejects when it cannot be held */
export type LinkPinOf = (link: string) => Promise<LinkPin>;

/** Linux: SO_BINDTODEVICE on the link. */
export const devicePin: LinkPinOf = async (link) => {
  const b = await import('../../native/bind-device.js');
  return {
    tcpFd: (family) => b.deviceTcpFd(family, link),
    dgram: (sock) => b.bindDgramToDevice(sock, link),
  };
};

/** What macOS's pins need: the utun a link has now, and the natives that pin to it. */
export interface UtunPinHost {
  /** the utun a link has now, undefined before its engine opened one */
  utun(link: string): string | undefined;
  natives(): Promise<{
    boundTcpFd(ifname: string, family: 4 | 6): number;
    pinUdp?(sock: DgramSocket, ifname: string, family: 4 | 6): void;
  }>;
}

/** the utun `link` has now; throws when it has none (its engine is not running) */
export function utunOf(h: Pick<UtunPinHost, 'utun'>, link: string): string {
  const ifn = h.utun(link);
  if (ifn === undefined) throw new Error(`${link} has no utun (its engine is not running)`);
  return ifn;
}

/** macOS: IP(V6)_BOUND_IF on the link's utun. */
export function utunPin(h: UtunPinHost): LinkPinOf {
  return async (link) => {
    const ifn = utunOf(h, link);
    const n = await h.natives();
    return {
      tcpFd: (family) => n.boundTcpFd(ifn, family),
      dgram: (sock, family) => {
        if (!n.pinUdp) throw new Error('no IP_BOUND_IF for UDP sockets here');
        n.pinUdp(sock, ifn, family);
      },
    };
  };
}
