/**
 * Syntax check of the AmneziaWG I1–I5 tag language (docs/dataplane.md#i-packet-tags):
 * `<b 0xHEX>`, `<r N>`, `<rc N>`, `<rd N>`, `<t>`. The generator lives in the data plane;
 * this only validates so config errors are located. Stricter than amneziawg-go: only tags and
 * spaces (no text outside tags, no extra arguments), since the value becomes a UAPI line.
 * Pure.
 */
import { hasControl } from './grammar.js';

export type Tag =
  { tag: 'b'; bytes: string } | { tag: 'r' | 'rc' | 'rd'; n: number } | { tag: 't' };

const MAX_TAG_BYTES = 1000;
/** the engine's limit of one I-packet (dataplane/awg/tags.ts MAX_TAG_TOTAL) */
const MAX_PACKET_BYTES = 65_507;

export function parseTagString(
  s: string,
): { ok: true; tags: Tag[]; size: number } | { ok: false; error: string } {
  const tags: Tag[] = [];
  let total = 0;
  // the value goes into a UAPI line: nothing but tags and spaces (grammar.ts I_TAG_CHAIN)
  if (hasControl(s))
    return { ok: false, error: 'must not contain control characters (line breaks, tabs, NUL)' };
  let outside = '';
  // scanned as the engine does (dataplane/awg/tags.ts): a tag runs from "<" to the next ">"
  for (let i = 0; ;) {
    const start = s.indexOf('<', i);
    outside += s.slice(i, start < 0 ? undefined : start);
    if (start < 0) break;
    const end = s.indexOf('>', start);
    if (end < 0) return { ok: false, error: 'unterminated "<" in tag string' };
    const inner = s.slice(start + 1, end);
    i = end + 1;
    if (inner.includes('<')) return { ok: false, error: `"<" inside the tag "<${inner}>"` };
    const fields = inner.trim().split(/\s+/).filter(Boolean);
    const [key, arg] = fields;
    if (!key) return { ok: false, error: 'empty tag "<>"' };
    if (fields.length > (key === 't' ? 1 : 2))
      return {
        ok: false,
        error: `<${inner.trim()}>: ${key === 't' ? '<t> takes no argument' : `<${key}> takes one argument`}`,
      };
    switch (key) {
      case 'b': {
        const hex = (arg ?? '').replace(/^0x/, '');
        if (!hex || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex))
          return { ok: false, error: `<b> needs an even-length hex argument, got "${arg ?? ''}"` };
        tags.push({ tag: 'b', bytes: hex.toLowerCase() });
        total += hex.length / 2;
        break;
      }
      case 'r':
      case 'rc':
      case 'rd': {
        if (!arg || !/^\d+$/.test(arg))
          return { ok: false, error: `<${key}> needs a non-negative count, got "${arg ?? ''}"` };
        const n = Number(arg);
        if (n > MAX_TAG_BYTES)
          return { ok: false, error: `<${key} ${n}> exceeds ${MAX_TAG_BYTES} bytes` };
        tags.push({ tag: key, n });
        total += n;
        break;
      }
      case 't':
        tags.push({ tag: 't' });
        total += 4;
        break;
      default:
        return { ok: false, error: `unknown tag <${key}> (supported: b, r, rc, rd, t)` };
    }
  }
  if (outside.trim())
    return {
      ok: false,
      error: `text outside tags (${JSON.stringify(outside.trim().slice(0, 40))}): amneziawg-go ignores it, awg refuses it; write tags only`,
    };
  if (tags.length === 0)
    return { ok: false, error: 'no tags found; use e.g. "<b 0xc0ffee><r 16>"' };
  if (total > MAX_PACKET_BYTES)
    return {
      ok: false,
      error: `the packet is ${total} bytes; one UDP datagram holds at most ${MAX_PACKET_BYTES}`,
    };
  return { ok: true, tags, size: total };
}
