/**
 * The config model: the single source of truth for the YAML format. The JSON Schema in
 * schema/ and the config reference in docs/ are generated from this file.
 *
 * Shape-level rules live here (types, ranges, formats). Rules that relate several fields
 * or several objects (references, overlaps, AmneziaWG cross-field limits) live in
 * semantic.ts, so that every problem is reported at once with its location.
 */
import * as z from 'zod';
import { isCidr } from './cidr.js';
import {
  globProblem,
  hasControl,
  I_TAG_CHAIN,
  MAX_GLOB_WILDCARDS_PER_SEGMENT,
  ipLiteralProblem,
  isCanonicalIPv4,
  isHostName,
  isHostOrIp,
  isPlainIPv6,
  utf8Length,
} from './grammar.js';
import { compileLinearRegex, MAX_PROGRAM } from '../util/linear-regex.js';
import { parseTagString } from './tags.js';
import { Overlays } from './overlay.js';
import {
  fittingMtu,
  MIN_DEFAULT_MTU,
  MIN_MTU,
  OUTER_HEADERS,
  PATH_MTU,
  TRANSPORT_OVERHEAD,
} from './mtu.js';

export const CONFIG_VERSION = 1;

/** Tunnel names become link names `awg-<name>`; Linux IFNAMSIZ allows 15 characters. */
export const LINK_PREFIX = 'awg-';
export const MAX_TUNNEL_NAME = 15 - LINK_PREFIX.length;
export const TUNNEL_NAME_RE = /^[a-z0-9][a-z0-9_-]*$/;
export const RESERVED_TARGETS = ['direct', 'block'] as const;

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A string with no control character (line breaks, tabs, NUL, ESC …): see grammar.ts. */
const Text = () =>
  z
    .string()
    .refine(
      (s) => !hasControl(s),
      'must not contain control characters (line breaks, tabs, NUL, escapes)',
    );

export const Secret = z
  .union(
    [
      z
        .string()
        .min(1)
        .meta({ description: 'Inline value. Prefer `file` or `env` so the YAML can be shared.' }),
      z.strictObject({
        file: z.string().min(1).meta({
          description:
            'Path to a file holding the value (relative paths are relative to the config file). Trailing whitespace is trimmed.',
        }),
      }),
      z.strictObject({
        env: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
          .meta({ description: 'Name of an environment variable holding the value.' }),
      }),
      z.strictObject({
        age: z.string().min(1).max(4096).meta({
          description:
            "Path to an age-encrypted file holding the value (binary or armoured; relative paths are relative to the file that names it), decrypted with this host's identity ($AWG_AGE_IDENTITY, default /etc/awg/age-identity.txt; `awg secret`). Safe to commit to a shared repository.",
        }),
      }),
    ],
    { error: 'must be a string, {file: PATH}, {env: NAME} or {age: PATH}' },
  )
  .meta({
    id: 'Secret',
    description:
      'A secret: inline, `{file: path}`, `{env: NAME}` or `{age: path}` (encrypted to this host). Never printed in plans, status, logs or API responses.',
  });
export type Secret = z.infer<typeof Secret>;

export const WgKey = z
  .string()
  .regex(KEY_RE, 'must be a base64-encoded 32-byte WireGuard key (44 characters ending in "=")');

export const Cidr = z
  .string()
  .refine(isCidr, 'must be an IPv4/IPv6 address or CIDR, e.g. 10.0.0.2/32 or fd00::2/128')
  .refine(
    (s) => !s.includes('%') && !(s.includes(':') && s.includes('.')),
    'write IPv6 without a zone (%…) and without a dotted IPv4 part (use hex groups)',
  )
  .meta({ description: 'An IPv4 or IPv6 address with optional prefix length.' });

/** A canonical IP literal (grammar.ts canonicalIp): `010.0.0.1` or `FD00::1` are refused with the form to write. */
export const IpAddress = z
  .string()
  .superRefine((s, ctx) => {
    const why = ipLiteralProblem(s);
    if (why) ctx.addIssue({ code: 'custom', message: why });
  })
  .meta({
    description:
      'An IPv4 address in dotted-quad decimal or an IPv6 address in RFC 5952 form (lower case, zeros compressed), with no zone.',
  });

/** host:port, [v6]:port; hostnames are allowed and re-resolved by the engine. */
export const ENDPOINT_RE = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+|[0-9.]+)):(\d{1,5})$/;
export const Endpoint = z
  .string()
  .superRefine((s, ctx) => {
    const m = ENDPOINT_RE.exec(s);
    if (!m) ctx.addIssue({ code: 'custom', message: 'must be host:port or [ipv6]:port' });
    else if (!(Number(m[3]) >= 1 && Number(m[3]) <= 65535))
      ctx.addIssue({ code: 'custom', message: 'port must be 1-65535' });
    else if (
      m[1] !== undefined ? !isPlainIPv6(m[1]) : !isCanonicalIPv4(m[2]!) && !isHostName(m[2]!)
    )
      ctx.addIssue({
        code: 'custom',
        message:
          m[1] !== undefined
            ? 'the address in [ ] must be an IPv6 address without a zone or dotted IPv4 part'
            : 'the host must be a dotted-quad IPv4 address without leading zeros or an RFC 1123 host name',
      });
  })
  .meta({
    description:
      'Peer endpoint `host:port` or `[ipv6]:port`. Hostnames are resolved at start and re-resolved when handshakes keep failing.',
  });

const Port = z.number().int().min(1).max(65535);
const U16 = z.number().int().min(0).max(65535);
const U32 = z.number().int().min(0).max(0xffffffff);

/** `5`, or the range string `"5-10"`, or `{min, max}`. */
export const U32Range = z
  .union(
    [
      U32,
      z
        .string()
        .regex(/^\d+(-\d+)?$/, 'must be "N" or "MIN-MAX"')
        .refine(
          (s) => s.split('-').every((x) => Number(x) <= 0xffffffff),
          'values must be at most 4294967295',
        ),
      z.strictObject({ min: U32, max: U32 }),
    ],
    { error: 'must be a number 0-4294967295, "MIN-MAX" or {min, max}' },
  )
  .meta({
    id: 'U32Range',
    description: 'A uint32 value, or an inclusive range written "MIN-MAX" or {min, max}.',
  });
export type U32Range = z.infer<typeof U32Range>;

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
      .number()
      .int()
      .min(0)
      .max(65535)
      .optional()
      .meta({ description: 'Seconds between keepalives; 0 or absent disables them.' }),
  })
  .meta({ id: 'Peer' });
export type Peer = z.infer<typeof Peer>;

/** AmneziaWG 3.x range: awg-quick packs each end into a uint16, so the model does too. */
export const U16Range = z
  .union(
    [
      U16,
      z
        .string()
        .regex(/^\d+(-\d+)?$/, 'must be "N" or "MIN-MAX"')
        .refine(
          (s) => s.split('-').every((x) => Number(x) <= 65535),
          'values must be at most 65535',
        ),
      z.strictObject({ min: U16, max: U16 }),
    ],
    { error: 'must be a number 0-65535, "MIN-MAX" or {min, max}' },
  )
  .meta({
    id: 'U16Range',
    description:
      'A uint16 value, or an inclusive range written "MIN-MAX" or {min, max}. 0 means unset (the WireGuard default).',
  });
export type U16Range = z.infer<typeof U16Range>;

/**
 * I1-I5: tags only (grammar.ts I_TAG_CHAIN, published as the JSON Schema pattern); the
 * messages name the first problem (tags.ts).
 */
const ITags = z
  .string()
  .superRefine((s, ctx) => {
    const r = parseTagString(s);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.error });
    else if (!I_TAG_CHAIN.test(s))
      ctx.addIssue({ code: 'custom', message: 'must be tags only, e.g. "<b 0xc0ffee><r 16><t>"' });
  })
  .meta({ pattern: I_TAG_CHAIN.source });

export const AwgObfuscation = z
  .strictObject({
    jc: z.number().int().min(0).max(128).optional().meta({
      description:
        'Junk packets sent before each handshake initiation (0-128; 4-12 recommended). Sender-side only.',
    }),
    jmin: z
      .number()
      .int()
      .min(0)
      .max(1280)
      .optional()
      .meta({ description: 'Minimum junk packet size in bytes.' }),
    jmax: z
      .number()
      .int()
      .min(0)
      .max(1280)
      .optional()
      .meta({ description: 'Maximum junk packet size in bytes (<= 1280).' }),
    s1: U16.optional().meta({
      description: 'Random bytes prepended to handshake initiations. Must match the peer.',
    }),
    s2: U16.optional().meta({
      description: 'Random bytes prepended to handshake responses. Must match the peer.',
    }),
    s3: U16.optional().meta({
      description: 'Random bytes prepended to cookie replies. Must match the peer.',
    }),
    s4: U16.optional().meta({
      description: 'Random bytes prepended to transport packets. Must match the peer.',
    }),
    h1: U32Range.optional().meta({
      description: 'Message type value (or range) for initiations. Must match the peer.',
    }),
    h2: U32Range.optional().meta({
      description: 'Message type value (or range) for responses. Must match the peer.',
    }),
    h3: U32Range.optional().meta({
      description: 'Message type value (or range) for cookie replies. Must match the peer.',
    }),
    h4: U32Range.optional().meta({
      description: 'Message type value (or range) for transport data. Must match the peer.',
    }),
    i1: ITags.optional().meta({
      description:
        'Signature packet 1 in the tag language, sent before each initiation: only tags, optionally separated by spaces: `<b 0xHEX>` literal bytes, `<r N>` random bytes, `<rc N>` random letters, `<rd N>` random digits, `<t>` Unix time (4 bytes).',
    }),
    i2: ITags.optional().meta({ description: 'Signature packet 2 (same language as i1).' }),
    i3: ITags.optional().meta({ description: 'Signature packet 3 (same language as i1).' }),
    i4: ITags.optional().meta({ description: 'Signature packet 4 (same language as i1).' }),
    i5: ITags.optional().meta({ description: 'Signature packet 5 (same language as i1).' }),
    headerProtectionKey: Secret.optional().meta({
      description:
        'AmneziaWG 3.x: 32-byte key (base64), as a secret, that encrypts every message header with ChaCha20 (nonce = the first 12 bytes of the S prefix), so s1-s4 must each be at least 12. Must match the peer. Only its fingerprint appears in plans and status. Absent: headers in clear.',
    }),
    contentPaddingAddition: U16Range.optional().meta({
      description:
        'AmneziaWG 3.x: random zero padding (bytes, picked from the range per packet, capped at the MTU) inside each transport packet instead of the 16-byte rule. Sender-side only. Absent or 0: WireGuard padding.',
    }),
    rekeyAfterTime: U16Range.optional().meta({
      description:
        "AmneziaWG 3.x: seconds after which the initiator starts a new handshake (drawn from the range each time). Absent or 0: WireGuard's 120. Local timing only.",
    }),
    rekeyTimeout: U16Range.optional().meta({
      description:
        "AmneziaWG 3.x: seconds before an unanswered initiation is retransmitted; its minimum is also the initiation rate limit. Absent or 0: WireGuard's 5. Local timing only.",
    }),
    rejectAfterTime: U16Range.optional().meta({
      description:
        "AmneziaWG 3.x: seconds after which a session key is no longer used (its maximum); must exceed rekeyAfterTime and keepaliveTimeout + rekeyTimeout. Absent or 0: WireGuard's 180. Local timing only.",
    }),
    keepaliveTimeout: U16Range.optional().meta({
      description:
        "AmneziaWG 3.x: seconds of silence after received data before a passive keepalive is sent. Absent or 0: WireGuard's 10. Local timing only.",
    }),
    maxHandshakeAttempts: U16Range.optional().meta({
      description:
        "AmneziaWG 3.x: initiations sent before giving up on a handshake (drawn from the range). Absent or 0: WireGuard's 18.",
    }),
    randomTrailers: z.boolean().optional().meta({
      description:
        'AmneziaWG 3.1: append random bytes after handshake messages and pad transport packets randomly. A receiver without it drops such handshakes, so it must match the peer. Absent: false.',
    }),
    disableCookies: z.boolean().optional().meta({
      description:
        'AmneziaWG 3.1: never send cookie replies (the under-load DoS defence). Absent: false.',
    }),
  })
  .meta({
    id: 'AwgObfuscation',
    description: 'AmneziaWG obfuscation parameters. All absent means plain WireGuard on the wire.',
  });
export type AwgObfuscation = z.infer<typeof AwgObfuscation>;

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
      description: `Tunnel MTU. Absent: ${fittingMtu(0)} for WireGuard, ${fittingMtu(0)} − s4 for AmneziaWG (not below ${MIN_DEFAULT_MTU}), so that transport datagrams (MTU + ${TRANSPORT_OVERHEAD} + s4 bytes of UDP payload) fit a ${PATH_MTU}-byte path with IPv6 outer headers (${OUTER_HEADERS[6]} bytes; IPv4: ${OUTER_HEADERS[4]}). validate warns about an MTU whose datagrams do not fit. On a smaller path lower it by the difference (PPPoE's 1492: 8 less).`,
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
};

export const WireguardTunnel = z.strictObject({ type: z.literal('wireguard'), ...wgFields }).meta({
  id: 'WireguardTunnel',
  description: "A WireGuard tunnel, run by the engine `engine` names (awg's own by default).",
});
export const AmneziawgTunnel = z
  .strictObject({
    type: z.literal('amneziawg'),
    ...wgFields,
    obfuscation: AwgObfuscation.default({}),
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
        "Carry the DNS queries (UDP/53) of this tunnel's apps through UDP ASSOCIATE to the first `dns` server. Other UDP of these apps is dropped: transparent UDP would need TPROXY.",
    }),
    dns: z.array(IpAddress).default([]).meta({
      description:
        'Resolvers for apps routed through this proxy: their port-53 traffic goes to the first one through the proxy (TCP through CONNECT; UDP through UDP ASSOCIATE with `udp: true`, otherwise answered locally with TC=1 so resolvers retry over TCP). Without `dns`, their UDP DNS is dropped.',
    }),
    fwmark: z.number().int().min(1).max(0xffffffff).optional(),
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
        'Resolvers for apps routed through this proxy: their port-53 traffic goes to the first one through CONNECT (UDP queries are answered locally with TC=1, so resolvers retry over TCP). Without `dns`, their UDP DNS is dropped.',
    }),
    fwmark: z.number().int().min(1).max(0xffffffff).optional(),
  })
  .meta({ id: 'HttpTunnel', description: 'An HTTP CONNECT proxy used as a tunnel (TCP only).' });

export const Tunnel = z
  .discriminatedUnion('type', [WireguardTunnel, AmneziawgTunnel, Socks5Tunnel, HttpTunnel], {
    error: (iss) =>
      iss.code === 'invalid_union' && (iss.input as any)?.type === undefined
        ? 'missing "type" (wireguard, amneziawg, socks5 or http)'
        : 'type must be one of wireguard, amneziawg, socks5, http',
  })
  .meta({ id: 'Tunnel' });
export type Tunnel = z.infer<typeof Tunnel>;
export type WgLikeTunnel = z.infer<typeof WireguardTunnel> | z.infer<typeof AmneziawgTunnel>;
export type ProxyTunnel = z.infer<typeof Socks5Tunnel> | z.infer<typeof HttpTunnel>;

/** match.regex runs in the linear-time engine (util/linear-regex.ts); what it cannot run is refused here */
function linearRegex(s: string, ctx: z.RefinementCtx): void {
  try {
    compileLinearRegex(s);
  } catch (e) {
    ctx.addIssue({
      code: 'custom',
      message: `unsupported regular expression: ${(e as Error).message}`,
    });
  }
}

export const Match = z
  .union(
    [
      z.strictObject({
        name: Text()
          .min(1)
          .regex(/^[^/]+$/, 'an executable name has no "/"; use `path` or `dir` for paths')
          .meta({
            description:
              'Exact executable file name (basename of /proc/PID/exe), e.g. `firefox-esr`.',
          }),
        ignoreCase: z.boolean().default(false),
      }),
      z.strictObject({
        path: Text()
          .min(1)
          .regex(/^\//, 'must be an absolute path or glob')
          .superRefine((s, ctx) => {
            const why = globProblem(s);
            if (why) ctx.addIssue({ code: 'custom', message: why });
          })
          .meta({
            description: `Absolute path glob of the executable (picomatch: \`*\` within a segment, \`**\` across segments, \`{a,b}\`). At most ${MAX_GLOB_WILDCARDS_PER_SEGMENT} \`*\` and \`{…}\` per segment; no extglobs or groups (see docs/security.md).`,
          }),
        ignoreCase: z.boolean().default(false),
      }),
      z.strictObject({
        dir: Text()
          .min(1)
          .regex(/^\//, 'must be an absolute directory')
          .meta({ description: 'Any executable below this directory, recursively.' }),
        ignoreCase: z.boolean().default(false),
      }),
      z.strictObject({
        regex: Text()
          .min(1)
          .superRefine(linearRegex)
          .meta({
            description: `JavaScript regular expression tested against the full executable path (not anchored unless you anchor it), run in linear time: backreferences, lookahead/lookbehind, octal escapes, \\ before a letter with no meaning and a literal { } ] outside a class are refused, and the compiled pattern is limited to ${MAX_PROGRAM} instructions (see docs/security.md).`,
          }),
        ignoreCase: z.boolean().default(false),
      }),
    ],
    { error: 'must have exactly one of name, path, dir or regex (plus optional ignoreCase)' },
  )
  .meta({
    id: 'Match',
    description:
      'Exactly one of `name`, `path`, `dir`, `regex`. Matching is case-sensitive unless `ignoreCase: true`.',
  });
export type Match = z.infer<typeof Match>;

export const FALLBACKS = ['allow-direct', 'block', 'drop', 'failover'] as const;
export const Fallback = z.enum(FALLBACKS).meta({
  description:
    "What happens while the target tunnel is not up. allow-direct: go direct. block: drop until the tunnel is back. drop: always drop this app's traffic, tunnel up or not. failover: use the next matching enabled rule (none left: block).",
});

export const Rule = z
  .strictObject({
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'use letters, digits, ".", "_" and "-"')
      .optional()
      .meta({ description: 'Name shown in status and counters; defaults to rule-<index>.' }),
    match: Match,
    target: Text().min(1).meta({ description: 'A tunnel name, `direct` or `block`.' }),
    fallback: Fallback.default('block'),
    enabled: z.boolean().default(true),
  })
  .meta({
    id: 'Rule',
    description:
      'Rules are ordered; the first enabled rule whose match fits a process decides its route.',
  });
export type Rule = z.infer<typeof Rule>;

export const KillSwitch = z
  .union(
    [
      z.enum(['off', 'on']),
      z.strictObject({
        enabled: z.boolean(),
        allowLan: z.boolean().default(false).meta({
          description:
            'Allow private/link-local destinations (RFC 1918, fc00::/7, fe80::/10) outside the tunnels.',
        }),
      }),
    ],
    { error: 'must be "off", "on" or {enabled: BOOL, allowLan: BOOL}' },
  )
  .default('off')
  .meta({
    id: 'KillSwitch',
    description:
      "When on, all egress is dropped except loopback, our tunnels, the engines' traffic to tunnel endpoints, DHCP and (optionally) the LAN. It holds before the first connect, during outages and while the daemon is stopped. It is strict: apps routed direct (`target: direct` rules, `allow-direct` while their tunnel is down, `awg exec --direct`) are blocked too, except to the LAN with `allowLan` (validate warns about such rules).",
  });

export const Dns = z
  .strictObject({
    leakProtection: z.boolean().default(false).meta({
      description: 'Drop DNS (53/853) egress except to tunnel resolvers through their tunnel.',
    }),
    perApp: z.boolean().default(true).meta({
      description: "A process routed to a tunnel resolves through that tunnel's resolvers.",
    }),
    system: z.enum(['keep', 'default-tunnel']).default('keep').meta({
      description:
        "`default-tunnel`: point the system resolver at the default tunnel's DNS servers (restored on down).",
    }),
  })
  .default({ leakProtection: false, perApp: true, system: 'keep' })
  .meta({ id: 'Dns' });

export const Routing = z
  .strictObject({
    tableBase: z
      .number()
      .int()
      .min(1)
      .max(0xfffff000)
      .default(52000)
      .meta({ description: 'First routing table number of the band awg allocates from.' }),
    rulePriority: z
      .number()
      .int()
      .min(1)
      .max(32000)
      .default(5200)
      .meta({ description: 'First ip-rule priority of the band awg claims (100 priorities).' }),
    fwmarkMask: z
      .number()
      .int()
      .min(1)
      .max(0xffffffff)
      .default(0x0f000000)
      .meta({ description: 'Bits of the packet mark awg claims; one value inside it per tunnel.' }),
    routeProtocol: z
      .number()
      .int()
      .min(1)
      .max(255)
      .default(0xa7)
      .meta({ description: 'Route/rule protocol number that tags awg-owned routes and rules.' }),
    proxyPortBase: Port.max(65535 - 96)
      .default(15200)
      .meta({
        description:
          "Proxy tunnels: the transparent proxy of a tunnel listens on this port plus the tunnel's slot, and on that plus 48 for rules with `fallback: allow-direct` (below the ephemeral range).",
      }),
  })
  .default({
    tableBase: 52000,
    rulePriority: 5200,
    fwmarkMask: 0x0f000000,
    routeProtocol: 0xa7,
    proxyPortBase: 15200,
  })
  .meta({
    id: 'Routing',
    description: 'Claimed identifiers. Change them only to avoid a collision with another tool.',
  });

export const Config = z
  .strictObject({
    $schema: z.string().optional(),
    version: z.literal(CONFIG_VERSION).meta({ description: 'Config format version; must be 1.' }),
    tunnels: z.record(z.string(), Tunnel).default({}).meta({
      description: 'Tunnels by name. The link is called `awg-<name>` (name up to 11 characters).',
    }),
    rules: z.array(Rule).default([]),
    default: z.string().default('direct').meta({
      description:
        'Route for traffic no rule matches: `direct` or a tunnel name (full-tunnel mode; use `direct` rules for exclusions).',
    }),
    killSwitch: KillSwitch,
    dns: Dns,
    ipv6: z.enum(['tunnel', 'block', 'allow']).default('allow').meta({
      description:
        'IPv6 for traffic routed to tunnels: `tunnel` (v6 goes through the tunnel), `block` (dropped), `allow` (v6 goes direct).',
    }),
    routing: Routing,
    overlays: Overlays.optional(),
  })
  .meta({
    id: 'Config',
    title: 'awg configuration',
    description: 'Desired state of awg on one host.',
  });

export type ConfigInput = z.input<typeof Config>;
export type Config = z.infer<typeof Config>;

export function killSwitchOf(c: Config): { enabled: boolean; allowLan: boolean } {
  const k = c.killSwitch;
  if (k === 'on') return { enabled: true, allowLan: false };
  if (k === 'off') return { enabled: false, allowLan: false };
  return { enabled: k.enabled, allowLan: k.allowLan };
}

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

export function rangeOf(r: U32Range): { min: number; max: number } {
  if (typeof r === 'number') return { min: r, max: r };
  if (typeof r === 'string') {
    const [a, b] = r.split('-');
    const min = Number(a);
    return { min, max: b === undefined ? min : Number(b) };
  }
  return r;
}
