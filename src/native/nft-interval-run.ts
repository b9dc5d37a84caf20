/**
 * An interval set's elements for a whole list at once (a static set of 100,000 lines becomes
 * 65,000 IPv4 and 8,000 IPv6 intervals, written by a fresh CLI process): the element strings
 * are read into one preallocated byte area (`ElementRun`: no Buffer and no object per key),
 * and nftset.ts's batch builder writes the run's NFTA_LIST_ELEM attributes with byte stores.
 * The plain forms (IPv4 `a.b.c.d`, `a.b.c.d/len`, `a-b`; IPv6 in hex groups with at most one
 * `::`) are read here; anything else, and every malformed element, goes through
 * nft-elements.ts's `oneInterval`, so the keys and the errors are the general path's.
 */
import { oneInterval, NFT_SET_ELEM_INTERVAL_END, type RawElement } from './nft-elements.js';
import { align4 } from './rtnl.js';

/** Bytes per key slot: an IPv6 key; an IPv4 key takes the slot's first 4. */
const SLOT = 16;

/** Interval elements in one byte area: element `i`'s key is `keys[i * 16, i * 16 + lens[i])`. */
export interface ElementRun {
  readonly run: true;
  /** how many elements */
  readonly count: number;
  readonly keys: Uint8Array;
  /** key lengths (4 or 16) */
  readonly lens: Uint8Array;
  /** NFTA_SET_ELEM_FLAGS per element (0: none; NFT_SET_ELEM_INTERVAL_END) */
  readonly flags: Uint8Array;
}

/** hex digit values by char code, -1 for others */
const HEX = new Int8Array(128).fill(-1);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) HEX[65 + c] = HEX[97 + c] = 10 + c;

/** where the last quadFrom or v6From stopped: the index after the address */
let stop = 0;

/**
 * A dotted quad from `s[from]` up to the first character that is neither a digit nor a dot
 * (nft-elements.ts v4Number's rules); -1 when it is not one.
 */
function quadFrom(s: string, from: number): number {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  let i = from;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 255) return -1;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits === 3) return -1;
      part = part * 10 + (c - 48);
      digits++;
    } else break;
  }
  stop = i;
  if (dots !== 3 || digits === 0 || part > 255) return -1;
  return n * 256 + part;
}

/** 1–`max` decimal digits from s[from] to the end, as a number; -1 otherwise */
function decimalToEnd(s: string, from: number, max: number): number {
  if (s.length - from < 1 || s.length - from > max) return -1;
  let n = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
  }
  return n;
}

const groups = new Uint16Array(8);

/**
 * An IPv6 address in hex groups (at most one `::`, no dotted tail) from `s[from]` up to the
 * first character that is neither a hex digit nor a colon, into `keys[at, at + 16)`; false
 * for any other form (the general path reads it).
 */
function v6From(s: string, from: number, keys: Uint8Array, at: number): boolean {
  const len = s.length;
  let n = 0;
  let gap = -1; // the group index where `::` stands
  let afterGap = false;
  let i = from;
  if (i + 1 < len && s.charCodeAt(i) === 58 && s.charCodeAt(i + 1) === 58) {
    gap = 0;
    afterGap = true;
    i += 2;
  }
  for (;;) {
    let v = 0;
    let digits = 0;
    for (; i < len; i++) {
      const c = s.charCodeAt(i);
      const h = c < 128 ? HEX[c]! : -1;
      if (h < 0) break;
      if (++digits > 4) return false;
      v = (v << 4) | h;
    }
    if (digits === 0) {
      // the address may end right after `::`; a single `:` needs a group after it
      if (!afterGap) return false;
      break;
    }
    if (n === 8) return false;
    groups[n++] = v;
    afterGap = false;
    if (i < len && s.charCodeAt(i) === 58) {
      if (i + 1 < len && s.charCodeAt(i + 1) === 58) {
        if (gap >= 0) return false;
        gap = n;
        afterGap = true;
        i += 2;
      } else i++;
    } else break;
  }
  stop = i;
  if (gap < 0 ? n !== 8 : n > 7) return false;
  const zeros = 8 - n;
  for (let g = 0, k = 0; g < 8; g++) {
    const v = gap >= 0 && g >= gap && g < gap + zeros ? 0 : groups[k++]!;
    keys[at + 2 * g] = v >> 8;
    keys[at + 2 * g + 1] = v & 0xff;
  }
  return true;
}

function v4Into(keys: Uint8Array, at: number, n: number): void {
  keys[at] = n >>> 24;
  keys[at + 1] = (n >>> 16) & 0xff;
  keys[at + 2] = (n >>> 8) & 0xff;
  keys[at + 3] = n & 0xff;
}

/**
 * IPv4 element `e` (`a`, `a/len`, `a-b`) into slots `i` and `i + 1` of a run: the number of
 * elements written (1, or 2 with an end); 0 when it is in no such form.
 */
function v4Plain(e: string, keys: Uint8Array, lens: Uint8Array, flags: Uint8Array, i: number) {
  const a = quadFrom(e, 0);
  if (a < 0) return 0;
  let start = a;
  let last = a;
  if (stop < e.length) {
    const c = e.charCodeAt(stop);
    if (c === 47) {
      const len = decimalToEnd(e, stop + 1, 2);
      if (len < 0 || len > 32) return 0;
      const size = 2 ** (32 - len);
      start = a - (a % size);
      last = start + size - 1;
    } else if (c === 45) {
      last = quadFrom(e, stop + 1);
      if (last < 0 || stop !== e.length || start > last) return 0;
    } else return 0;
  }
  const at = i * SLOT;
  v4Into(keys, at, start);
  lens[i] = 4;
  flags[i] = 0;
  if (last === 0xffffffff) return 1;
  v4Into(keys, at + SLOT, last + 1);
  lens[i + 1] = 4;
  flags[i + 1] = NFT_SET_ELEM_INTERVAL_END;
  return 2;
}

/** IPv6 element `e` in hex groups (`a`, `a/len`, `a-b`), as v4Plain */
function v6Plain(e: string, keys: Uint8Array, lens: Uint8Array, flags: Uint8Array, i: number) {
  const at = i * SLOT;
  const end = at + SLOT;
  if (!v6From(e, 0, keys, at)) return 0;
  if (stop === e.length) keys.copyWithin(end, at, at + 16);
  else {
    const c = e.charCodeAt(stop);
    if (c === 47) {
      const len = decimalToEnd(e, stop + 1, 3);
      if (len < 0 || len > 128) return 0;
      // network address, then every host bit set
      for (let b = 0; b < 16; b++) {
        const keep = Math.min(8, Math.max(0, len - b * 8));
        const mask = (0xff00 >> keep) & 0xff;
        keys[at + b] = keys[at + b]! & mask;
        keys[end + b] = keys[at + b]! | (~mask & 0xff);
      }
    } else if (c === 45) {
      if (!v6From(e, stop + 1, keys, end) || stop !== e.length) return 0;
      for (let b = 0; b < 16; b++) {
        if (keys[at + b]! < keys[end + b]!) break;
        if (keys[at + b]! > keys[end + b]!) return 0;
      }
    } else return 0;
  }
  lens[i] = 16;
  flags[i] = 0;
  // the address after the last (+1 with carry); none when the last is all ones
  let b = 15;
  for (; b >= 0 && keys[end + b] === 0xff; b--) keys[end + b] = 0;
  if (b < 0) return 1;
  keys[end + b]!++;
  lens[i + 1] = 16;
  flags[i + 1] = NFT_SET_ELEM_INTERVAL_END;
  return 2;
}

/**
 * An interval set's elements for nft element syntax as `nft list` prints it and the renderer
 * writes it (an address, a prefix `net/len`, or a range `first-last`), as one run: each
 * becomes its first address and the address after its last flagged INTERVAL_END (none when
 * the last is the end of the address space). They must not overlap. Throws AwgError
 * 'invalid-config' for a malformed one.
 */
export function intervalRun(elements: readonly string[]): ElementRun {
  const max = elements.length * 2;
  const keys = new Uint8Array(max * SLOT);
  const lens = new Uint8Array(max);
  const flags = new Uint8Array(max);
  let count = 0;
  for (const e of elements) {
    let n = v4Plain(e, keys, lens, flags, count);
    if (n === 0) n = v6Plain(e, keys, lens, flags, count);
    if (n > 0) {
      count += n;
      continue;
    }
    for (const r of oneInterval(e)) {
      keys.set(r.key, count * SLOT);
      lens[count] = r.key.length;
      flags[count++] = r.flags ?? 0;
    }
  }
  return { run: true, count, keys, lens, flags };
}

/** The same elements as RawElement objects (a Buffer per key). */
export function intervalElements(elements: readonly string[]): RawElement[] {
  const r = intervalRun(elements);
  const out: RawElement[] = [];
  for (let i = 0; i < r.count; i++) {
    const key = Buffer.from(r.keys.subarray(i * SLOT, i * SLOT + r.lens[i]!));
    out.push(r.flags[i] ? { key, flags: r.flags[i] } : { key });
  }
  return out;
}

/** bytes of element `i` of a run as an NFTA_LIST_ELEM (nftset.ts elementSize's rule) */
export function runElementSize(r: ElementRun, i: number): number {
  return 12 + align4(r.lens[i]!) + (r.flags[i] !== 0 ? 8 : 0);
}

// NFTA_LIST_ELEM 1 | NLA_F_NESTED { NFTA_SET_ELEM_KEY 1 | NLA_F_NESTED { NFTA_DATA_VALUE 1
// key }, [NFTA_SET_ELEM_FLAGS 3 be32] }: the nla headers little-endian as nftset.ts writes
// them (writeUInt16LE), the flags network order. NLA_F_NESTED 0x8000: its high byte.
const NESTED_1_HI = 0x80;

/**
 * Elements `from` to `to` of a run into `u` at `off`, as nftset.ts elementInto writes each
 * (the same bytes); returns the offset after them.
 */
export function runElementsInto(
  u: Uint8Array,
  off: number,
  r: ElementRun,
  from: number,
  to: number,
): number {
  const { keys, lens, flags } = r;
  for (let i = from; i < to; i++) {
    const klen = lens[i]!;
    const padded = align4(klen);
    const f = flags[i]!;
    const size = 12 + padded + (f !== 0 ? 8 : 0);
    u[off] = size & 0xff;
    u[off + 1] = size >> 8;
    u[off + 2] = 1;
    u[off + 3] = NESTED_1_HI;
    u[off + 4] = 8 + padded;
    u[off + 5] = 0;
    u[off + 6] = 1;
    u[off + 7] = NESTED_1_HI;
    u[off + 8] = 4 + klen;
    u[off + 9] = 0;
    u[off + 10] = 1;
    u[off + 11] = 0;
    const k = i * SLOT;
    let at = off + 12;
    for (let b = 0; b < klen; b++) u[at + b] = keys[k + b]!;
    for (let b = klen; b < padded; b++) u[at + b] = 0;
    at += padded;
    if (f !== 0) {
      u[at] = 8;
      u[at + 1] = 0;
      u[at + 2] = 3;
      u[at + 3] = 0;
      u[at + 4] = 0;
      u[at + 5] = 0;
      u[at + 6] = 0;
      u[at + 7] = f;
      at += 8;
    }
    off = at;
  }
  return off;
}
