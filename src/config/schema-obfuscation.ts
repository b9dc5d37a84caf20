/**
 * The AmneziaWG obfuscation parameters of an `amneziawg` tunnel (`obfuscation:`). Part of
 * the model in schema.ts.
 */
import * as z from 'zod';
import { I_TAG_CHAIN } from './grammar.js';
import { parseTagString } from './tags.js';
import { Secret, U16, U16Range, U32Range } from './schema-values.js';

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

/**
 * An AmneziaWG 3.x padding or timing field: an optional U16Range (0 or absent: the WireGuard
 * behaviour) with its reference text.
 */
const awg3Range = (description: string) => U16Range.optional().meta({ description });

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
    contentPaddingAddition: awg3Range(
      'AmneziaWG 3.x: random zero padding (bytes, picked from the range per packet, capped at the MTU and, by the embedded engine, at what fits the path; a full-size packet gets none) inside each transport packet instead of the 16-byte rule. Sender-side only. Absent or 0: WireGuard padding.',
    ),
    rekeyAfterTime: awg3Range(
      "AmneziaWG 3.x: seconds after which the initiator starts a new handshake (drawn from the range each time). Absent or 0: WireGuard's 120. Local timing only.",
    ),
    rekeyTimeout: awg3Range(
      "AmneziaWG 3.x: seconds before an unanswered initiation is retransmitted; its minimum is also the initiation rate limit. Absent or 0: WireGuard's 5. Local timing only.",
    ),
    rejectAfterTime: awg3Range(
      "AmneziaWG 3.x: seconds after which a session key is no longer used (its maximum); must exceed rekeyAfterTime and keepaliveTimeout + rekeyTimeout. Absent or 0: WireGuard's 180. Local timing only.",
    ),
    keepaliveTimeout: awg3Range(
      "AmneziaWG 3.x: seconds of silence after received data before a passive keepalive is sent. Absent or 0: WireGuard's 10. Local timing only.",
    ),
    maxHandshakeAttempts: awg3Range(
      "AmneziaWG 3.x: initiations sent before giving up on a handshake (drawn from the range). Absent or 0: WireGuard's 18.",
    ),
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

/**
 * The parameters a receiver checks (src/dataplane/awg/codec.ts classifies a datagram by its S
 * prefix length, its H header value, the header protection keystream and, with random
 * trailers, a longer size): the peer must hold the same. The rest only shape what this side
 * sends (junk and signature packets, the padding inside the encrypted transport payload) or
 * its own timers and cookie replies: the peer drops junk and signature packets unread and
 * reads the inner packet's length, whatever the padding.
 */
export const SERVER_SIDE_KEYS = [
  's1',
  's2',
  's3',
  's4',
  'h1',
  'h2',
  'h3',
  'h4',
  'headerProtectionKey',
  'randomTrailers',
] as const satisfies readonly (keyof AwgObfuscation)[];

/**
 * One entry of `profiles:`: a name, the obfuscation fields it overrides, and whether it may
 * change what the server must also know.
 */
export const AwgProfile = AwgObfuscation.extend({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/)
    .meta({
      description:
        "The profile's name (lowercase letters, digits, `-`, `_`; at most 32): shown in status and remembered per network.",
    }),
  server: z.boolean().optional().meta({
    description:
      "Declares that this profile changes parameters the server must hold too (s1-s4, h1-h4, randomTrailers): only set it when the server accepts them (another server config on the same address). Absent: such a change is an error. headerProtectionKey cannot be set in a profile (it stays the base's).",
  }),
}).meta({
  id: 'AwgProfile',
  description:
    "An obfuscation profile: the fields set here replace those of `obfuscation:` (the base), field by field; the rest are the base's.",
});
export type AwgProfile = z.infer<typeof AwgProfile>;
