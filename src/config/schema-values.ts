/**
 * Value types the config model shares across its sections: text without control characters,
 * secrets, WireGuard keys, addresses, endpoints, ports and the uint16/uint32 ranges of
 * AmneziaWG. Part of the model in schema.ts.
 */
import * as z from 'zod';
import { isCidr } from './cidr.js';
import {
  hasControl,
  ipLiteralProblem,
  isCanonicalIPv4,
  isHostName,
  isPlainIPv6,
} from './grammar.js';

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A string with no control character (line breaks, tabs, NUL, ESC …): see grammar.ts. */
/** the name of a rule, an overlay or a wave: shown in status, events and counters */
export const ItemName = () =>
  z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'use letters, digits, ".", "_" and "-"');

export const Text = () =>
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

export const Port = z.number().int().min(1).max(65535);
export const U16 = z.number().int().min(0).max(65535);
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

export function rangeOf(r: U32Range): { min: number; max: number } {
  if (typeof r === 'number') return { min: r, max: r };
  if (typeof r === 'string') {
    const [a, b] = r.split('-');
    const min = Number(a);
    return { min, max: b === undefined ? min : Number(b) };
  }
  return r;
}
