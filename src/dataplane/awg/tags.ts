/**
 * I1–I5 tag language (amneziawg-go HEAD `device/obf*.go`; docs/dataplane.md#i-packet-tags).
 * An I-value is a
 * chain of `<tag arg>` items; text outside tags is ignored; the packet is the concatenation.
 *   <b 0xHEX>  literal bytes (0x optional, even non-empty hex)
 *   <r N>      N random bytes          <rc N>  N random letters a–zA–Z
 *   <rd N>     N random digits         <t>     u32be Unix seconds
 *   <d> <ds>   empty (no payload data for I-packets)   <dz N>  N zero bytes
 * Anything else (including `<c>`, dropped from HEAD) is rejected.
 */
import type { RandomSource } from './random.js';

export type Tag =
  | { kind: 'b'; bytes: Uint8Array }
  | { kind: 'r' | 'rc' | 'rd' | 'dz'; n: number }
  | { kind: 't' | 'd' | 'ds' };

/** Keeps one I-packet within a UDP datagram. */
export const MAX_TAG_TOTAL = 65_507;

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

function count(arg: string | undefined, tag: string): number {
  if (arg === undefined || !/^\d+$/.test(arg))
    throw new Error(`<${tag}> needs a non-negative integer`);
  const n = Number(arg);
  if (n > MAX_TAG_TOTAL) throw new Error(`<${tag} ${arg}> is larger than a datagram`);
  return n;
}

/** Returns null for an empty / tag-less value (slot unset). Throws Error on bad input. */
export function parseTags(spec: string): Tag[] | null {
  const tags: Tag[] = [];
  let i = 0;
  for (;;) {
    const start = spec.indexOf('<', i);
    if (start < 0) break;
    const end = spec.indexOf('>', start);
    if (end < 0) throw new Error('unterminated tag');
    const fields = spec
      .slice(start + 1, end)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    i = end + 1;
    const [key, arg] = fields;
    switch (key) {
      case 'b': {
        const h = (arg ?? '').startsWith('0x') ? arg!.slice(2) : (arg ?? '');
        if (h.length === 0 || h.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(h))
          throw new Error(`<b ${arg ?? ''}> needs even-length hex`);
        tags.push({ kind: 'b', bytes: new Uint8Array(Buffer.from(h, 'hex')) });
        break;
      }
      case 'r':
      case 'rc':
      case 'rd':
      case 'dz':
        tags.push({ kind: key, n: count(arg, key) });
        break;
      case 't':
      case 'd':
      case 'ds':
        tags.push({ kind: key });
        break;
      case undefined:
        throw new Error('empty tag');
      default:
        throw new Error(`unknown tag <${key}>`);
    }
  }
  if (tags.length === 0) return null;
  if (tagsLength(tags) > MAX_TAG_TOTAL) throw new Error('I-packet larger than a datagram');
  return tags;
}

export function tagsLength(tags: Tag[]): number {
  let n = 0;
  for (const t of tags) {
    if (t.kind === 'b') n += t.bytes.length;
    else if (t.kind === 't') n += 4;
    else if ('n' in t) n += t.n;
  }
  return n;
}

/** Writes `<t>` (Unix seconds of `nowMs`) into `out`, an I-packet `generateTags` made of `tags`. */
export function stampTime(tags: Tag[], out: Uint8Array, nowMs: number): void {
  let o = 0;
  for (const t of tags) {
    if (t.kind === 't') writeSeconds(out, o, nowMs);
    o += t.kind === 'b' ? t.bytes.length : t.kind === 't' ? 4 : 'n' in t ? t.n : 0;
  }
}

function writeSeconds(out: Uint8Array, o: number, nowMs: number): void {
  const s = Math.floor(nowMs / 1000) >>> 0;
  out[o] = s >>> 24;
  out[o + 1] = (s >>> 16) & 0xff;
  out[o + 2] = (s >>> 8) & 0xff;
  out[o + 3] = s & 0xff;
}

/** `nowMs` = Unix wall time (for `<t>`). */
export function generateTags(tags: Tag[], rng: RandomSource, nowMs: number): Uint8Array {
  const out = new Uint8Array(tagsLength(tags));
  let o = 0;
  for (const t of tags) {
    switch (t.kind) {
      case 'b':
        out.set(t.bytes, o);
        o += t.bytes.length;
        break;
      case 'r':
        out.set(rng.bytes(t.n), o);
        o += t.n;
        break;
      case 'rc': {
        const r = rng.bytes(t.n);
        for (let k = 0; k < t.n; k++) out[o++] = LETTERS.charCodeAt(r[k]! % 52);
        break;
      }
      case 'rd': {
        const r = rng.bytes(t.n);
        for (let k = 0; k < t.n; k++) out[o++] = 0x30 + (r[k]! % 10);
        break;
      }
      case 't':
        writeSeconds(out, o, nowMs);
        o += 4;
        break;
      case 'dz':
        o += t.n; // already zero
        break;
      case 'd':
      case 'ds':
        break;
    }
  }
  return out;
}
