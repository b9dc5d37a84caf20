/**
 * The one emitter of UAPI text (docs/dataplane.md#uapi-the-engines-configuration-socket; the
 * parser is uapi.ts): `key=value` lines ended by a blank line.
 * The protocol has no quoting, so a newline inside a value would start a line of its own
 * (`i1=<b 0x01>\npublic_key=…\nallowed_ip=0.0.0.0/0` adds a peer). Every producer of set
 * requests, get replies and errno replies builds its text here, and this refuses what the
 * framing cannot carry: a key outside `[a-z0-9_]`, and any control character (`\n`, `\r`,
 * `\0`, the rest of C0 and DEL) in a value. Pure.
 */
import { AwgError } from '../../errors.js';

export type UapiValue = string | number | boolean | bigint;
export type UapiPair = readonly [key: string, value: UapiValue];

/** what a key may be */
export const UAPI_KEY = /^[a-z0-9_]+$/;
/** what no value may hold: C0 controls (`\n`, `\r`, `\0` among them) and DEL */
// eslint-disable-next-line no-control-regex
export const UAPI_CONTROL = /[\u0000-\u001f\u007f]/;

/** Refuses a pair the line framing cannot carry (throws AwgError invalid-config). */
export function uapiLine(key: string, value: UapiValue): string {
  if (!UAPI_KEY.test(key))
    throw new AwgError('invalid-config', `UAPI key ${JSON.stringify(key)} is not [a-z0-9_]+`);
  const v = typeof value === 'boolean' ? (value ? 'true' : 'false') : String(value);
  const bad = UAPI_CONTROL.exec(v);
  if (bad)
    throw new AwgError(
      'invalid-config',
      `UAPI value of ${key} contains the control character U+${bad[0].charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  return `${key}=${v}`;
}

function body(pairs: Iterable<UapiPair>): string {
  let out = '';
  for (const [k, v] of pairs) out += `${uapiLine(k, v)}\n`;
  return out;
}

/** A complete `set=1` request: `set=1`, the pairs, a blank line. */
export function uapiSetRequest(pairs: Iterable<UapiPair>): string {
  return `set=1\n${body(pairs)}\n`;
}

/** The `get=1` request. */
export const UAPI_GET_REQUEST = 'get=1\n\n';

/** A reply: the pairs (a get), then `errno=N` and a blank line. */
export function uapiReply(pairs: Iterable<UapiPair>, errno = 0): string {
  if (!Number.isInteger(errno)) throw new AwgError('bug', `UAPI errno ${errno} is not an integer`);
  return `${body(pairs)}errno=${errno}\n\n`;
}
