/**
 * AWG framing around unchanged WireGuard messages (docs/dataplane.md#amneziawg-framing):
 *   datagram = S-prefix (random) ‖ message (type ∈ H range, macs over that type) ‖ trailer
 * with optional header protection. Default parameters produce plain WireGuard bytes.
 */
import {
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MIN_MESSAGE_SIZE,
  PADDING_MULTIPLE,
} from '../constants.js';
import { readU32 } from '../noise/messages.js';
import { chacha20XorInPlace } from '../crypto/aead.js';
import { keystream, protect, xorInPlace } from './header-protection.js';
import { junkPackets } from './junk.js';
import { headerMatches, pickHeader } from './magic-header.js';
import { fillPrefix, withPrefix } from './prefix.js';
import { type AwgParams, hasHeaderProtection, headerRange } from './params.js';
import type { RandomSource } from './random.js';
import { type UintRange, isZeroRange, pickOne } from './range.js';
import { type Tag, generateTags, parseTags, stampTime } from './tags.js';

export type MessageKind = 1 | 2 | 3 | 4;

/** the message area of an initiation frame drawn ahead (overwritten at sending) */
const INITIATION_ZEROS = new Uint8Array(MESSAGE_INITIATION_SIZE);

export interface Classified {
  kind: MessageKind;
  /** the WireGuard message, de-protected in place; its type field still holds the H value */
  msg: Uint8Array;
}

const HANDSHAKE_SIZES = [
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
] as const;

/** Standard WireGuard padding (wireguard-go calculatePaddingSize). */
export function paddingSize(len: number, mtu: number): number {
  if (mtu === 0) return ((len + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1)) - len;
  const last = len > mtu ? len % mtu : len;
  const padded = Math.min((last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1), mtu);
  return padded - last;
}

export class AwgCodec {
  readonly s: readonly [number, number, number, number];
  readonly h: readonly [UintRange, UintRange, UintRange, UintRange];
  private readonly hpk: Uint8Array | null;
  /** the first 16 keystream bytes of a datagram (header protection, transportOnly) */
  private readonly ks16 = new Uint8Array(MESSAGE_TRANSPORT_HEADER_SIZE);
  /** the keystream of a datagram's handshake readings (`candidates`), reused */
  private readonly ksHandshake = new Uint8Array(MESSAGE_INITIATION_SIZE);
  private readonly itags: Tag[][];
  /** the next preamble, drawn ahead (`preparePreamble`); its `<t>` still to be written */
  private ready: Uint8Array[] | null = null;
  /** the next initiation's datagram, drawn ahead (`prepareInitiationFrame`) for `window` */
  private frame1: { window: number; d: Uint8Array; ks: Uint8Array | null } | null = null;

  constructor(
    readonly params: AwgParams,
    private readonly rng: RandomSource,
  ) {
    this.s = [params.s1, params.s2, params.s3, params.s4];
    this.h = [
      headerRange(params, 1),
      headerRange(params, 2),
      headerRange(params, 3),
      headerRange(params, 4),
    ];
    this.hpk = hasHeaderProtection(params) ? params.headerProtectionKey : null;
    this.itags = params.i.flatMap((spec) => {
      const t = spec === null ? null : parseTags(spec);
      return t ? [t] : [];
    });
  }

  /** A fresh type value for a message of this kind. */
  pickType(kind: MessageKind): number {
    return pickHeader(this.h[kind - 1]!, this.rng);
  }

  /** I-packets then Jc junk datagrams, sent before every initiation. `wallMs` feeds `<t>`. */
  preamble(wallMs: number): Uint8Array[] {
    const ready = this.ready;
    if (ready) {
      this.ready = null;
      for (let i = 0; i < this.itags.length; i++) stampTime(this.itags[i]!, ready[i]!, wallMs);
      return ready;
    }
    const out = this.itags.map((t) => generateTags(t, this.rng, wallMs));
    out.push(...junkPackets(this.params.jc, this.params.jmin, this.params.jmax, this.rng));
    return out;
  }

  /**
   * Draws the next preamble ahead, while idle (the device does it with the prepared
   * initiation): its random bytes and sizes then cost the initiation's path nothing, and
   * `preamble` only writes the `<t>` timestamps. Used once.
   */
  preparePreamble(): void {
    if (this.ready || (this.itags.length === 0 && this.params.jc === 0)) return;
    this.ready = this.preamble(0);
  }

  /** Frames a finished (mac'ed) handshake message of kind 1..3. `window` = peer udpWindow. */
  sealHandshake(kind: 1 | 2 | 3, msg: Uint8Array, window: number): Uint8Array {
    const s = this.s[kind - 1]!;
    const f = kind === 1 ? this.frame1 : null;
    if (f && f.window === window && msg.length === MESSAGE_INITIATION_SIZE) {
      // drawn ahead (`prepareInitiationFrame`): the message goes in and is protected
      this.frame1 = null;
      f.d.set(msg, s);
      if (f.ks) xorInPlace(f.d, s, f.ks, 0, msg.length);
      return f.d;
    }
    const d = this.frame(s, msg, window);
    if (this.hpk) protect(this.hpk, d, s, msg.length);
    return d;
  }

  /** prefix(s) ‖ msg ‖ random trailer (for the peer's window): the draws of a handshake datagram */
  private frame(s: number, msg: Uint8Array, window: number): Uint8Array {
    let trailer = 0;
    if (this.params.randomTrailers && window > s + msg.length)
      trailer = this.rng.intn(window - (s + msg.length));
    const d = withPrefix(s, msg, trailer, this.rng);
    if (trailer) {
      // straight into the datagram (no array made and copied)
      if (this.rng.fill) this.rng.fill(d, s + msg.length, trailer);
      else d.set(this.rng.bytes(trailer), s + msg.length);
    }
    return d;
  }

  /**
   * Draws the next initiation's datagram ahead, while idle, for a peer whose window is
   * `window` (the device does it with the prepared initiation and the preamble): its S1
   * prefix, its random trailer and, with header protection, the keystream the prefix selects.
   * `sealHandshake(1, msg, window)` then only copies the message in and XORs it; with another
   * window it draws anew. Used once. Nothing to draw for plain WireGuard framing.
   */
  prepareInitiationFrame(window: number): void {
    const s = this.s[0];
    if (this.frame1?.window === window || (s === 0 && !this.params.randomTrailers && !this.hpk))
      return;
    const d = this.frame(s, INITIATION_ZEROS, window);
    const ks = this.hpk ? keystream(this.hpk, d, MESSAGE_INITIATION_SIZE) : null;
    this.frame1 = { window, d, ks };
  }

  get transportPrefix(): number {
    return this.s[3];
  }

  /** The most content padding (3.x) a transport plaintext gets beyond its packet; 0: none. */
  get paddingAdditionMax(): number {
    return this.params.contentPaddingAddition.hi;
  }

  /**
   * Completes a transport datagram whose message starts at `transportPrefix`: fills the
   * random prefix and protects the 16-byte header. Call after sealing.
   */
  finishTransport(d: Uint8Array): void {
    const s = this.s[3];
    fillPrefix(d, s, this.rng);
    if (this.hpk) protect(this.hpk, d, s, MESSAGE_TRANSPORT_HEADER_SIZE);
  }

  /** Zero padding to append inside the AEAD for a plaintext of `len` bytes. */
  transportPadding(len: number, mtu: number, udpWindow: number): number {
    const cpa = this.params.contentPaddingAddition;
    if (!isZeroRange(cpa)) {
      let add = pickOne(cpa, this.rng);
      // amneziawg-go randomPaddingAddition: only a length past the MTU is taken modulo it, so
      // a full-size packet gets no padding and the datagram stays within MTU + 32 + S4
      if (mtu > 0) add = Math.max(0, Math.min(add, mtu - (len > mtu ? len % mtu : len)));
      return add;
    }
    if (this.params.randomTrailers) {
      const room = udpWindow - (len + MIN_MESSAGE_SIZE + this.s[3]);
      return room > 0 ? this.rng.intn(room) : 0;
    }
    return paddingSize(len, mtu);
  }

  /**
   * Receiver classification in amneziawg-go HEAD order: init, response, cookie (exact size,
   * or larger with random trailers), then transport. Junk and I-packets give null. The first
   * reading only: the receive path uses `candidates`.
   */
  classify(d: Uint8Array): Classified | null {
    return this.candidates(d)[0] ?? null;
  }

  /**
   * The offset of the transport message when that is `d`'s only reading (the receive path's
   * common case, taken without `candidates`' array, objects and view), else −1: then
   * `candidates` decides. With header protection the type is read through the first 16
   * bytes of the datagram's keystream, and the transport header de-protected in place when it
   * answers. When ≥ 0, `candidates(d)` is exactly one transport reading at that offset, and
   * `d` then reads as that reading's does.
   */
  transportOnly(d: Uint8Array): number {
    const s4 = this.s[3];
    if (d.length < s4 + MIN_MESSAGE_SIZE) return -1;
    let typeHash = 0;
    const ks = this.ks16;
    if (this.hpk) {
      ks.fill(0);
      chacha20XorInPlace(this.hpk, d, 0, ks, 0, MESSAGE_TRANSPORT_HEADER_SIZE);
      typeHash = readU32(ks, 0);
    }
    if (!headerMatches(d, s4, this.h[3], typeHash)) return -1;
    const trailers = this.params.randomTrailers;
    for (let k = 0; k < 3; k++) {
      const s = this.s[k]!;
      const l = HANDSHAKE_SIZES[k]!;
      if (
        (d.length === s + l || (trailers && d.length > s + l)) &&
        headerMatches(d, s, this.h[k]!, typeHash)
      )
        return -1;
    }
    if (this.hpk) xorInPlace(d, s4, ks, 0, MESSAGE_TRANSPORT_HEADER_SIZE);
    return s4;
  }

  /**
   * Every reading of `d` that size and H range allow, in the order of `classify`. Size and
   * type alone can be ambiguous: with random trailers every datagram longer than s1 + 148 is
   * tested as an initiation, and the 4 bytes at s1 of a response or transport datagram lie
   * in a wide H1 range by chance (|H1| / 2^32), which dropped such packets. The receiver
   * tries the readings in turn until one authenticates (mac1, the cookie AEAD, the transport
   * AEAD). Handshake readings are de-protected into copies (never views of `d`: a Buffer's
   * `slice` is one); the transport reading, always last, in place.
   */
  candidates(d: Uint8Array): Classified[] {
    const out: Classified[] = [];
    if (d.length < MIN_MESSAGE_SIZE) return out;
    let ks: Uint8Array | null = null;
    if (this.hpk) {
      // into the codec's own buffer (a handshake's path allocated one each): the readings
      // below are copies or de-protected in place, none keeps it
      ks = this.ksHandshake;
      ks.fill(0);
      chacha20XorInPlace(this.hpk, d, 0, ks, 0, MESSAGE_INITIATION_SIZE);
    }
    const typeHash = ks ? readU32(ks, 0) : 0;
    for (let k = 0; k < 3; k++) {
      const s = this.s[k]!;
      const l = HANDSHAKE_SIZES[k]!;
      if (d.length === s + l || (this.params.randomTrailers && d.length > s + l)) {
        if (headerMatches(d, s, this.h[k]!, typeHash)) {
          // a copy, also when `d` is a Buffer (the native bind's receive block), whose own
          // `slice` is a view: the transport reading below de-protects its header in place,
          // and a view of a handshake message overlapping it then failed mac1
          const msg = Uint8Array.prototype.slice.call(d, s, s + l);
          if (ks) xorInPlace(msg, 0, ks, 0, l);
          out.push({ kind: (k + 1) as MessageKind, msg });
        }
      }
    }
    const s4 = this.s[3];
    if (d.length >= s4 + MIN_MESSAGE_SIZE && headerMatches(d, s4, this.h[3], typeHash)) {
      if (ks) xorInPlace(d, s4, ks, 0, MESSAGE_TRANSPORT_HEADER_SIZE);
      out.push({ kind: 4, msg: d.subarray(s4) });
    } else if (s4 && !this.hpk && d.length === MIN_MESSAGE_SIZE && headerMatches(d, 0, this.h[3])) {
      // amneziawg-go v0.2.13–v0.2.17 sent keepalives without the S4 prefix (fixed in f4f4c99);
      // such a 32-byte datagram cannot be a prefixed transport packet, so accept it.
      out.push({ kind: 4, msg: d });
    }
    return out;
  }
}
