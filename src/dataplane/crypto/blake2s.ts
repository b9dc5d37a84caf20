/** BLAKE2s primitives of the WireGuard construction (docs/dataplane.md#wireguard-primitives). */
import { createHash, createHmac } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { evpBlake2s } from '../../native/libcrypto-blake2s.js';

/** libcrypto's one-shot BLAKE2s (native/libcrypto-blake2s.ts), or undefined: node:crypto objects */
const evp = evpBlake2s();
const join = (parts: Uint8Array[]): Uint8Array =>
  parts.length === 1 ? parts[0]! : Buffer.concat(parts);

/** HASH(a ‖ b ‖ …): unkeyed BLAKE2s-256. */
export function hash(...parts: Uint8Array[]): Buffer {
  if (evp) return evp.hash(join(parts));
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, x): keyed BLAKE2s with a 16-byte output (mac1, mac2, cookie). Not HMAC. */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  if (evp?.mac && key.length > 0 && key.length <= 32) return evp.mac(key, data);
  return blake2s(data, { key, dkLen: 16 });
}

/** RFC 2104 HMAC over BLAKE2s-256. */
export function hmac(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  if (evp) return evp.hmac(key, join(parts));
  const h = createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** HKDF with HMAC-BLAKE2s: KDF1/2/3 return T1, (T1,T2), (T1,T2,T3). */
export function kdf1(key: Uint8Array, input: Uint8Array): Buffer {
  return hmac(hmac(key, input), ONE);
}
export function kdf2(key: Uint8Array, input: Uint8Array): [Buffer, Buffer] {
  const prk = hmac(key, input);
  const t1 = hmac(prk, ONE);
  return [t1, hmac(prk, t1, TWO)];
}
export function kdf3(key: Uint8Array, input: Uint8Array): [Buffer, Buffer, Buffer] {
  const prk = hmac(key, input);
  const t1 = hmac(prk, ONE);
  const t2 = hmac(prk, t1, TWO);
  return [t1, t2, hmac(prk, t2, THREE)];
}
