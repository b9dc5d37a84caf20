/**
 * The name a client asks for in its first bytes: the server name (SNI) of a TLS ClientHello,
 * or the Host header of an HTTP/1 request. Pure; any input is safe (hostile bytes give
 * `none`, never a throw or a read past the buffer), and the work is linear in the bytes
 * given, which the caller bounds (MAX_SNIFF_BYTES).
 *
 * - `more`: the bytes so far are a prefix of something that may still name a host (a TLS
 *   handshake record or an HTTP request line and headers not yet complete); read more.
 * - `none`: they never will (another protocol, a ClientHello without SNI, a request without
 *   Host or with an address as its host, malformed input, more than MAX_SNIFF_BYTES needed).
 * - `name`: the host name, lowercased, without a trailing dot or port. Only names in the DNS
 *   host grammar (letters, digits, `-`, `_`, dots; labels of 1-63, at most 253 in all) are
 *   given; an address literal is not a name.
 *
 * TLS: a ClientHello may span several handshake records; their fragments are joined.
 * Encrypted ClientHello (ECH) hides the inner name: the outer SNI (the provider's public
 * name) is what is given. HTTP/2 and HTTP/3 are not read (h2 over TLS gives its SNI; h2c
 * with prior knowledge gives `none`).
 */

export type Sniffed =
  { state: 'more' } | { state: 'none' } | { state: 'name'; name: string; via: 'sni' | 'host' };

/** what a caller reads at most before giving up on a name */
export const MAX_SNIFF_BYTES = 32 * 1024;

const MORE: Sniffed = { state: 'more' };
const NONE: Sniffed = { state: 'none' };

/** a DNS host name (case-insensitive), lowercased without a trailing dot; else undefined */
export function hostName(raw: string): string | undefined {
  let s = raw.toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.length === 0 || s.length > 253) return undefined;
  const labels = s.split('.');
  for (const l of labels)
    if (l.length === 0 || l.length > 63 || !/^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$/.test(l))
      return undefined;
  // all-numeric last label: an address (1.2.3.4), not a name
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return undefined;
  return s;
}

export function sniffName(b: Uint8Array): Sniffed {
  if (b.length === 0) return MORE;
  if (b[0] === 0x16) return sniffTls(b);
  if (b[0]! >= 0x41 && b[0]! <= 0x5a) return sniffHttp(b);
  return NONE;
}

/** the handshake bytes of the consecutive TLS handshake records so far (undefined: not TLS) */
function handshakeBytes(b: Uint8Array): Uint8Array | undefined {
  const parts: Uint8Array[] = [];
  let total = 0;
  let pos = 0;
  while (pos < b.length) {
    if (b[pos] !== 0x16) return pos === 0 ? undefined : join(parts, total);
    if (pos + 1 < b.length && b[pos + 1] !== 3) return undefined;
    if (pos + 5 > b.length) break;
    const len = (b[pos + 3]! << 8) | b[pos + 4]!;
    if (len === 0 || len > 16384 + 2048) return undefined;
    const end = pos + 5 + Math.min(len, b.length - pos - 5);
    parts.push(b.subarray(pos + 5, end));
    total += end - pos - 5;
    pos = end;
  }
  return join(parts, total);
}

function join(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  if (parts.length === 0) return new Uint8Array(0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function sniffTls(b: Uint8Array): Sniffed {
  const h = handshakeBytes(b);
  if (!h) return NONE;
  if (h.length < 4) return b.length >= MAX_SNIFF_BYTES ? NONE : MORE;
  if (h[0] !== 1) return NONE; // not a ClientHello
  const len = (h[1]! << 16) | (h[2]! << 8) | h[3]!;
  if (len > MAX_SNIFF_BYTES) return NONE;
  if (h.length < 4 + len) return b.length >= MAX_SNIFF_BYTES ? NONE : MORE;
  return clientHelloSni(h.subarray(4, 4 + len));
}

/** the SNI of a ClientHello body (after the handshake header) */
function clientHelloSni(c: Uint8Array): Sniffed {
  let p = 2 + 32; // legacy_version, random
  const u8 = () => (p < c.length ? c[p++]! : -1);
  const u16 = () => {
    if (p + 2 > c.length) return -1;
    const v = (c[p]! << 8) | c[p + 1]!;
    p += 2;
    return v;
  };
  const skip = (n: number) => {
    if (n < 0 || p + n > c.length) return false;
    p += n;
    return true;
  };
  if (p > c.length) return NONE;
  if (!skip(u8())) return NONE; // session id
  if (!skip(u16())) return NONE; // cipher suites
  if (!skip(u8())) return NONE; // compression methods
  const extLen = u16();
  if (extLen < 0 || p + extLen > c.length) return NONE;
  const extEnd = p + extLen;
  while (p + 4 <= extEnd) {
    const type = u16();
    const len = u16();
    if (p + len > extEnd) return NONE;
    if (type !== 0) {
      p += len;
      continue;
    }
    // server_name: ServerNameList<1..2^16-1> of {NameType, HostName<1..2^16-1>}
    const end = p + len;
    const listLen = u16();
    if (listLen < 0 || p + listLen > end) return NONE;
    while (p + 3 <= end) {
      const kind = u8();
      const n = u16();
      if (n < 0 || p + n > end) return NONE;
      if (kind === 0) {
        let s = '';
        for (let i = p; i < p + n; i++) s += String.fromCharCode(c[i]!);
        const name = hostName(s);
        return name ? { state: 'name', name, via: 'sni' } : NONE;
      }
      p += n;
    }
    return NONE;
  }
  return NONE;
}

const METHOD = /^[A-Z]{1,16} /;

function sniffHttp(b: Uint8Array): Sniffed {
  // only the head is read, as latin1 (one char per byte): bounded by the caller's buffer
  const n = Math.min(b.length, MAX_SNIFF_BYTES);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(b[i]!);
  if (!METHOD.test(s)) return s.length < 17 && /^[A-Z]*$/.test(s) ? MORE : NONE;
  const lineEnd = s.indexOf('\r\n');
  if (lineEnd < 0) return n >= MAX_SNIFF_BYTES ? NONE : MORE;
  if (!/^[A-Z]{1,16} \S+ HTTP\/1\.[01]$/.test(s.slice(0, lineEnd))) return NONE;
  let pos = lineEnd + 2;
  for (;;) {
    const end = s.indexOf('\r\n', pos);
    if (end < 0) return n >= MAX_SNIFF_BYTES ? NONE : MORE;
    if (end === pos) return NONE; // end of headers, no Host
    const line = s.slice(pos, end);
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).toLowerCase() === 'host') {
      const v = line.slice(colon + 1).trim();
      if (v.startsWith('[')) return NONE; // an IPv6 literal
      const name = hostName(v.replace(/:[0-9]*$/, ''));
      return name ? { state: 'name', name, via: 'host' } : NONE;
    }
    pos = end + 2;
  }
}
