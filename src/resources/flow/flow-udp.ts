/**
 * The flow router's UDP relay (macOS): user processes' datagrams, one flow per PF port.
 *
 * How they arrive (platform/darwin/pf-flow.ts): PF sends a user process's datagram to lo0,
 * gives it a loopback source port of its own there (`nat`, one per flow: per app socket and
 * destination) and redirects it to this relay's socket (`rdr`, the router's port). So every
 * flow is one peer address of the listening socket. Per new flow the relay asks `origin`
 * (two DIOCNATLOOKs: where it was going, and the app's own address and port), the router's
 * rules through `decide` (the owner by udp pcblist_n, the same rules, fallbacks and IPv6
 * handling as TCP), and opens an upstream socket for the route with `open` (direct: bound
 * to the physical interface; a WireGuard tunnel: bound to its utun; IP_BOUND_IF before
 * connect), connected to the destination, so only the destination's replies come back.
 * Replies go to the flow's loopback port, where PF's two states translate them back to the
 * app, from the destination.
 *
 * Contracts:
 * - Fail-closed: a flow whose origin or owner cannot be read, whose route is blocked, or whose
 *   socket cannot be opened is dropped, datagram by datagram; nothing is ever sent unbound.
 *   A datagram without a PF translation (a local process sending to the relay itself) is
 *   dropped and not remembered (it cannot fill the table).
 * - Trust: the relay tells flows apart by their loopback port only. A local process that
 *   binds the loopback port PF gave another app's live flow and sends from it is relayed
 *   along that flow (to its destination, by its route); the replies still go to the app
 *   (PF's states translate them), never to that process.
 * - A routed flow keeps its route and socket until it has been idle `idleMs` (as an
 *   established TCP connection keeps its route, and Linux's connection mark keeps a flow's);
 *   a blocked flow is decided again after `blockedHoldMs`, so a tunnel that came back or a
 *   config edit reaches it. Datagrams that arrive while its socket opens wait (at most
 *   MAX_PENDING; more are dropped).
 * - Bounded: at most `maxFlows` flows; a datagram of a new flow beyond that is dropped.
 * - Per-rule counters: a flow counts as one connection of its rule (at the decision, router's
 *   `decide`), its payload bytes both ways as they pass (`count`).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';

export interface UdpEndpoint {
  address: string;
  port: number;
}

/** where a datagram PF redirected to the relay was going, and the app socket that sent it */
export interface UdpOrigin {
  app: UdpEndpoint;
  dst: UdpEndpoint;
}

/** what the relay needs of a decision (flow-router.ts FlowDecision): the route */
export interface UdpDecision {
  /** `blocked`, `direct` or a tunnel's name */
  route: string;
}

export interface UdpRelayOptions<D extends UdpDecision = UdpDecision> {
  listen: { host: readonly string[]; port: number };
  /** PF's translations for a datagram from `peer` that reached `listener` (throws: none) */
  origin(peer: UdpEndpoint, listener: UdpEndpoint, family: 4 | 6): UdpOrigin;
  /** the route of a new flow (throws: blocked) */
  decide(app: UdpEndpoint, dst: UdpEndpoint): D;
  /** a socket for `route` (direct or a tunnel), bound, pinned and connected to `dst` */
  open(route: string, dst: UdpEndpoint, family: 4 | 6): Promise<Socket>;
  /** payload bytes of a flow the rule of `d` decided, as they pass */
  count?(d: D, sent: number, received: number): void;
  /** a routed flow idle this long is closed (default UDP_IDLE_MS) */
  idleMs?: number;
  /** a blocked flow is decided again after this long (default UDP_BLOCKED_HOLD_MS) */
  blockedHoldMs?: number;
  maxFlows?: number;
  now?(): number;
  onError?(message: string): void;
}

/** the router's UDP half (flow-router.ts `udp`); without it the router carries TCP only */
export interface FlowUdpOptions {
  origin: UdpRelayOptions['origin'];
  /** a socket for a route (`direct` or a tunnel), pinned and connected (pinnedUdpSocket) */
  open: UdpRelayOptions['open'];
  /** does this tunnel carry UDP? (false: its rules' fallbacks decide, as if it were down) */
  carries(tunnel: string): boolean;
  idleMs?: number;
  maxFlows?: number;
  onError?(message: string): void;
}

/** above PF's UDP state timeouts (udp.multiple 60 s): PF forgets a flow before the relay does */
export const UDP_IDLE_MS = 120_000;
export const UDP_BLOCKED_HOLD_MS = 5_000;
export const UDP_MAX_FLOWS = 4096;
/** datagrams kept per flow while its upstream socket opens */
export const MAX_PENDING = 64;

interface UdpFlow<D> {
  peer: UdpEndpoint;
  listener: Socket;
  /** the decision of a routed flow (a blocked one passes nothing to count) */
  decision?: D;
  /** opening: datagrams wait in `pending` */
  up?: Socket;
  pending?: Buffer[];
  blockedUntil?: number;
  last: number;
}

export interface UdpRelayStats {
  flows: number;
  /** datagrams dropped: blocked flows, no origin, the flow limit, a full queue */
  dropped: number;
}

const familyOf = (a: string): 4 | 6 => (isIP(a) === 6 ? 6 : 4);

export class UdpRelay<D extends UdpDecision = UdpDecision> {
  private readonly listeners: Socket[] = [];
  private readonly flows = new Map<string, UdpFlow<D>>();
  private sweep: NodeJS.Timeout | undefined;
  private closed = false;
  dropped = 0;

  constructor(private readonly o: UdpRelayOptions<D>) {}

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  /**
   * Listen on every host at `port` (the TCP listener's, so the PF rules name one port); a
   * host after the first that does not exist here (`::1` with IPv6 off) is skipped, as the
   * TCP listener skips it. A failure closes what was bound and throws.
   */
  async start(port = this.o.listen.port): Promise<void> {
    for (const [i, host] of this.o.listen.host.entries()) {
      const s = createSocket({ type: familyOf(host) === 6 ? 'udp6' : 'udp4' });
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.bind({ address: host, port, exclusive: true }, () => {
            s.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        closeQuietly(s);
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (i > 0 && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
        await this.close();
        throw e;
      }
      s.on('error', (e) => this.o.onError?.(`udp relay on ${host}:${port}: ${e.message}`));
      s.on('message', (msg, r) => this.datagram(s, msg, r));
      this.listeners.push(s);
    }
    const idle = this.o.idleMs ?? UDP_IDLE_MS;
    this.sweep = setInterval(() => this.expire(), Math.max(1000, idle / 4));
    this.sweep.unref();
  }

  stats(): UdpRelayStats {
    return { flows: this.flows.size, dropped: this.dropped };
  }

  /** routed flows idle `idleMs`, and blocked ones past their hold, go */
  expire(): void {
    const now = this.now();
    const idle = this.o.idleMs ?? UDP_IDLE_MS;
    for (const [k, f] of this.flows)
      if (now - f.last >= idle || (f.blockedUntil !== undefined && now >= f.blockedUntil))
        this.end(k, f);
  }

  private end(key: string, f: UdpFlow<D>): void {
    this.flows.delete(key);
    closeQuietly(f.up);
  }

  private datagram(listener: Socket, msg: Buffer, r: RemoteInfo): void {
    if (this.closed) return;
    const fam = familyOf(r.address);
    const key = `${fam} ${r.address} ${r.port}`;
    const now = this.now();
    let f = this.flows.get(key);
    if (f?.blockedUntil !== undefined && now >= f.blockedUntil) {
      this.end(key, f);
      f = undefined;
    }
    if (!f) {
      if (this.flows.size >= (this.o.maxFlows ?? UDP_MAX_FLOWS)) {
        this.dropped++;
        return;
      }
      f = this.begin(listener, { address: r.address, port: r.port }, fam, now);
      // no PF translation (not a flow PF redirected: a local process sending here itself):
      // dropped and not remembered, so such datagrams cannot fill the table
      if (!f) {
        this.dropped++;
        return;
      }
      this.flows.set(key, f);
    }
    f.last = now;
    if (f.blockedUntil !== undefined) {
      this.dropped++;
      return;
    }
    if (f.pending) {
      if (f.pending.length < MAX_PENDING) f.pending.push(msg);
      else this.dropped++;
      return;
    }
    this.send(f, msg);
  }

  private send(f: UdpFlow<D>, msg: Buffer): void {
    f.up!.send(msg, (e) => {
      if (e) this.dropped++;
    });
    if (f.decision) this.o.count?.(f.decision, msg.length, 0);
  }

  private begin(
    listener: Socket,
    peer: UdpEndpoint,
    fam: 4 | 6,
    now: number,
  ): UdpFlow<D> | undefined {
    const blocked = (): UdpFlow<D> => ({
      peer,
      listener,
      blockedUntil: now + (this.o.blockedHoldMs ?? UDP_BLOCKED_HOLD_MS),
      last: now,
    });
    let origin: UdpOrigin;
    try {
      const a = listener.address();
      origin = this.o.origin(peer, { address: a.address, port: a.port }, fam);
    } catch {
      return undefined;
    }
    let d: D;
    try {
      d = this.o.decide(origin.app, origin.dst);
    } catch {
      return blocked(); // an owner that cannot be read: never a pass
    }
    if (d.route === 'blocked') return blocked();
    const f: UdpFlow<D> = { peer, listener, decision: d, pending: [], last: now };
    const dst = origin.dst;
    this.o.open(d.route, dst, familyOf(dst.address)).then(
      (up) => {
        if (this.closed || this.flows.get(`${fam} ${peer.address} ${peer.port}`) !== f) {
          closeQuietly(up);
          return;
        }
        f.up = up;
        up.on('message', (reply) => {
          f.last = this.now();
          listener.send(reply, peer.port, peer.address);
          this.o.count?.(d, 0, reply.length);
        });
        // an ICMP error on the connected socket (port unreachable) ends nothing: UDP goes on
        up.on('error', () => {});
        const waiting = f.pending ?? [];
        delete f.pending;
        for (const m of waiting) this.send(f, m);
      },
      (e: Error) => {
        this.o.onError?.(
          `udp flow ${origin.app.address}:${origin.app.port} → ${dst.address}:${dst.port} (${d.route}): ${e.message}`,
        );
        this.dropped += f.pending?.length ?? 0;
        delete f.pending;
        f.blockedUntil = this.now() + (this.o.blockedHoldMs ?? UDP_BLOCKED_HOLD_MS);
      },
    );
    return f;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.sweep) clearInterval(this.sweep);
    for (const [k, f] of this.flows) this.end(k, f);
    await Promise.all(
      this.listeners.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))),
    );
  }
}

/**
 * An upstream socket for a flow: bound to any address of `family`, pinned to `ifname` with
 * `pin` (IP_BOUND_IF / IPV6_BOUND_IF) before it connects, so the routing table's choice of
 * interface (a tunnel's 0/1 + 128/1, or the physical one) is not the one that counts.
 */
export async function pinnedUdpSocket(
  ifname: string,
  dst: UdpEndpoint,
  family: 4 | 6,
  pin: (sock: Socket, ifname: string, family: 4 | 6) => void,
): Promise<Socket> {
  const s = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind({ port: 0, exclusive: true }, () => {
        s.off('error', reject);
        resolve();
      });
    });
    pin(s, ifname, family);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.connect(dst.port, dst.address, () => {
        s.off('error', reject);
        resolve();
      });
    });
    return s;
  } catch (e) {
    closeQuietly(s);
    throw e;
  }
}

/** close a dgram socket that may already be closed (its error or a second end) */
function closeQuietly(s: Socket | undefined): void {
  try {
    s?.close();
  } catch {
    // already closed
  }
}
