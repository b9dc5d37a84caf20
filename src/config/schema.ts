/**
 * The config model: the single source of truth for the YAML format. The JSON Schema in
 * schema/ and the config reference in docs/ are generated from `Config` here. The top-level
 * fields are defined in this file; the shared value types, the obfuscation parameters, the
 * tunnels and the rules in schema-values.ts, schema-obfuscation.ts, schema-tunnels.ts and
 * schema-rules.ts, all re-exported from here.
 *
 * Shape-level rules live in these files (types, ranges, formats). Rules that relate several
 * fields or several objects (references, overlaps, AmneziaWG cross-field limits) live in
 * semantic.ts, so that every problem is reported at once with its location.
 */
import * as z from 'zod';
import { Overlays } from './overlay.js';
import { Fleet } from './schema-fleet.js';
import { Port } from './schema-values.js';
import { Tunnel } from './schema-tunnels.js';
import { Rule } from './schema-rules.js';

export {
  Cidr,
  ENDPOINT_RE,
  Endpoint,
  IpAddress,
  rangeOf,
  Secret,
  U16Range,
  U32Range,
  WgKey,
} from './schema-values.js';
export { AwgObfuscation } from './schema-obfuscation.js';
export {
  AMNEZIAWG_UAPI_DIR,
  AmneziawgTunnel,
  AwgPeer,
  Engine,
  engineOf,
  ExternalEngine,
  HttpTunnel,
  isWgLike,
  LINK_PREFIX,
  linkName,
  MAX_TUNNEL_NAME,
  Peer,
  Socks5Tunnel,
  Tunnel,
  TUNNEL_NAME_RE,
  WIREGUARD_UAPI_DIR,
  WireguardTunnel,
} from './schema-tunnels.js';
export type { ProxyTunnel, WgLikeTunnel } from './schema-tunnels.js';
export { Fleet, FleetVerify, verifyOf } from './schema-fleet.js';
export { Duration, Fallback, FALLBACKS, ListFormat, ListRef, Match, Rule } from './schema-rules.js';

export const CONFIG_VERSION = 1;
export const RESERVED_TARGETS = ['direct', 'block'] as const;

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

/** routing tables and rule priorities in the claimed band: tableBase.. and rulePriority.. */
export const BAND_SIZE = 100;

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
      .meta({
        description: `First ip-rule priority of the band awg claims (${BAND_SIZE} priorities).`,
      }),
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
    proxyPortBase: Port.max(65535 - 97)
      .default(15200)
      .meta({
        description:
          "Proxy tunnels: the transparent proxy of a tunnel listens on this port plus the tunnel's slot, and on that plus 48 for rules with `fallback: allow-direct` (below the ephemeral range). Domain rules: the DNS stub listens on this port plus 96 and plus 97.",
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
    fleet: Fleet.optional(),
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
