/**
 * The flow router on macOS: flow-router.ts's platform-neutral core wired to the darwin
 * system calls. The natives come in as one `DarwinFlowNatives` object so everything here
 * runs on Linux in tests; `loadDarwinFlowNatives()` imports the koffi bindings lazily
 * (native/darwin/libsystem.ts sysctlByName, libproc.ts pidPath, pfnatlook.ts
 * originalDstDarwin, bound-if.ts bindToInterface), so importing this module loads nothing.
 *
 * - Owner: PcbFlowLookup (platform/darwin/flow-lookup.ts) over `net.inet.tcp.pcblist_n` and
 *   proc_pidpath; its parents (for `awg exec`, exec-routes.ts) by proc_pidinfo
 *   PROC_PIDT_SHORTBSDINFO (libproc.ts pidShortInfo, as ListProcesses reads them).
 * - Original destination: DIOCNATLOOK for the accepted socket (PF's `rdr` state).
 * - UDP (flow-udp.ts): a flow's destination and app socket by two DIOCNATLOOKs
 *   (pfnatlook.ts udpOriginDarwin), its owner from `net.inet.udp.pcblist_n`; its upstream
 *   socket pinned like a TCP dial (direct: the physical interface; a WireGuard tunnel: its
 *   utun). A proxy tunnel carries no UDP: its rules' fallbacks decide.
 * - Dialers: a tunnel with a utun gets a socket pinned to that utun (IP_BOUND_IF /
 *   IPV6_BOUND_IF before connect(), so the SYN already leaves there); a proxy tunnel uses
 *   its own SOCKS5/HTTP dialer; `direct` gets a socket pinned to the physical interface the
 *   default route uses now (asked per connection: it changes with the network), so the
 *   routing table's 0/1 + 128/1 cannot pull it into a tunnel. None of these sockets is
 *   redirected back into the router: PF's route-to rule skips the router's uid
 *   (platform/darwin/pf-flow.ts). No physical interface known → the direct dial fails
 *   (the flow is reset), it never falls back to the routing table.
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { inSubnets } from '../../util/ipaddr.js';
import { linkName, type Config } from '../../config/schema.js';
import { AwgError } from '../../errors.js';
import { connectTcp } from '../../native/tcpsock.js';
import { PcbFlowLookup } from '../../platform/darwin/flow-lookup.js';
import {
  ProxyDialError,
  classifySocketError,
  formatDst,
  type Destination,
  type Dialer,
} from '../../proxy/types.js';
import type { Socket as DgramSocket } from 'node:dgram';
import { FlowRouter, type FlowRouterOptions } from './flow-router.js';
import { pinnedUdpSocket, type UdpOrigin } from './flow-udp.js';
import type { ExecRegistry } from './exec-routes.js';
import { flowRouterPort } from '../platform/darwin-flow.js';
import type { TunnelUp } from '../../model/match.js';

export interface NatEndpoint {
  address: string;
  port: number;
}

export interface DarwinFlowNatives {
  /** sysctlbyname: the value's bytes (throws on failure) */
  sysctl(name: string): Uint8Array;
  /** proc_pidpath; undefined when the process is gone */
  pidPath(pid: number): string | undefined;
  /** DIOCNATLOOK: where a redirected connection was going */
  originalDst(local: NatEndpoint, remote: NatEndpoint, family: 4 | 6): NatEndpoint;
  /**
   * A fresh unconnected TCP socket fd of `family` pinned to `ifname` (IP(V6)_BOUND_IF); with
   * `localPort`, bound to that port (SO_REUSEADDR and SO_REUSEPORT first, so sockets of one
   * class share its ports toward different destinations). A port it cannot have throws an
   * error whose `code` is `EADDRINUSE`.
   */
  boundTcpFd(ifname: string, family: 4 | 6, localPort?: number): number;
  /** proc_pidinfo PROC_PIDT_SHORTBSDINFO's ppid; undefined when the process is gone. Without it `awg exec` is refused (flow-router-host.ts) */
  ppid?(pid: number): number | undefined;
  /**
   * A UDP flow's destination and app socket (two DIOCNATLOOKs: pfnatlook.ts
   * udpOriginDarwin). With `pinUdp`, the router relays UDP; without, it carries TCP only and
   * the datagrams PF redirects reach no socket (dropped).
   */
  udpOrigin?(peer: NatEndpoint, listener: NatEndpoint, family: 4 | 6): UdpOrigin;
  /** IP(V6)_BOUND_IF on a bound dgram socket (bound-if.ts bindToInterface) */
  pinUdp?(sock: DgramSocket, ifname: string, family: 4 | 6): void;
}

/** The koffi-backed natives (macOS only; the bindings load on their first call). */
export async function loadDarwinFlowNatives(): Promise<DarwinFlowNatives> {
  const [sys, proc, nat, bif, lay] = await Promise.all([
    import('../../native/darwin/libsystem.js'),
    import('../../native/darwin/libproc.js'),
    import('../../native/darwin/pfnatlook.js'),
    import('../../native/darwin/bound-if.js'),
    import('../../native/darwin/layouts.js'),
  ]);
  return {
    sysctl: (name) => {
      const r = sys.sysctlByName(name);
      if (typeof r === 'number') throw new AwgError('driver', `sysctl ${name}: errno ${-r}`);
      return r;
    },
    pidPath: (pid) => proc.pidPath(pid),
    ppid: (pid) => proc.pidShortInfo(pid)?.ppid,
    originalDst: (local, remote, family) => nat.originalDstDarwin(local, remote, family),
    udpOrigin: (peer, listener, family) => nat.udpOriginDarwin(peer, listener, family),
    pinUdp: (sock, ifname, family) => bif.bindToInterface(sock, ifname, family),
    boundTcpFd: (ifname, family, localPort) => {
      const fd = sys.check(
        'socket(SOCK_STREAM)',
        sys.socket(family === 6 ? sys.D.AF_INET6 : sys.D.AF_INET, sys.D.SOCK_STREAM, 0),
      );
      try {
        bif.bindToInterface(fd, ifname, family);
        if (localPort !== undefined) {
          const one = Uint8Array.of(1, 0, 0, 0);
          for (const o of [sys.D.SO_REUSEADDR, sys.D.SO_REUSEPORT])
            sys.check('setsockopt(SO_REUSE*)', sys.setsockopt(fd, sys.D.SOL_SOCKET, o, one));
          const r = sys.bind(fd, lay.encodeSockaddr(family === 6 ? '::' : '0.0.0.0', localPort));
          if (r === -sys.D.EADDRINUSE || r === -sys.D.EADDRNOTAVAIL)
            throw Object.assign(new Error(`bind port ${localPort}: in use`), {
              code: 'EADDRINUSE',
            });
          sys.check(`bind(port ${localPort})`, r);
        }
      } catch (e) {
        sys.close(fd);
        throw e;
      }
      return fd;
    },
  };
}

/** ports of a limited class tried for one dial before it fails */
export const LOCAL_PORT_TRIES = 16;

/** v4 (also ::ffff:a.b.c.d) or v6 */
const familyOf = (a: string | undefined): 4 | 6 =>
  a && a.includes(':') && !/^::ffff:\d/i.test(a) ? 6 : 4;

/**
 * A dialer whose sockets are pinned to `ifname()` before they connect. Destinations are
 * IP literals here (DIOCNATLOOK gives addresses); a host name is refused rather than
 * resolved through a resolver that may sit in another tunnel.
 */
export function boundDialer(
  ifname: () => string | undefined,
  boundTcpFd: DarwinFlowNatives['boundTcpFd'],
  o: { timeoutMs?: number } = {},
): Dialer {
  let next = 0;
  return async (dst: Destination, opts = {}) => {
    const ifn = ifname();
    const host = dst.host.replace(/^\[(.*)\]$/, '$1');
    if (!ifn) throw new ProxyDialError('unreachable', `no interface to dial ${formatDst(dst)} on`);
    if (isIP(host) === 0) throw new ProxyDialError('blocked', `${formatDst(dst)}: not an address`);
    // a limited class's flow leaves from a port of its range (PF's dummynet rules match it):
    // ports taken in turn; one in use (bind) or whose 4-tuple exists (connect) → the next
    const range = opts.localPorts;
    const size = range ? range[1] - range[0] + 1 : 0;
    const tries = range ? Math.min(size, LOCAL_PORT_TRIES) : 1;
    for (let i = 0; ; i++) {
      const port = range ? range[0] + (next++ % size) : undefined;
      const socketFd = (family: 4 | 6) => {
        try {
          return boundTcpFd(ifn, family, port);
        } catch (e) {
          if (port !== undefined && (e as { code?: string }).code === 'EADDRINUSE') throw e;
          throw new ProxyDialError(
            'unreachable',
            `socket pinned to ${ifn}: ${(e as Error).message}`,
            { cause: e },
          );
        }
      };
      try {
        return await connectTcp({
          host,
          port: dst.port,
          socketFd,
          timeoutMs: o.timeoutMs ?? 10_000,
          allowHalfOpen: true,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
      } catch (e) {
        if (e instanceof ProxyDialError) throw e;
        const code = (e as { code?: string }).code;
        if (port !== undefined && (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL')) {
          if (i + 1 < tries) continue;
          throw new ProxyDialError(
            'unreachable',
            `no free port in ${range![0]}-${range![1]} (the limit's ports) to dial ${formatDst(dst)} from`,
            { cause: e },
          );
        }
        throw new ProxyDialError(
          classifySocketError(e),
          `connect to ${formatDst(dst)} on ${ifn} failed: ${(e as Error).message}`,
          { cause: e },
        );
      }
    }
  };
}

export interface DarwinTunnelRoute {
  /** the utun the tunnel's engine has now (WireGuard tunnels) */
  utun?: () => string | undefined;
  /** the proxy tunnel's upstream dialer (SOCKS5 / HTTP CONNECT) */
  dialer?: Dialer;
}

export interface DarwinFlowRouterOptions extends Pick<
  FlowRouterOptions,
  | 'listen'
  | 'rules'
  | 'default'
  | 'tunnelUp'
  | 'unknownOwner'
  | 'ipv6'
  | 'onLink'
  | 'shaping'
  | 'destinations'
  | 'learned'
  | 'peekTimeoutMs'
> {
  natives: DarwinFlowNatives;
  tunnels: Record<string, DarwinTunnelRoute>;
  /** the physical interface of the default route now (facts: en0…) */
  physical: () => string | undefined;
  /** owner cache size (default 4096) */
  maxOwners?: number;
  /** `awg exec` registrations (matched through natives.ppid) */
  execs?: ExecRegistry;
  timeoutMs?: number;
  /** a UDP flow that could not be relayed (its socket would not open) */
  onError?(message: string): void;
}

export function darwinFlowRouter(o: DarwinFlowRouterOptions): {
  router: FlowRouter;
  lookup: PcbFlowLookup;
} {
  const n = o.natives;
  const lookup = new PcbFlowLookup(
    { sysctl: (x) => n.sysctl(x), pidPath: (p) => n.pidPath(p) },
    o.maxOwners === undefined ? {} : { maxEntries: o.maxOwners },
  );
  const t = o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs };
  const direct = boundDialer(o.physical, n.boundTcpFd, t);
  const tunnelDialers = new Map<string, Dialer>();
  for (const [name, r] of Object.entries(o.tunnels)) {
    if (r.dialer) tunnelDialers.set(name, r.dialer);
    else if (r.utun) tunnelDialers.set(name, boundDialer(r.utun, n.boundTcpFd, t));
  }
  const ifnameOf = (route: string) =>
    route === 'direct' ? o.physical() : o.tunnels[route]?.utun?.();
  const router = new FlowRouter({
    listen: o.listen,
    ...(n.udpOrigin && n.pinUdp
      ? {
          udp: {
            origin: (peer, listener, family) => n.udpOrigin!(peer, listener, family),
            open: (route, dst, family) => {
              const ifn = ifnameOf(route);
              if (!ifn)
                return Promise.reject(
                  new ProxyDialError('unreachable', `no interface for ${route} UDP`),
                );
              return pinnedUdpSocket(ifn, dst, family, n.pinUdp!);
            },
            carries: (name) => o.tunnels[name]?.utun !== undefined,
            ...(o.onError ? { onError: o.onError } : {}),
          },
        }
      : {}),
    rules: o.rules,
    default: o.default,
    tunnelUp: o.tunnelUp,
    ...(o.unknownOwner ? { unknownOwner: o.unknownOwner } : {}),
    ...(o.ipv6 ? { ipv6: o.ipv6 } : {}),
    ...(o.onLink ? { onLink: o.onLink } : {}),
    ...(o.shaping ? { shaping: o.shaping } : {}),
    ...(o.destinations ? { destinations: o.destinations } : {}),
    ...(o.learned ? { learned: o.learned } : {}),
    ...(o.peekTimeoutMs !== undefined ? { peekTimeoutMs: o.peekTimeoutMs } : {}),
    ...(o.execs && n.ppid ? { execs: o.execs, parentOf: (pid: number) => n.ppid!(pid) } : {}),
    lookup,
    dialers: {
      direct,
      tunnel: (name) => tunnelDialers.get(name),
      dialFailureIsDown: (name) => o.tunnels[name]?.dialer !== undefined,
    },
    originalDestination: (sock) => {
      const family = familyOf(sock.localAddress);
      const d = n.originalDst(
        { address: sock.localAddress ?? '', port: sock.localPort ?? 0 },
        { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 },
        family,
      );
      return { host: d.address, port: d.port };
    },
  });
  return { router, lookup };
}

/** What the daemon knows now, asked per connection (nothing is captured at start). */
export interface DarwinFlowRouterHost {
  natives: DarwinFlowNatives;
  /** the tunnels' health (a tunnel that is not up takes its rules' fallbacks) */
  tunnelUp: TunnelUp;
  /** the utun a link (`awg-work`) has now: platform/darwin/utun.ts resolveIfname */
  utun(link: string): string | undefined;
  /** a running proxy tunnel's upstream dialer (ProxyTunnelRuntime.upstream) */
  proxyDialer(tunnel: string): Dialer | undefined;
  /** the physical interface of the default route now */
  physical(): string | undefined;
  /** its connected subnets now (CIDRs); default: os.networkInterfaces() of physical() */
  subnets?(ifname: string): string[];
  /** `awg exec` registrations, kept by the host across rebuilds of the router */
  execs?: ExecRegistry;
}

/** the interface's own subnets as Node sees them (`cidr` of each address), link-local left out (PF skips it) */
function interfaceSubnets(ifname: string): string[] {
  return (networkInterfaces()[ifname] ?? []).flatMap((a) =>
    a.cidr && !/^(169\.254\.|fe80:)/i.test(a.address) ? [a.cidr] : [],
  );
}

/**
 * The router for a config, as realiseDarwinFlow (../darwin-flow.ts) redirects to it: on
 * 127.0.0.1 and ::1 at flowRouterPort, with the config's rules, default and ipv6, the physical
 * interface's subnets reached directly by tunnelled apps too (Linux: main's specific routes
 * win); a WireGuard or
 * AmneziaWG tunnel is dialled on its link's utun, a proxy tunnel through its runtime's
 * upstream (none running: the dial fails, the flow is reset). Unknown owners are blocked.
 */
export function darwinFlowRouterFromConfig(
  c: Pick<Config, 'tunnels' | 'rules' | 'default' | 'routing' | 'ipv6'>,
  h: DarwinFlowRouterHost,
  o: Pick<
    DarwinFlowRouterOptions,
    'maxOwners' | 'timeoutMs' | 'shaping' | 'destinations' | 'learned' | 'peekTimeoutMs' | 'onError'
  > = {},
): { router: FlowRouter; lookup: PcbFlowLookup } {
  const tunnels: Record<string, DarwinTunnelRoute> = {};
  for (const [name, t] of Object.entries(c.tunnels)) {
    if (t.type === 'socks5' || t.type === 'http')
      tunnels[name] = {
        dialer: (dst, opts) => {
          const d = h.proxyDialer(name);
          if (!d)
            return Promise.reject(
              new ProxyDialError('unreachable', `proxy tunnel ${name} is not running`),
            );
          return d(dst, opts);
        },
      };
    else tunnels[name] = { utun: () => h.utun(linkName(name)) };
  }
  return darwinFlowRouter({
    listen: { host: ['127.0.0.1', '::1'], port: flowRouterPort(c.routing) },
    rules: c.rules,
    default: c.default,
    ipv6: c.ipv6,
    onLink: (host) => {
      const ifn = h.physical();
      return ifn !== undefined && inSubnets(host, (h.subnets ?? interfaceSubnets)(ifn));
    },
    tunnelUp: (n, r) => h.tunnelUp(n, r),
    natives: h.natives,
    tunnels,
    physical: () => h.physical(),
    ...(h.execs ? { execs: h.execs } : {}),
    ...o,
  });
}
