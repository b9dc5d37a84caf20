/**
 * The tunnel MTU and the sizes of the datagrams it puts on the wire. Pure.
 *
 * A transport datagram is the S4 prefix, the 16-byte header, the plaintext (padded, but
 * never past the tunnel MTU: the 16-byte rule and content padding are capped there, random
 * trailers at the largest datagram either side has sent) and the 16-byte tag, so the
 * largest carries MTU + 32 + S4 bytes of UDP payload. IPv4 + UDP headers add 28 bytes, IPv6 + UDP 48. wg-quick's 1420 is what fits a
 * 1500-byte path over IPv6; AmneziaWG's S4 has to come off it too. docs/dataplane.md
 * "MTU and overhead" has the arithmetic.
 */
import { isCanonicalIPv4 } from './grammar.js';
import type { PathKey } from './positions.js';
import { parseTagString } from './tags.js';

/** the underlay the defaults and warnings assume (Ethernet) */
export const PATH_MTU = 1500;
/** IP + UDP headers by outer family */
export const OUTER_HEADERS = { 4: 20 + 8, 6: 40 + 8 } as const;
/** transport header (type, receiver, counter) + Poly1305 tag */
export const TRANSPORT_OVERHEAD = 16 + 16;
/** handshake message sizes without their S prefix */
export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
/** the default never goes below the IPv6 minimum link MTU */
export const MIN_DEFAULT_MTU = 1280;
/** the smallest `mtu` the schema accepts */
export const MIN_MTU = 576;

export type OuterFamily = keyof typeof OUTER_HEADERS;

/**
 * The fields of a WireGuard / AmneziaWG tunnel (schema.ts WgLikeTunnel) that sizes depend on,
 * written out here because the schema takes its `mtu` description from this module.
 */
export interface MtuInput {
  mtu?: number | undefined;
  obfuscation?: { s4?: number | undefined } | undefined;
}
export type SizedObfuscation = Partial<
  Record<'jc' | 'jmax' | 's1' | 's2' | 's3' | 's4', number | undefined>
> &
  Partial<Record<'i1' | 'i2' | 'i3' | 'i4' | 'i5', string | undefined>> & {
    /** AmneziaWG 3.x content padding (schema-values U16Range: N, "MIN-MAX" or {min, max}) */
    contentPaddingAddition?: number | string | { max: number } | undefined;
  };
export interface SizedTunnel extends MtuInput {
  addresses: string[];
  /** absent or 'embedded': our engine, which lowers TCP's MSS behind S4 (dataplane/tun/mss.ts) */
  engine?: unknown;
  peers: { endpoint?: string | undefined }[];
  /** absent for WireGuard */
  obfuscation?: SizedObfuscation | undefined;
}

/** a located warning, as semantic.ts reports it */
export interface MtuWarning {
  path: PathKey[];
  message: string;
  severity: 'warning';
}

/** The largest content padding addition (0: none); mtu.ts loads no schema. */
function paddingMax(r: SizedObfuscation['contentPaddingAddition']): number {
  if (r === undefined) return 0;
  if (typeof r === 'number') return r;
  if (typeof r === 'string') return Number(r.split('-').at(-1));
  return r.max;
}

/** The largest tunnel MTU whose transport datagrams fit PATH_MTU with `family` outer headers. */
export function fittingMtu(s4: number, family: OuterFamily = 6): number {
  return PATH_MTU - OUTER_HEADERS[family] - TRANSPORT_OVERHEAD - s4;
}

/** `mtu` when absent: 1420 − s4 (1420 for WireGuard), never below 1280. */
export function defaultMtu(t: MtuInput): number {
  return Math.max(fittingMtu(t.obfuscation?.s4 ?? 0), MIN_DEFAULT_MTU);
}

/** The MTU the tunnel's link gets. */
export function effectiveMtu(t: MtuInput): number {
  return t.mtu ?? defaultMtu(t);
}

/** 4 when every peer endpoint is an IPv4 address, so no datagram leaves over IPv6; else 6. */
export function outerFamily(t: SizedTunnel): OuterFamily {
  const eps = t.peers.flatMap((p) => (p.endpoint === undefined ? [] : [p.endpoint]));
  // host:port; an IPv6 endpoint is [addr]:port, a name has letters
  const v4 = (e: string) => isCanonicalIPv4(e.slice(0, e.lastIndexOf(':')));
  return eps.length > 0 && eps.every(v4) ? 4 : 6;
}

/** One kind of datagram at its largest, with the field that sets its size. */
export interface Datagram {
  field: 'mtu' | 's1' | 's2' | 's3' | 's4' | 'jmax' | 'i1' | 'i2' | 'i3' | 'i4' | 'i5';
  what: string;
  bytes: number;
}

/**
 * The largest datagram of each kind the tunnel sends (UDP payload). With random trailers a
 * handshake message grows only up to the largest transport datagram (or 500 bytes), so the
 * transport entry bounds those too.
 */
export function largestDatagrams(t: SizedTunnel): Datagram[] {
  const o = t.obfuscation ?? {};
  const s4 = o.s4 ?? 0;
  const out: Datagram[] = [
    {
      field: t.mtu === undefined && s4 > 0 ? 's4' : 'mtu',
      what: 'transport datagrams',
      bytes: effectiveMtu(t) + TRANSPORT_OVERHEAD + s4,
    },
  ];
  if (!t.obfuscation) return out;
  out.push(
    { field: 's1', what: 'handshake initiations', bytes: INITIATION_SIZE + (o.s1 ?? 0) },
    { field: 's2', what: 'handshake responses', bytes: RESPONSE_SIZE + (o.s2 ?? 0) },
    { field: 's3', what: 'cookie replies', bytes: COOKIE_REPLY_SIZE + (o.s3 ?? 0) },
  );
  if ((o.jc ?? 0) > 0 && o.jmax !== undefined)
    out.push({ field: 'jmax', what: 'junk datagrams', bytes: o.jmax });
  for (const k of ['i1', 'i2', 'i3', 'i4', 'i5'] as const) {
    const r = o[k] === undefined ? undefined : parseTagString(o[k]);
    if (r?.ok) out.push({ field: k, what: 'datagrams', bytes: r.size });
  }
  return out;
}

/**
 * Warnings for datagrams a 1500-byte path must fragment, at the field that sets their
 * size: `mtu`, or `obfuscation.s4` when `mtu` is absent and the default (which stops at
 * 1280) cannot make room for it. Over IPv6 unless every endpoint is an IPv4 address.
 */
export function checkMtu(t: SizedTunnel, base: PathKey[]): MtuWarning[] {
  const o = t.obfuscation ?? {};
  const s4 = o.s4 ?? 0;
  const family = outerFamily(t);
  const limit = PATH_MTU - OUTER_HEADERS[family];
  const fits = fittingMtu(s4, family);
  const v6 = t.addresses.some((a) => a.includes(':'));
  const v4only = family === 4 ? ' (every endpoint is an IPv4 address)' : '';
  const out: MtuWarning[] = [];
  for (const d of largestDatagrams(t)) {
    if (d.bytes <= limit) continue;
    const over6 = family === 6 && d.bytes + OUTER_HEADERS[4] <= PATH_MTU ? ' over IPv6' : '';
    // our engine lowers the MSS of the TCP connections it carries behind an S4 prefix
    // with content padding the clamped segments are padded to random sizes, which UDP GSO
    // and GRO cannot batch (bench/RESULTS.md, Step 24: 3.1 at 1420 ran at half speed)
    const padded =
      paddingMax(o.contentPaddingAddition) > 0
        ? '; with contentPaddingAddition the segments the peer sends are then padded to random sizes it cannot send in batches, about half the throughput'
        : '';
    const clamped =
      s4 > 0 &&
      (d.field === 'mtu' || d.field === 's4') &&
      (t.engine === undefined || t.engine === 'embedded')
        ? ` (TCP excepted: the engine lowers its MSS to fit${padded})`
        : '';
    const made = (extra = '') =>
      `${d.what} of ${d.field === 'jmax' ? 'up to ' : ''}${d.bytes} bytes (${d.bytes + OUTER_HEADERS[6]} with IPv6 outer headers, ${d.bytes + OUTER_HEADERS[4]} with IPv4)${extra} that a ${PATH_MTU}-byte path must fragment${over6}${clamped}`;
    let message: string;
    if (d.field === 'mtu') {
      const lead = s4 > 0 ? `${effectiveMtu(t)} with obfuscation.s4 = ${s4}` : `${effectiveMtu(t)}`;
      const floor = v6 ? MIN_DEFAULT_MTU : MIN_MTU;
      message =
        fits >= floor
          ? `${lead} makes ${made()}; the largest MTU that fits is ${fits}${v4only}`
          : `${lead} makes ${made()}; no MTU of at least ${floor} fits, so lower s4 to at most ${s4 + fits - floor}${v4only}`;
    } else if (d.field === 's4') {
      const orMtu =
        v6 || fits < MIN_MTU ? '' : ` or, as the tunnel has no IPv6 address, set mtu: ${fits}`;
      message = `${s4} makes ${made(` at the default MTU ${MIN_DEFAULT_MTU} (the default stops at the IPv6 minimum)`)}; lower s4 to at most ${s4 + fits - MIN_DEFAULT_MTU}${v4only}${orMtu}`;
    } else if (d.field === 'jmax' || d.field === 's1' || d.field === 's2' || d.field === 's3') {
      const v = o[d.field]!;
      const verb = d.field === 'jmax' ? 'allows' : 'makes';
      message = `${v} ${verb} ${made()}; the largest ${d.field} that fits is ${v + limit - d.bytes}${v4only}`;
    } else message = `the tag chain makes ${made()}; at most ${limit} bytes fit${v4only}`;
    const at = d.field === 'mtu' ? [d.field] : ['obfuscation', d.field];
    out.push({ path: [...base, ...at], message, severity: 'warning' });
  }
  return out;
}
