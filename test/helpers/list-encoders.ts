/**
 * Test encoders of the binary list formats, written from the layouts in the readers' headers
 * (src/config/list-formats/srs.ts, srs-trie.ts, geodat.ts): protobuf messages for `.dat`
 * files and sing-box `.srs` rule-sets, so tests can build the cases no published file has
 * (versions, refused items, damaged tries) and bombs.
 */
import { deflateSync } from 'node:zlib';

export function uvarint(n: number | bigint): number[] {
  let x = BigInt(n);
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

const text = (s: string | Uint8Array) => (typeof s === 'string' ? Buffer.from(s) : Buffer.from(s));

// ---------------------------------------------------------------------------------------
// protobuf

export const pb = {
  bytes(field: number, b: string | Uint8Array): Buffer {
    const v = text(b);
    return Buffer.from([...uvarint(field * 8 + 2), ...uvarint(v.length), ...v]);
  },
  varint(field: number, n: number): Buffer {
    return Buffer.from([...uvarint(field * 8), ...uvarint(n)]);
  },
};

export type GeoDomain = { type: 0 | 1 | 2 | 3 | number; value: string; attrs?: string[] };

export function geositeEntry(code: string, domains: GeoDomain[]): Buffer {
  const body = Buffer.concat([
    pb.bytes(1, code),
    ...domains.map((d) =>
      pb.bytes(
        2,
        Buffer.concat([
          ...(d.type !== 0 ? [pb.varint(1, d.type)] : []),
          pb.bytes(2, d.value),
          ...(d.attrs ?? []).map((a) =>
            pb.bytes(3, Buffer.concat([pb.bytes(1, a), pb.varint(2, 1)])),
          ),
        ]),
      ),
    ),
  ]);
  return pb.bytes(1, body);
}

export function geoipEntry(code: string, cidrs: [number[], number][], reverse = false): Buffer {
  const body = Buffer.concat([
    pb.bytes(1, code),
    ...cidrs.map(([ip, prefix]) =>
      pb.bytes(2, Buffer.concat([pb.bytes(1, Uint8Array.from(ip)), pb.varint(2, prefix)])),
    ),
    ...(reverse ? [pb.varint(3, 1)] : []),
  ]);
  return pb.bytes(1, body);
}

// ---------------------------------------------------------------------------------------
// sing-box .srs

function u64be(n: number): number[] {
  const out: number[] = [];
  let x = BigInt(n);
  for (let i = 0; i < 8; i++) {
    out.unshift(Number(x & 0xffn));
    x >>= 8n;
  }
  return out;
}

/** a LOUDS trie of the keys (bytes), laid out as sing's succinct set */
export function succinctSet(keys: string[]): Buffer {
  const ks = [...new Set(keys)].map((k) => Buffer.from(k, 'latin1')).sort(Buffer.compare);
  const leaves: number[] = [];
  const bits: number[] = [];
  const labels: number[] = [];
  // breadth first over (range of keys sharing a prefix, depth)
  const queue: [number, number, number][] = [[0, ks.length, 0]];
  for (let i = 0; i < queue.length; i++) {
    const [from0, e, col] = queue[i]!;
    let s = from0;
    if (s < e && ks[s]!.length === col) {
      leaves.push(i);
      s++;
    }
    for (let j = s; j < e;) {
      const c = ks[j]![col]!;
      const from = j;
      while (j < e && ks[j]![col] === c) j++;
      queue.push([from, j, col + 1]);
      labels.push(c);
      bits.push(0);
    }
    bits.push(1);
  }
  const words = (set: number[], n: number) => {
    const w = new Array<bigint>(Math.ceil(n / 64)).fill(0n);
    for (const i of set) w[i >> 6] = w[i >> 6]! | (1n << BigInt(i & 63));
    return w;
  };
  const ones = bits.flatMap((b, i) => (b ? [i] : []));
  const leafWords = words(leaves, Math.max(...leaves, -1) + 1);
  const bitWords = words(ones, bits.length);
  const out: number[] = [0];
  for (const w of [leafWords, bitWords]) {
    out.push(...uvarint(w.length));
    for (const x of w) for (let k = 56; k >= 0; k -= 8) out.push(Number((x >> BigInt(k)) & 0xffn));
  }
  out.push(...uvarint(labels.length), ...labels);
  return Buffer.from(out);
}

const reverse = (s: string) => [...s].reverse().join('');

/** what sing-box's NewMatcher stores for domain/domain_suffix (legacy: version 1) */
export function matcherKeys(domain: string[], suffix: string[], legacy: boolean): string[] {
  const keys: string[] = [];
  for (const d of suffix) {
    if (d.startsWith('.')) keys.push(reverse(`\r${d}`));
    else if (legacy) keys.push(reverse(d), reverse(`\r.${d}`));
    else keys.push(reverse(`\n${d}`));
  }
  for (const d of domain) keys.push(reverse(d));
  return keys;
}

export type SrsItem =
  | { domainKeys: string[] }
  | { keyword: string[] }
  | { regex: string[] }
  | { ipRanges: [number[], number[]][] }
  | { raw: number[] };

export type SrsRule =
  | { items: SrsItem[]; invert?: boolean }
  | { logical: 'and' | 'or'; rules: SrsRule[]; invert?: boolean };

function strings(type: number, xs: string[]): number[] {
  return [
    type,
    ...uvarint(xs.length),
    ...xs.flatMap((s) => [...uvarint(Buffer.byteLength(s)), ...Buffer.from(s)]),
  ];
}

function rule(r: SrsRule): number[] {
  if ('logical' in r)
    return [
      1,
      r.logical === 'and' ? 0 : 1,
      ...uvarint(r.rules.length),
      ...r.rules.flatMap(rule),
      r.invert ? 1 : 0,
    ];
  const out = [0];
  for (const it of r.items) {
    if ('domainKeys' in it) out.push(2, ...succinctSet(it.domainKeys));
    else if ('keyword' in it) out.push(...strings(3, it.keyword));
    else if ('regex' in it) out.push(...strings(4, it.regex));
    else if ('ipRanges' in it)
      out.push(
        6,
        1,
        ...u64be(it.ipRanges.length),
        ...it.ipRanges.flatMap(([a, b]) => [
          ...uvarint(a.length),
          ...a,
          ...uvarint(b.length),
          ...b,
        ]),
      );
    else out.push(...it.raw);
  }
  out.push(0xff, r.invert ? 1 : 0);
  return out;
}

/** the decompressed body of a rule-set */
export function srsBody(rules: SrsRule[]): Buffer {
  return Buffer.from([...uvarint(rules.length), ...rules.flatMap(rule)]);
}

/** a whole `.srs`: magic, version, the zlib-compressed body */
export function srs(rules: SrsRule[] | Buffer, version = 2): Buffer {
  const body = Buffer.isBuffer(rules) ? rules : srsBody(rules);
  return Buffer.concat([Buffer.from('SRS'), Buffer.from([version]), deflateSync(body)]);
}
