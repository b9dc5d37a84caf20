/**
 * How awg's own fetches reach a server through a tunnel (`to.lists: [{url, via: TUNNEL}]`,
 * util/list-fetch.ts), the way the tunnel carries traffic:
 * - a tunnel with a link (the embedded engine's TUN, the kernel's `wireguard` link): a socket
 *   held to that link (link-pin.ts: SO_BINDTODEVICE on Linux, IP_BOUND_IF on the link's utun
 *   on macOS, where the caller passes its pin), so the connection leaves
 *   through the tunnel whatever the routing tables and marks say; a host name is looked up
 *   with the tunnel's own resolvers through the same link when it has any (`dns:`), else
 *   with the system resolver;
 * - a proxy tunnel (socks5, http): through the proxy, as its engine dials (the running
 *   runtime's upstream in the daemon; `awg lists update` without a daemon builds the same
 *   dialer from the config and its secrets); the proxy resolves host names.
 */
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { AwgError } from '../../errors.js';
import type { Config } from '../../config/schema.js';
import { isProxyEngine, type DesiredState, type EngineSpec } from '../../model/resources.js';
import type { Connector } from '../../util/list-fetch.js';
import type { Dialer } from '../../proxy/types.js';
import { devicePin, type LinkPinOf } from './link-pin.js';

/** a running proxy tunnel's upstream dialer (the engine host's proxyDialer) */
export type ViaDialer = Dialer;

export type ViaRoute =
  { tunnel: string; link: string; dns: readonly string[] } | { tunnel: string; dialer: Dialer };

export function viaConnector(r: ViaRoute, pinOf: LinkPinOf = devicePin): Connector {
  if ('dialer' in r)
    return async (host, port, o): Promise<Duplex> => {
      const ac = new AbortController();
      const t = setTimeout(() => ac.abort(), o.timeoutMs);
      try {
        return await r.dialer({ host, port }, { signal: ac.signal });
      } finally {
        clearTimeout(t);
      }
    };
  return async (host, port, o) => {
    const [{ connectTcp }, { resolveDirect }, pin] = await Promise.all([
      import('../../native/tcpsock.js'),
      import('../../native/dns-client.js'),
      pinOf(r.link),
    ]);
    const servers = r.dns.filter((s) => isIP(s) !== 0);
    return connectTcp({
      host,
      port,
      timeoutMs: o.timeoutMs,
      socketFd: (f) => pin.tcpFd(f),
      ...(servers.length ? { resolve: (h: string) => resolveDirect(h, { servers, pin }) } : {}),
    });
  };
}

/** the secret a proxy tunnel's dialer needs (prepare's secrets, by config path) */
export type SecretOf = (path: string) => string | undefined;

/**
 * The route through tunnel `tunnel` of the desired state (its engine spec). `proxyDialer`:
 * a running proxy tunnel's upstream (the daemon); without one, a proxy tunnel's dialer is
 * made from its spec and `secret` (the password).
 */
export async function viaRouteOf(
  tunnel: string,
  o: {
    desired: DesiredState;
    config: Config;
    proxyDialer?: ((tunnel: string) => Dialer | undefined) | undefined;
    secret?: SecretOf | undefined;
  },
): Promise<ViaRoute> {
  const spec = o.desired.resources.find((r) => r.kind === 'engine' && r.spec.tunnel === tunnel)
    ?.spec as EngineSpec | undefined;
  if (!spec)
    throw new AwgError('invalid-config', `via: tunnel ${tunnel} has no engine in this config`);
  if (!isProxyEngine(spec)) {
    const t = o.config.tunnels[tunnel] as { dns?: string[] } | undefined;
    return { tunnel, link: spec.link, dns: t?.dns ?? [] };
  }
  const running = o.proxyDialer?.(tunnel);
  if (running) return { tunnel, dialer: running };
  const c = spec.config;
  const auth = c.auth
    ? { username: c.auth.username, password: o.secret?.(`tunnels.${tunnel}.auth.password`) ?? '' }
    : undefined;
  const base = { server: c.server, port: c.port, auth, bypassMark: c.fwmark, timeoutMs: 15_000 };
  if (spec.type === 'socks5')
    return { tunnel, dialer: (await import('../../proxy/socks5.js')).socks5Dialer(base) };
  const { httpConnectDialer } = await import('../../proxy/http-connect.js');
  return { tunnel, dialer: httpConnectDialer({ ...base, tls: c.tls ?? false }) };
}
