/**
 * ChaCha20-Poly1305 with WireGuard's nonce (4 zero bytes ‖ u64le counter) via node:crypto,
 * XChaCha20-Poly1305 (cookie replies only) via @noble/ciphers, and raw ChaCha20 keystream
 * (AWG header protection).
 */
import { createCipheriv, createDecipheriv, type KeyObject } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { evpAead, evpChaCha20 } from '../../native/libcrypto-aead.js';
import { writeU32, writeU64 } from '../bytes.js';

/** the transport path's EVP implementation (native/libcrypto-aead.ts), or undefined: node:crypto */
const evp = evpAead();
/** raw ChaCha20 for AWG header protection (native/libcrypto-aead.ts), or undefined: node:crypto */
const chacha = evpChaCha20();

export const TAG_SIZE = 16;
const EMPTY = new Uint8Array(0);

/** Writes the 12-byte AEAD nonce for `counter` (< 2^53) into `out`. */
export function writeNonce(out: Uint8Array, counter: number): Uint8Array {
  // byte stores: a DataView per packet showed in the engine's profile (engine-syscalls --user)
  writeU32(out, 0, 0);
  writeU64(out, 4, counter);
  return out;
}

/** ciphertext ‖ tag. */
export function seal(
  key: Uint8Array | KeyObject,
  counter: number,
  plaintext: Uint8Array,
  ad?: Uint8Array,
): Buffer {
  if (evp && key instanceof Uint8Array)
    return evp.sealAd(key, writeNonce(Buffer.allocUnsafe(12), counter), plaintext, ad ?? EMPTY);
  const c = createCipheriv('chacha20-poly1305', key, writeNonce(Buffer.allocUnsafe(12), counter), {
    authTagLength: TAG_SIZE,
  });
  if (ad && ad.length) c.setAAD(ad, { plaintextLength: plaintext.length });
  const head = c.update(plaintext);
  c.final();
  return Buffer.concat([head, c.getAuthTag()]);
}

const ZERO_PAD = Buffer.alloc(64 * 1024);

/**
 * Encrypts `plaintext ‖ zeros(padLength)` into `out` at `offset` (ciphertext then tag);
 * returns bytes written. The transport hot path: no concatenation, no padded copy; a raw key
 * goes through libcrypto's EVP with a reused context (native/libcrypto-aead.ts) when it is there.
 */
export function sealInto(
  key: Uint8Array | KeyObject,
  nonce12: Uint8Array,
  plaintext: Uint8Array,
  padLength: number,
  out: Uint8Array,
  offset: number,
): number {
  if (evp && key instanceof Uint8Array)
    return evp.sealInto(key, nonce12, plaintext, padLength, out, offset);
  const c = createCipheriv('chacha20-poly1305', key, nonce12, { authTagLength: TAG_SIZE });
  let o = offset;
  if (plaintext.length) {
    const ct = c.update(plaintext);
    out.set(ct, o);
    o += ct.length;
  }
  if (padLength) {
    const ct = c.update(ZERO_PAD.subarray(0, padLength));
    out.set(ct, o);
    o += ct.length;
  }
  c.final();
  out.set(c.getAuthTag(), o);
  return o + TAG_SIZE - offset;
}

/** the nonce of sealCounter / openCounter without EVP (node:crypto) */
const counterNonce = Buffer.alloc(12);

/**
 * `sealInto` under WireGuard's nonce for `counter` (< 2^53): the transport path's seal. With
 * EVP the counter goes straight into the cipher's scratch (no nonce written, then copied).
 */
export function sealCounter(
  key: Uint8Array | KeyObject,
  counter: number,
  plaintext: Uint8Array,
  padLength: number,
  out: Uint8Array,
  offset: number,
): number {
  if (evp && key instanceof Uint8Array)
    return evp.sealCounter(key, counter, plaintext, padLength, out, offset);
  return sealInto(key, writeNonce(counterNonce, counter), plaintext, padLength, out, offset);
}

/** `openInto` under WireGuard's nonce for `counter` (< 2^53): the transport path's open. */
export function openCounter(
  key: Uint8Array,
  counter: number,
  sealed: Uint8Array,
  out: Uint8Array,
  offset: number,
): number {
  if (evp) return evp.openCounter(key, counter, sealed, out, offset);
  return openInto(key, writeNonce(counterNonce, counter), sealed, out, offset);
}

/** Returns the plaintext, or null when authentication fails. */
export function open(
  key: Uint8Array | KeyObject,
  counter: number,
  sealed: Uint8Array,
  ad?: Uint8Array,
): Buffer | null {
  return openWithNonce(key, writeNonce(Buffer.allocUnsafe(12), counter), sealed, ad);
}

export function openWithNonce(
  key: Uint8Array | KeyObject,
  nonce12: Uint8Array,
  sealed: Uint8Array,
  ad?: Uint8Array,
): Buffer | null {
  if (sealed.length < TAG_SIZE) return null;
  if (evp && key instanceof Uint8Array)
    return ad && ad.length ? evp.openAd(key, nonce12, sealed, ad) : evp.open(key, nonce12, sealed);
  const n = sealed.length - TAG_SIZE;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, nonce12, { authTagLength: TAG_SIZE });
    d.setAuthTag(sealed.subarray(n));
    if (ad && ad.length) d.setAAD(ad, { plaintextLength: n });
    const pt = d.update(sealed.subarray(0, n));
    d.final();
    return pt;
  } catch {
    return null;
  }
}

/**
 * Opens into `out` at `offset` (the receive path's reused slab): the plaintext's length, or
 * −1 when authentication fails. node:crypto (no usable EVP) decrypts into a new buffer and
 * copies.
 */
export function openInto(
  key: Uint8Array,
  nonce12: Uint8Array,
  sealed: Uint8Array,
  out: Uint8Array,
  offset: number,
): number {
  if (evp) return evp.openInto(key, nonce12, sealed, out, offset);
  const pt = openWithNonce(key, nonce12, sealed);
  if (!pt) return -1;
  out.set(pt, offset);
  return pt.length;
}

export function xseal(
  key: Uint8Array,
  nonce24: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
): Uint8Array {
  return xchacha20poly1305(key, nonce24, ad).encrypt(plaintext);
}

export function xopen(
  key: Uint8Array,
  nonce24: Uint8Array,
  sealed: Uint8Array,
  ad: Uint8Array,
): Uint8Array | null {
  try {
    return xchacha20poly1305(key, nonce24, ad).decrypt(sealed);
  } catch {
    return null;
  }
}

const ZERO4 = new Uint8Array(4);

/** IETF ChaCha20 keystream, block counter 0 (node's 16-byte IV = u32le counter ‖ nonce12). */
export function chacha20Keystream(key: Uint8Array, nonce12: Uint8Array, length: number): Buffer {
  if (chacha) {
    const out = Buffer.alloc(length);
    chacha.xor(key, nonce12, 0, out, 0, length);
    return out;
  }
  const iv = Buffer.concat([ZERO4, nonce12.subarray(0, 12)]);
  const c = createCipheriv('chacha20', key, iv);
  return c.update(Buffer.alloc(length));
}

/**
 * XORs data[at, at + length) in place with the IETF ChaCha20 keystream (block counter 0) of
 * `key` and the nonce src[nonceAt, nonceAt + 12): libcrypto's EVP on one context per key,
 * else node:crypto.
 */
export function chacha20XorInPlace(
  key: Uint8Array,
  src: Uint8Array,
  nonceAt: number,
  data: Uint8Array,
  at: number,
  length: number,
): void {
  if (chacha) return chacha.xor(key, src, nonceAt, data, at, length);
  const ks = chacha20Keystream(key, src.subarray(nonceAt, nonceAt + 12), length);
  for (let i = 0; i < length; i++) data[at + i]! ^= ks[i]!;
}
