/**
 * Syntax check of the AmneziaWG I1–I5 tag language (PROTOCOL.md §9.5, amneziawg-go HEAD):
 * `<b 0xHEX>`, `<r N>`, `<rc N>`, `<rd N>`, `<t>`. The generator lives in the data plane;
 * this only validates so config errors are located. Pure.
 */
export type Tag = { tag: 'b'; bytes: string } | { tag: 'r' | 'rc' | 'rd'; n: number } | { tag: 't' };

const MAX_TAG_BYTES = 1000;

export function parseTagString(s: string): { ok: true; tags: Tag[] } | { ok: false; error: string } {
  const tags: Tag[] = [];
  const re = /<([^<>]*)>/g;
  let m: RegExpExecArray | null;
  if (/<[^>]*$/.test(s)) return { ok: false, error: 'unterminated "<" in tag string' };
  while ((m = re.exec(s))) {
    const fields = m[1]!.trim().split(/\s+/).filter(Boolean);
    const [key, arg] = fields;
    if (!key) return { ok: false, error: 'empty tag "<>"' };
    switch (key) {
      case 'b': {
        const hex = (arg ?? '').replace(/^0x/, '');
        if (!hex || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) return { ok: false, error: `<b> needs an even-length hex argument, got "${arg ?? ''}"` };
        tags.push({ tag: 'b', bytes: hex.toLowerCase() });
        break;
      }
      case 'r':
      case 'rc':
      case 'rd': {
        if (!arg || !/^\d+$/.test(arg)) return { ok: false, error: `<${key}> needs a non-negative count, got "${arg ?? ''}"` };
        const n = Number(arg);
        if (n > MAX_TAG_BYTES) return { ok: false, error: `<${key} ${n}> exceeds ${MAX_TAG_BYTES} bytes` };
        tags.push({ tag: key, n });
        break;
      }
      case 't':
        tags.push({ tag: 't' });
        break;
      default:
        return { ok: false, error: `unknown tag <${key}> (supported: b, r, rc, rd, t)` };
    }
  }
  if (tags.length === 0) return { ok: false, error: 'no tags found; use e.g. "<b 0xc0ffee><r 16>"' };
  return { ok: true, tags };
}
