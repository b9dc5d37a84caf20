/**
 * Tunnels (`tunnels:`): WireGuard and AmneziaWG interfaces with their peers and engine, and
 * SOCKS5 and HTTP proxies; the tunnel name rules and the helpers that read a tunnel. Part of
 * the model in schema.ts.
 */
import * as z from 'zod';
import { isHostOrIp, utf8Length } from './grammar.js';
import {
  fittingMtu,
  MIN_DEFAULT_MTU,
  MIN_MTU,
  OUTER_HEADERS,
  PATH_MTU,
  TRANSPORT_OVERHEAD,
} from './mtu.js';
import { AwgObfuscation, AwgProfile } from './schema-obfuscation.js';
import { TunnelHealth } from './schema-health.js';
import { Limit } from './rate.js';
import { KEEPALIVE_RANGE_NOT_WIREGUARD } from './keepalive.js';
import { Cidr, Endpoint, IpAddress, Port, Secret, Text, U16Range, WgKey } from './schema-values.js';

/** Tunnel names become link names `awg-<name>`; Linux IFNAMSIZ allows 15 characters. */
export const LINK_PREFIX = 'awg-';
export const MAX_TUNNEL_NAME = 15 - LINK_PREFIX.length;
export const TUNNEL_NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;

export const Peer = z
  .strictObject({
    publicKey: WgKey.meta({ description: "The peer's public key (base64)." }),
    presharedKey: Secret.optional().meta({
      description: 'Optional pre-shared symmetric key (base64), as a secret.',
    }),
    endpoint: Endpoint.optional(),
    allowedIPs: z.array(Cidr).default([]).meta({
      description: 'Addresses routed to and accepted from this peer (cryptokey routing).',
    }),
    persistentKeepalive: z
      .number({
        // a range (or a string) has a why: WireGuard keeps one interval
        error: (iss) =>
          typeof iss.input === 'string' || (typeof iss.input === 'object' && iss.input !== null)
            ? KEEPALIVE_RANGE_NOT_WIREGUARD
            : undefined,
      })
      .int()
      .min(0)
      .max(65535)
      .optional()
      .meta({ description: 'Seconds between keepalives; 0 or absent disables them.' }),
  })
  .meta({ id: 'Peer' });
export type Peer = z.infer<typeof Peer>;

/**
 * A peer of an `amneziawg` tunnel: AmneziaWG 3.x lets its persistent keepalive be a range, a
 * fresh interval drawn from it each time the timer is armed (UAPI
 * `persistent_keepalive_interval=MIN-MAX`).
 */
export const AwgPeer = Peer.extend({
  persistentKeepalive: U16Range.optional().meta({
    description:
      'Seconds between keepalives; 0 or absent disables them. AmneziaWG 3.x: a range "MIN-MAX" (or {min, max}, MIN at least 1) draws a fresh interval from it each time the timer is armed, as amneziawg-go 3.x does; the engine must speak AmneziaWG 3.x (embedded, or amneziawg-go 3.x), not `kernel`.',
  }),
}).meta({ id: 'AwgPeer' });
export type AwgPeer = z.infer<typeof AwgPeer>;

/** The Debian/upstream UAPI socket directories: wireguard-go's, and amneziawg-go's own. */
export const WIREGUARD_UAPI_DIR = '/var/run/wireguard';
export const AMNEZIAWG_UAPI_DIR = '/var/run/amneziawg';

const AbsolutePath = (what: string) =>
  Text().min(2).max(4095).regex(/^\//, `must be an absolute path (${what})`);

export const ExternalEngine = z
  .strictObject({
    external: AbsolutePath('the engine program').meta({
      description:
        'A UAPI-speaking userspace engine (wireguard-go, amneziawg-go, or a wrapper that runs one), started as `PROGRAM -f awg-<tunnel>` with `WG_PROCESS_FOREGROUND=1`: it attaches to the TUN awg made and is configured over its UAPI socket. Must be a regular executable file.',
    }),
    uapiDir: AbsolutePath('a directory')
      .optional()
      .meta({
        description: `Where the program puts its UAPI socket \`<dir>/awg-<tunnel>.sock\`. Absent: \`${AMNEZIAWG_UAPI_DIR}\` when the program's file name starts with \`amneziawg\` (amneziawg-go's fixed directory), else \`${WIREGUARD_UAPI_DIR}\` (wireguard-go's). The program gets it as \`AWG_UAPI_DIR\` too (what \`awg engine -f\` reads).`,
      }),
  })
  .meta({ id: 'ExternalEngine' });
export type ExternalEngine = z.infer<typeof ExternalEngine>;

export const Engine = z
  .union([z.enum(['embedded', 'kernel']), ExternalEngine], {
    error: 'must be "embedded", "kernel" or {external: /absolute/path}',
  })
  .meta({
    id: 'Engine',
    description:
      "What runs the tunnel. `embedded` (the default): awg's own engine. `kernel`: Linux's in-kernel WireGuard module (a `wireguard` link configured over generic netlink; no AmneziaWG obfuscation). `{external: PATH}`: a userspace engine such as amneziawg-go or wireguard-go that awg starts, configures over UAPI, checks and restarts. Changing it replaces the engine.",
  });
export type Engine = z.infer<typeof Engine>;

const TunnelLimit = Limit.optional().meta({
  description:
    "Bandwidth limits for everything this tunnel carries together; its rules' own limits share it (docs/limits.md).",
});

const wgFields = {
  engine: Engine.optional(),
  privateKey: Secret.meta({
    description: "This interface's private key (base64): `{file: ...}`, `{env: ...}` or inline.",
  }),
  addresses: z
    .array(Cidr)
    .min(1)
    .meta({ description: 'Addresses assigned to the tunnel interface (v4 and/or v6).' }),
  listenPort: Port.optional().meta({ description: 'UDP port to listen on; random when absent.' }),
  mtu: z
    .number()
    .int()
    .min(MIN_MTU)
    .max(9000)
    .optional()
    .meta({
      description: `Tunnel MTU. Absent: ${fittingMtu(0)} for WireGuard, ${fittingMtu(0)} − s4 for AmneziaWG (not below ${MIN_DEFAULT_MTU}), so that transport datagrams (MTU + ${TRANSPORT_OVERHEAD} + s4 bytes of UDP payload) fit a ${PATH_MTU}-byte path with IPv6 outer headers (${OUTER_HEADERS[6]} bytes; IPv4: ${OUTER_HEADERS[4]}). Content padding (AmneziaWG 3.x) never pads a full-size packet, so the default holds with it. validate warns about an MTU whose datagrams do not fit: TCP through the embedded engine is clamped to fit then, but with contentPaddingAddition the clamped segments come padded to random sizes that cannot be sent in batches (about half the throughput at 1420 with s4: 23). On a smaller path lower it by the difference (PPPoE's 1492: 8 less).`,
    }),
  dns: z.array(IpAddress).default([]).meta({
    description:
      'Resolvers reached through this tunnel. Used for per-app DNS and when this tunnel is the default.',
  }),
  peers: z.array(Peer).min(1).meta({ description: 'Peers of this interface.' }),
  table: z
    .number()
    .int()
    .min(1)
    .max(0xfffffffe)
    .optional()
    .meta({ description: 'Routing table number; allocated from the claimed band when absent.' }),
  fwmark: z.number().int().min(1).max(0xffffffff).optional().meta({
    description: 'Packet mark for this tunnel; allocated inside the claimed mask when absent.',
  }),
  downAfter: z.number().int().min(1).max(3600).default(15).meta({
    description:
      'Seconds a handshake may stay unanswered before the daemon counts the tunnel as down and rules switch to their fallback. While down, the daemon keeps probing with handshakes; the first answer brings the tunnel back up.',
  }),
  limit: TunnelLimit,
  health: TunnelHealth.optional(),
};

export const WireguardTunnel = z.strictObject({ type: z.literal('wireguard'), ...wgFields }).meta({
  id: 'WireguardTunnel',
  description: "A WireGuard tunnel, run by the engine `engine` names (awg's own by default).",
});
export const AmneziawgTunnel = z
  .strictObject({
    type: z.literal('amneziawg'),
    ...wgFields,
    peers: z.array(AwgPeer).min(1).meta({ description: 'Peers of this interface.' }),
    obfuscation: AwgObfuscation.default({}),
    profiles: z.array(AwgProfile).min(1).max(16).optional().meta({
      description:
        'Obfuscation profiles tried in order while the tunnel is down for `handshake` or `no-data` (the path drops this obfuscation): each is `obfuscation:` with its own fields on top. The daemon starts with the first (or the one that last worked on this network: the default gateway, with its MAC and the Wi-Fi SSID where known), moves to the next when the tunnel goes down (wrapping, at most once per detection bound), keeps the one that works and remembers it per network. Profiles may change only client-side parameters (jc, jmin, jmax, i1-i5, contentPaddingAddition, timings, disableCookies) unless they say `server: true` (docs/architecture.md#obfuscation-profiles).',
    }),
  })
  .meta({
    id: 'AmneziawgTunnel',
    description: 'An AmneziaWG tunnel: WireGuard with obfuscation parameters.',
  });

const ProxyUsername = Text()
  .min(1)
  .max(255)
  .refine((s) => utf8Length(s) <= 255, 'must be at most 255 bytes (UTF-8)')
  .meta({ description: 'At most 255 bytes, no control characters.' });
const ProxyAuth = z
  .strictObject({ username: ProxyUsername, password: Secret })
  .meta({ id: 'ProxyAuth' });
/** RFC 7617: a Basic user-id cannot hold ":" (the server splits at the first one) */
const HttpProxyAuth = z
  .strictObject({
    username: ProxyUsername.refine(
      (s) => !s.includes(':'),
      'an HTTP Basic user name cannot contain ":"',
    ).meta({ description: 'At most 255 bytes, no control characters, no ":" (RFC 7617).' }),
    password: Secret,
  })
  .meta({ id: 'HttpProxyAuth' });
const ProxyServer = z
  .string()
  .min(1)
  .refine(
    isHostOrIp,
    'must be an RFC 1123 host name, a dotted-quad IPv4 address without leading zeros, or an IPv6 address',
  )
  .meta({ description: 'Proxy host name or address.' });

export const Socks5Tunnel = z
  .strictObject({
    type: z.literal('socks5'),
    server: ProxyServer,
    port: Port.default(1080),
    auth: ProxyAuth.optional().meta({ description: 'RFC 1929 username/password authentication.' }),
    udp: z.boolean().default(false).meta({
      description:
        "Carry the UDP of this tunnel's apps through SOCKS5 UDP ASSOCIATE (RFC 1928 §7), every port, one association per flow (Linux); UDP/53 goes to the first `dns` server. Without it their UDP takes the rule's fallback: allow-direct sends it directly, block, failover and drop drop it (UDP of the default route is dropped).",
    }),
    dns: z.array(IpAddress).default([]).meta({
      description:
        "Resolvers for apps routed through this proxy: their port-53 traffic goes to the first one through the proxy (TCP through CONNECT; UDP through UDP ASSOCIATE with `udp: true`, otherwise each query as DNS over TCP through CONNECT, answered over UDP). Without `dns`, DNS is like the apps' other traffic: to the resolver they ask, through the proxy (UDP only with `udp: true`).",
    }),
    fwmark: z.number().int().min(1).max(0xffffffff).optional(),
    limit: TunnelLimit,
    health: TunnelHealth.optional(),
  })
  .meta({
    id: 'Socks5Tunnel',
    description: 'A SOCKS5 proxy used as a tunnel through a transparent proxy.',
  });

export const HttpTunnel = z
  .strictObject({
    type: z.literal('http'),
    server: ProxyServer,
    port: Port.default(8080),
    auth: HttpProxyAuth.optional().meta({ description: 'Basic authentication.' }),
    tls: z.boolean().default(false).meta({ description: 'Connect to the proxy over TLS.' }),
    dns: z.array(IpAddress).default([]).meta({
      description:
        "Resolvers for apps routed through this proxy: their port-53 traffic goes to the first one through CONNECT (each UDP query as DNS over TCP, answered over UDP). Without `dns`, their UDP DNS takes the rule's fallback like their other UDP.",
    }),
    fwmark: z.number().int().min(1).max(0xffffffff).optional(),
    limit: TunnelLimit,
    health: TunnelHealth.optional(),
  })
  .meta({
    id: 'HttpTunnel',
    description:
      "An HTTP CONNECT proxy used as a tunnel. TCP only: its apps' UDP takes the rule's fallback (allow-direct: sent directly; otherwise dropped).",
  });

export const Tunnel = z
  .discriminatedUnion('type', [WireguardTunnel, AmneziawgTunnel, Socks5Tunnel, HttpTunnel], {
    error: (iss) =>
      iss.code === 'invalid_union' &&
      (iss.input as { type?: unknown } | undefined)?.type === undefined
        ? 'missing "type" (wireguard, amneziawg, socks5 or http)'
        : 'type must be one of wireguard, amneziawg, socks5, http',
  })
  .meta({ id: 'Tunnel' });
export type Tunnel = z.infer<typeof Tunnel>;
export type WgLikeTunnel = z.infer<typeof WireguardTunnel> | z.infer<typeof AmneziawgTunnel>;
export type ProxyTunnel = z.infer<typeof Socks5Tunnel> | z.infer<typeof HttpTunnel>;

export function isWgLike(t: Tunnel): t is WgLikeTunnel {
  return t.type === 'wireguard' || t.type === 'amneziawg';
}

/** `engine:` as the model reads it: absent means `embedded`. */
export function engineOf(t: WgLikeTunnel): Engine {
  return t.engine ?? 'embedded';
}

export function linkName(tunnel: string): string {
  return LINK_PREFIX + tunnel;
}
