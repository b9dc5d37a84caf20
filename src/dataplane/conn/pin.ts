/**
 * Keeps the engines' UDP sockets pinned to the physical interface, and re-pins them when it
 * changes (macOS: IP_BOUND_IF / IPV6_BOUND_IF, native/darwin/bound-if.ts; Linux marks its
 * sockets with SO_MARK instead and needs none of this).
 *
 * Why: on macOS the default tunnel's `0/1` + `128/1` on its utun cover every destination, the
 * endpoints too; an unpinned socket's encrypted packets would follow them into the tunnel.
 * The endpoint bypass routes (resources/platform/darwin.ts) cover the configured endpoints; a peer
 * that roams to a new address has no bypass route until the next run. A socket bound to the
 * interface sends there whatever the routing table says.
 *
 * Contract:
 * - `setUnderlay({v4, v6})`: the physical interface is v4's default route's, else v6's (the
 *   engines' socket is one dual-stack udp6 socket: one interface for both families; on a
 *   host whose IPv4 and IPv6 defaults leave by different interfaces, IPv6 endpoints must be
 *   reachable on the IPv4 one). A change re-pins every attached socket at once. Neither
 *   known (offline): the sockets keep their pin, so nothing falls back to the routing table
 *   (sends fail until an interface is back).
 * - `attach(sock, family)`: pins a newly bound socket to the interface now (if one is known);
 *   `detach(sock)` when it closes.
 * - A pin that fails (the interface vanished between the probe and the call) is counted and
 *   logged, never thrown: the socket stays as it was and the next `setUnderlay` retries.
 *
 * On a dual-stack udp6 socket the IPv6 option is the one to set: XNU stores either option in
 * the same pcb field (inp_boundifp), and a send to a v4-mapped address goes through the IPv4
 * output with that pcb (udp6_send → the IPv4 pru_send; source reading, never run on a Mac).
 */
import type { Socket } from 'node:dgram';

export interface Underlay {
  /** the interface of the IPv4 default route (facts.defaultRouteV4.interface) */
  v4?: string;
  v6?: string;
}

export interface PinNatives {
  /** pin `sock` to `ifname` with the option of `family` (throws when it cannot) */
  pin(sock: Socket, ifname: string, family: 4 | 6): void;
}

export interface SocketPin {
  attach(sock: Socket, family: 4 | 6): void;
  detach(sock: Socket): void;
}

export class InterfacePin implements SocketPin {
  private ifname: string | undefined;
  private readonly socks = new Map<Socket, { family: 4 | 6; pinned?: string }>();
  /** pins that failed (counted; the socket kept its previous pin) */
  failures = 0;

  constructor(
    private readonly natives: PinNatives,
    private readonly log?: (message: string) => void,
  ) {}

  /** the interface sockets are pinned to now (undefined: none known yet) */
  get interface(): string | undefined {
    return this.ifname;
  }

  /** the sockets and what each is pinned to (tests, status) */
  pins(): { family: 4 | 6; pinned?: string }[] {
    return [...this.socks.values()].map((s) => ({ ...s }));
  }

  setUnderlay(u: Underlay): void {
    const next = u.v4 || u.v6;
    if (next) this.ifname = next;
    for (const [sock, st] of this.socks) this.apply(sock, st);
  }

  attach(sock: Socket, family: 4 | 6): void {
    const st = { family };
    this.socks.set(sock, st);
    this.apply(sock, st);
  }

  detach(sock: Socket): void {
    this.socks.delete(sock);
  }

  private apply(sock: Socket, st: { family: 4 | 6; pinned?: string }): void {
    const ifn = this.ifname;
    if (!ifn || st.pinned === ifn) return;
    try {
      this.natives.pin(sock, ifn, st.family);
      st.pinned = ifn;
    } catch (e) {
      this.failures++;
      this.log?.(
        `cannot pin the engine's UDP socket to ${ifn}: ${(e as Error).message}${st.pinned ? ` (it stays on ${st.pinned})` : ''}`,
      );
    }
  }
}
