/**
 * sing's domain matcher as stored in a binary rule-set (sing `common/domain` set.go and
 * matcher.go, the same layout in every version since 2023): a succinct (LOUDS) trie of the
 * domains written backwards.
 *
 *   u8 version (ignored) · leaves: uvarint n, n × u64 BE · labelBitmap: uvarint n, n × u64 BE
 *   · labels: uvarint n, n bytes
 *
 * The trie's nodes are numbered breadth first, the root 0. The label bitmap describes each
 * node in turn: one 0 bit per child (the child's edge label is the next byte of `labels`; the
 * k-th label leads to node k+1) and a 1 bit closing the node. Bit i of a bitmap is bit i%64 of
 * word i/64. `leaves` has bit n set when the path to node n is a whole key.
 *
 * Decoding keeps one Int32Array of parents (4 bytes a node, the labels capped) and walks each
 * leaf up to the root: a key is at most `MAX_KEY` bytes, all keys together at most `maxChars`.
 * A bitmap that is not a trie in this order (a child numbered before its parent, edges without
 * labels, labels left over, a bitmap that ends early) is `Damaged`.
 */
import { ByteReader, Damaged, utf8 } from './reading.js';

/** a name is at most 253 characters; with the matcher's marker and dot, 255 */
export const MAX_KEY = 256;
/**
 * edge labels at most (the parents array is 4 bytes a label): a million names of the usual
 * sort need some 11 million
 */
export const MAX_LABELS = 16 * 1024 * 1024;

export interface SuccinctSet {
  leaves: Uint8Array;
  bitmap: Uint8Array;
  labels: Uint8Array;
  /** offset of the set in the stream (for messages) */
  at: number;
}

export function readSuccinctSet(r: ByteReader): SuccinctSet {
  const at = r.pos;
  r.u8('domain matcher version');
  const leaves = r.bytes(r.count('domain matcher leaves', 8) * 8, 'domain matcher leaves');
  const bitmap = r.bytes(r.count('domain matcher bitmap', 8) * 8, 'domain matcher bitmap');
  const labels = r.lenBytes('domain matcher labels');
  return { leaves, bitmap, labels, at };
}

/** more keys than the caller allows (its `maxEntries`) */
export class TooMany extends Damaged {
  constructor(at: number) {
    super('the domain trie holds more names than maxEntries allows', at);
  }
}

/** bit i of big-endian uint64 words */
function bit(words: Uint8Array, i: number): number {
  const byte = (i >>> 6) * 8 + 7 - ((i >>> 3) & 7);
  return byte < words.length ? (words[byte]! >>> (i & 7)) & 1 : 0;
}

/**
 * The keys of a set, each turned back the right way round (the domain as written in the
 * rule-set source, with the matcher's marker `\r` or `\n` in front when it has one).
 */
export function trieKeys(set: SuccinctSet, maxKeys: number, maxChars: number): string[] {
  const { leaves, bitmap, labels, at } = set;
  const nLabels = labels.length;
  if (nLabels > MAX_LABELS)
    throw new Damaged(`a domain trie of ${nLabels} labels (at most ${MAX_LABELS})`, at);
  const nodes = nLabels + 1;
  const parent = new Int32Array(nodes);
  const bits = bitmap.length * 8;
  let node = 0;
  let label = 0;
  for (let p = 0; ; p++) {
    if (p >= bits) throw new Damaged('the domain trie bitmap ends before its last node', at);
    if (bit(bitmap, p) === 1) {
      if (++node === nodes) break;
      continue;
    }
    if (label >= nLabels) throw new Damaged('the domain trie has more edges than labels', at);
    const child = label + 1;
    if (child <= node) throw new Damaged('the domain trie is not in breadth-first order', at);
    parent[child] = node;
    label++;
  }
  if (label !== nLabels) throw new Damaged('the domain trie has labels no edge uses', at);
  const keys: string[] = [];
  const buf = new Uint8Array(MAX_KEY);
  let chars = 0;
  for (let n = 0; n < nodes; n++) {
    if (bit(leaves, n) === 0) continue;
    if (keys.length >= maxKeys) throw new TooMany(at);
    // walk up: the bytes come out last first, which is the domain's own order
    let len = 0;
    let ascii = true;
    for (let x = n; x !== 0; x = parent[x]!) {
      if (len === MAX_KEY) throw new Damaged(`a name longer than ${MAX_KEY - 3} characters`, at);
      const c = labels[x - 1]!;
      if (c >= 0x80) ascii = false;
      buf[len++] = c;
    }
    chars += len;
    if (chars > maxChars)
      throw new Damaged(`the names add up to more than ${maxChars} characters`, at);
    keys.push(ascii ? String.fromCharCode(...buf.subarray(0, len)) : unreverse(buf, len));
  }
  return keys;
}

/** a non-ASCII key: sing reverses runes, not bytes; undo that */
function unreverse(buf: Uint8Array, len: number): string {
  const fwd = new Uint8Array(len);
  for (let i = 0; i < len; i++) fwd[i] = buf[len - 1 - i]!;
  return Array.from(utf8(fwd)).reverse().join('');
}
