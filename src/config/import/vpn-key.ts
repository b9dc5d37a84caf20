/**
 * The bytes of an AmneziaVPN `vpn://` key. The AmneziaVPN apps write
 * `vpn://` + base64url(qCompress(JSON)) without padding, where Qt's qCompress is a 4-byte
 * big-endian uncompressed length followed by a zlib stream. This module undoes that and no
 * more: it returns the JSON document (or, for a key that carries a wg-quick file, that text)
 * and leaves the meaning of the document to vpn-doc.ts. Pure, bounded: the declared and the
 * real uncompressed size are both capped (VPN_KEY_MAX_BYTES), so a decompression bomb costs
 * at most that much memory.
 *
 * Contract: `decodeVpnKey` throws nothing but VpnKeyError, whose message never quotes the
 * key (a key holds a private key).
 */
import { inflateSync } from 'node:zlib';

/** the most a key may inflate to, and the most key text read: 1 MiB (a real key is ~2 KiB) */
export const VPN_KEY_MAX_BYTES = 1024 * 1024;

/** Why a key could not be read. The message names the fault, never the key's content. */
export class VpnKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VpnKeyError';
  }
}

export type DecodedKey =
  | {
      kind: 'json';
      /** the parsed document (an object) */
      doc: Record<string, unknown>;
      /** how it was packed */
      packing: 'qcompress' | 'base64' | 'plain';
      /** a qCompress length header that is not the real size (AmneziaVPN reads it as a hint) */
      headerMismatch?: { declared: number; actual: number };
    }
  | { kind: 'ini'; text: string; packing: 'qcompress' | 'base64' | 'plain' };

const PREFIX = /^vpn:\/\//i;
const B64 = /^[A-Za-z0-9_\-+/]*$/;

/** True when `text` looks like a key rather than a wg-quick file: `vpn://…` or bare base64url. */
export function looksLikeVpnKey(text: string): boolean {
  const t = text.trim();
  if (PREFIX.test(t)) return true;
  const s = t.replace(/\s+/g, '').replace(/=+$/, '');
  return s.length >= 8 && B64.test(s) && !t.includes('[');
}

/**
 * The document a key holds: `vpn://` (any case) and whitespace, line breaks and `=` padding
 * are tolerated; a key that is the JSON itself, or a wg-quick `[Interface]` file, is taken
 * as it is (the apps accept both). See the module comment for the contract.
 */
export function decodeVpnKey(text: string): DecodedKey {
  if (text.length > 2 * VPN_KEY_MAX_BYTES)
    throw new VpnKeyError(`the key is longer than ${2 * VPN_KEY_MAX_BYTES} characters`);
  const t = text.replace(/^\uFEFF/, '').trim();
  if (!PREFIX.test(t)) {
    if (t.startsWith('{')) return { kind: 'json', doc: parseDoc(t), packing: 'plain' };
    if (/^\s*\[interface\]/im.test(t)) return { kind: 'ini', text: t, packing: 'plain' };
  }
  const bytes = base64urlBytes(t.replace(PREFIX, ''));
  // the apps fall back to the bytes themselves when they are not qCompress data
  const head = firstText(bytes);
  if (head === '{') return { kind: 'json', doc: parseDoc(utf8(bytes)), packing: 'base64' };
  if (head === '[') {
    const s = utf8(bytes);
    if (/^\s*\[interface\]/i.test(s)) return { kind: 'ini', text: s, packing: 'base64' };
  }
  const { data, declared } = qUncompress(bytes);
  const s = utf8(data);
  const mismatch = declared !== data.length ? { declared, actual: data.length } : undefined;
  if (/^\s*\[interface\]/i.test(s)) return { kind: 'ini', text: s, packing: 'qcompress' };
  return {
    kind: 'json',
    doc: parseDoc(s),
    packing: 'qcompress',
    ...(mismatch ? { headerMismatch: mismatch } : {}),
  };
}

/** base64url (or base64) without padding; whitespace anywhere; `=` only at the end. */
function base64urlBytes(s: string): Buffer {
  const compact = s.replace(/\s+/g, '');
  const body = compact.replace(/=+$/, '');
  if (body === '') throw new VpnKeyError('the key is empty');
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    const ok =
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x30 && c <= 0x39) ||
      c === 0x2d ||
      c === 0x5f ||
      c === 0x2b ||
      c === 0x2f;
    if (!ok)
      throw new VpnKeyError(
        `the key is not base64url: character ${i + 1} of its data is ${c === 0x3d ? '"=" before the end' : c < 0x20 || c > 0x7e ? `U+${c.toString(16).toUpperCase().padStart(4, '0')}` : `"${String.fromCharCode(c)}"`}`,
      );
  }
  if (body.length % 4 === 1)
    throw new VpnKeyError(
      `the key's base64 is cut short (${body.length} characters leave 6 bits over)`,
    );
  return Buffer.from(body.replace(/\+/g, '-').replace(/\//g, '_'), 'base64url');
}

/** Qt's qUncompress: 4-byte big-endian size, then zlib. Both sizes capped. */
function qUncompress(b: Buffer): { data: Buffer; declared: number } {
  if (b.length < 5)
    throw new VpnKeyError(
      `the key holds ${b.length} bytes: too short for a compressed document (a 4-byte length and zlib data)`,
    );
  const declared = b.readUInt32BE(0);
  if (declared > VPN_KEY_MAX_BYTES)
    throw new VpnKeyError(
      `the key's length header declares ${declared} bytes, more than the ${VPN_KEY_MAX_BYTES} awg reads (a real key holds a few KiB)`,
    );
  let data: Buffer;
  try {
    data = inflateSync(b.subarray(4), { maxOutputLength: VPN_KEY_MAX_BYTES });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError)
      throw new VpnKeyError(
        `the key's data inflates past ${VPN_KEY_MAX_BYTES} bytes (its header declares ${declared}): refused`,
      );
    const why =
      code === 'Z_BUF_ERROR'
        ? 'it is cut short'
        : code === 'Z_DATA_ERROR'
          ? 'it is damaged'
          : 'it does not inflate';
    throw new VpnKeyError(`the key's zlib data cannot be read: ${why}`);
  }
  if (data.length === 0) throw new VpnKeyError('the key inflates to nothing');
  return { data, declared };
}

/** the first non-space character of `b` read as text, '' when none */
function firstText(b: Buffer): string {
  for (const c of b) {
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    return String.fromCharCode(c);
  }
  return '';
}

const decoder = new TextDecoder('utf-8', { fatal: true });
function utf8(b: Buffer): string {
  try {
    return decoder.decode(b).replace(/^\uFEFF/, '');
  } catch {
    throw new VpnKeyError('the key does not hold UTF-8 text');
  }
}

/** JSON.parse without its message: Node quotes the text there, and the text holds keys. */
function parseDoc(s: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    const at = /position (\d+)/.exec((e as Error).message)?.[1];
    throw new VpnKeyError(
      `the key's JSON does not parse${at !== undefined ? ` (at byte ${at} of ${Buffer.byteLength(s)})` : ''}`,
    );
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new VpnKeyError('the key holds JSON but not an AmneziaVPN config object');
  return v as Record<string, unknown>;
}
