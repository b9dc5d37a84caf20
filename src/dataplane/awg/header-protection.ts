/**
 * AWG 3.x header protection (docs/dataplane.md#header-protection): XOR with IETF
 * ChaCha20(key, nonce = first 12
 * bytes of the datagram's S-prefix, counter 0). Handshake messages are protected whole;
 * transport only in its 16-byte header. Requires every S ≥ 12.
 */
import { chacha20Keystream, chacha20XorInPlace } from '../crypto/aead.js';

export const HEADER_CIPHER_NONCE_SIZE = 12;

export function keystream(key: Uint8Array, datagram: Uint8Array, length: number): Uint8Array {
  return chacha20Keystream(key, datagram.subarray(0, HEADER_CIPHER_NONCE_SIZE), length);
}

/** XORs datagram[offset : offset+length] with ks[from : from+length] in place. */
export function xorInPlace(
  datagram: Uint8Array,
  offset: number,
  ks: Uint8Array,
  from: number,
  length: number,
): void {
  for (let i = 0; i < length; i++) datagram[offset + i]! ^= ks[from + i]!;
}

/** Protects (or, being an XOR, unprotects) `length` bytes of the message at `offset`. */
export function protect(
  key: Uint8Array,
  datagram: Uint8Array,
  offset: number,
  length: number,
): void {
  chacha20XorInPlace(key, datagram, 0, datagram, offset, length);
}
