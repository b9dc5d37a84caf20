/**
 * Per-app rules (`rules:`): what a rule matches (name, path glob, directory or regex), its
 * target and its fallback. Part of the model in schema.ts.
 */
import * as z from 'zod';
import { globProblem, MAX_GLOB_WILDCARDS_PER_SEGMENT } from './grammar.js';
import { compileLinearRegex, MAX_PROGRAM } from '../util/linear-regex.js';
import { Limit } from './rate.js';
import { ItemName, Text } from './schema-values.js';
import { LIST_FORMATS } from './list-formats/types.js';

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

/** useradd's default NAME_REGEX (plus upper case, which other tools create) */
const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;
/** systemd.unit(5): name, optional `@instance`, `.type` */
const UNIT_NAME =
  /^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.(service|socket|device|mount|automount|swap|target|path|timer|slice|scope)$/;
/** Flatpak application ids: 3+ reverse-DNS elements of [A-Za-z0-9_-], not starting with a digit (`-` only in the last) */
const FLATPAK_ID = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\.[A-Za-z_-][A-Za-z0-9_-]*$/;

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
      z.strictObject({
        user: z
          .union([
            z.number().int().min(0).max(0xfffffffe),
            Text()
              .min(1)
              .max(32)
              .regex(
                USER_NAME,
                'a user name: letters, digits, ".", "_", "-" (not first), "$" last',
              ),
          ])
          .meta({
            description:
              'A user name (from /etc/passwd) or a uid: every socket of processes running as that user. Matched by the firewall per socket (running processes included); nothing is moved.',
          }),
      }),
      z.strictObject({
        unit: Text()
          .min(1)
          .max(255)
          .regex(
            UNIT_NAME,
            'a systemd unit name with its type, e.g. `nginx.service` (letters, digits, ":", "-", "_", ".", "\\", one "@" for templates)',
          )
          .meta({
            description:
              "A systemd system unit, e.g. `nginx.service`: every process in the unit's cgroup, including ones already running and after restarts. Matched by the firewall; processes are never moved out of the unit.",
          }),
      }),
      z.strictObject({
        cgroup: Text()
          .min(2)
          .regex(/^\//, 'must be an absolute cgroup v2 path, e.g. `/system.slice/x.service`')
          .refine(
            (s) =>
              s
                .split('/')
                .slice(1)
                .every((seg) => seg !== '' && seg !== '.' && seg !== '..'),
            'no empty, "." or ".." segments',
          )
          .meta({
            description:
              'A cgroup v2 path below the hierarchy root, e.g. `/system.slice/x.service`: every process in it or below it, including ones already running and after it is recreated. Matched by the firewall; nothing is moved.',
          }),
      }),
      z.strictObject({
        flatpak: Text()
          .min(3)
          .max(255)
          .regex(FLATPAK_ID, 'a Flatpak application id, e.g. `org.mozilla.firefox`')
          .meta({
            description:
              "A Flatpak application id, e.g. `org.mozilla.firefox` (from the sandbox's `/.flatpak-info`): its processes are moved into the rule's cgroup like programs matched by path.",
          }),
      }),
    ],
    {
      error:
        'must have exactly one of name, path, dir, regex (plus optional ignoreCase), user, unit, cgroup or flatpak',
    },
  )
  .meta({
    id: 'Match',
    description:
      'Exactly one of `name`, `path`, `dir`, `regex` (the executable; case-sensitive unless `ignoreCase: true`), `user`, `unit`, `cgroup` (matched by the firewall, processes are not moved) or `flatpak` (the sandboxed application).',
  });
export type Match = z.infer<typeof Match>;

/** user, unit and cgroup matches: the firewall matches their processes where they are (never moved) */
export function matchedInPlace(m: Match): boolean {
  return 'user' in m || 'unit' in m || 'cgroup' in m;
}

export const FALLBACKS = ['allow-direct', 'block', 'drop', 'failover'] as const;
export const Fallback = z.enum(FALLBACKS).meta({
  description:
    "What happens while the target tunnel is not up. allow-direct: go direct. block: drop until the tunnel is back. drop: always drop this app's traffic, tunnel up or not. failover: use the next matching enabled rule (none left: block).",
});

const DestinationValues = (what: string) =>
  z.array(Text().min(1)).optional().meta({ description: what });

export const ListFormat = z.enum(LIST_FORMATS).meta({
  id: 'ListFormat',
  description:
    "A list's format; docs/lists.md says what each gives, what it refuses and why, and the limits. plain: one domain, `*.` wildcard, address or prefix per line (the grammar of `domains` and `cidrs`), `#` comments. dnsmasq: `server=/d/…`, `local=/d/`, `address=/d/…`, `ipset=/d/…`, `nftset=/d/…` lines (each domain: the name and all under it). sing-box: a source rule-set (JSON). srs: a sing-box binary rule-set. geosite, geoip: a v2ray/Xray `.dat` file, with `category`. Without `format` it is detected from the content: `SRS` magic, then the `.dat` structure, then JSON, then dnsmasq lines, else plain. Anything that would make a list match more than it names (ports, processes, logical or inverted rules, `#` for every domain) is an error at its place.",
});

const DURATION_RE = /^(?:\d+(?:ms|s|m|h|d))+$/;
export const Duration = Text()
  .regex(DURATION_RE, 'a duration like 30m, 6h or 1d12h (units ms, s, m, h, d)')
  .meta({ id: 'Duration', description: 'A duration: `30s`, `15m`, `6h`, `1d`, `1h30m`.' });

const Category = Text()
  .regex(/^[A-Za-z0-9!_.-]+(@[A-Za-z0-9!_.-]+)?$/, 'a category like ru-blocked, cn or google@ads')
  .meta({
    description:
      'The category of a geosite/geoip `.dat` file (`ru-blocked`, `cn`), found ignoring case, optionally with an attribute filter (`google@ads`: the domains marked `ads`; `@!cn` is the attribute `!cn`, not a negation).',
  });

const ListCommon = {
  format: ListFormat.optional(),
  category: Category.optional(),
};

export const ListRef = z
  .union(
    [
      Text().min(1).meta({
        description:
          'A list file, relative to the config file that names it. `FILE.dat:CATEGORY` selects a geosite/geoip category (`geosite.dat:ru-blocked`).',
      }),
      z.strictObject({
        file: Text().min(1).meta({ description: 'The list file, relative to the config file.' }),
        ...ListCommon,
      }),
      z.strictObject({
        url: Text()
          .min(1)
          .regex(/^https?:\/\/[^\s]+$/, 'an http:// or https:// URL')
          .meta({
            description:
              'Where the list is fetched from. It is cached in the state directory; the last good copy is kept when a fetch fails or does not parse.',
          }),
        ...ListCommon,
        sha256: Text()
          .regex(/^[0-9a-fA-F]{64}$/, '64 hex digits')
          .optional()
          .meta({
            description:
              'Pin: a fetched copy whose SHA-256 differs is refused (the last good copy stays).',
          }),
        refresh: Duration.default('6h').meta({
          description: 'How often the daemon fetches the list again (at least 1m).',
        }),
        via: Text().min(1).optional().meta({
          description:
            'A tunnel to fetch through (the usual case for censorship lists: the direct path is blocked). Default: direct.',
        }),
        maxBytes: z.int().min(1).max(268435456).default(67108864).meta({
          description: 'A fetched copy larger than this is refused (default 64 MiB).',
        }),
        maxEntries: z.int().min(1).max(10000000).default(2000000).meta({
          description: 'A list with more entries than this is refused (default 2,000,000).',
        }),
      }),
    ],
    { error: 'must be a file path, {file: PATH, …} or {url: URL, …}' },
  )
  .meta({
    id: 'ListRef',
    description:
      'A list: a file path, `{file, format?, category?}`, or `{url, sha256?, refresh?, via?, format?, category?, maxBytes?, maxEntries?}`.',
  });
export type ListRef = z.infer<typeof ListRef>;

export const To = z
  .strictObject({
    domains: DestinationValues(
      "Domain names: `example.org` is that name and every name under it (`www.example.org`), `*.example.net` only the names under `example.net` (not `example.net` itself); with geosite's prefixes, `full:example.com` that name only, `keyword:google` every name containing the text, `regexp:^ads?\\.` every name the expression matches (JavaScript syntax without what cannot run in linear time; tested on the lowercase name), `domain:example.org` the same as `example.org`. At most 10,000 keywords and 10,000 regexps per rule. Addresses are learned from DNS answers. ASCII only: write internationalised names in punycode (`xn--…`).",
    ),
    cidrs: DestinationValues(
      'Addresses and prefixes, IPv4 or IPv6: `203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`. A prefix with host bits set is refused.',
    ),
    lists: z.array(ListRef).optional().meta({
      description:
        'Lists of destinations: files (relative to the config file that names them) or URLs, in any of the formats of ListFormat (detected from content). A bad entry is reported as `file:line:col`.',
    }),
  })
  .refine((t) => [t.domains, t.cidrs, t.lists].some((v) => v !== undefined && v.length > 0), {
    error: '`to` needs at least one non-empty `domains`, `cidrs` or `lists`',
  })
  .meta({
    id: 'To',
    description:
      'Destinations a rule applies to: the union of `domains`, `cidrs` and every entry of `lists`. Without `to`, a rule applies to every destination.',
  });
export type To = z.infer<typeof To>;

export const Rule = z
  .strictObject({
    name: ItemName()
      .optional()
      .meta({ description: 'Name shown in status and counters; defaults to rule-<index>.' }),
    match: Match.optional().meta({
      description:
        'The program this rule applies to. Without `match`, the rule applies to every program (then `to` is required).',
    }),
    to: To.optional(),
    target: Text().min(1).meta({ description: 'A tunnel name, `direct` or `block`.' }),
    fallback: Fallback.default('block'),
    sticky: z.boolean().optional().meta({
      description:
        'Once the target tunnel went down and this rule took its fallback, keep the fallback after the tunnel is back, until the network changes (another default gateway, interface or Wi-Fi network), the config changes or `awg apply` runs; for users who prefer a stable path to moving back. Off: new connections return to the tunnel as soon as it is up (docs/architecture.md#sticky-fallbacks). Only the daemon holds fallbacks.',
    }),
    enabled: z.boolean().default(true),
    limit: Limit.optional().meta({
      description:
        "Bandwidth limits for this rule's processes together, e.g. `{upload: 20Mbit, download: 100Mbit}`; not with target `block` or fallback `drop`. A limited app's source ports are rewritten into a range of 61440-65535 (docs/limits.md).",
    }),
  })
  .refine((r) => r.match !== undefined || r.to !== undefined, {
    error: 'a rule needs `match`, `to`, or both',
  })
  .meta({
    id: 'Rule',
    description:
      'Rules are ordered; the first enabled rule that fits decides the route of a connection. A rule fits when its `match` fits the program and its `to` contains the destination; when both are given, both must hold; a missing one holds for everything.',
  });
export type Rule = z.infer<typeof Rule>;
