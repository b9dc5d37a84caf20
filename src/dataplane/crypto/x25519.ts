/**
 * X25519 from raw 32-byte keys: through libcrypto's EVP_PKEY raw-key calls
 * (native/libcrypto-x25519.ts) when the process's own OpenSSL is usable (AWG_X25519=node
 * switches it off), else node:crypto KeyObjects, wrapping raw keys in fixed PKCS#8 / SPKI DER
 * prefixes (far faster than pure JS, but decoding the DER costs several times the DH itself).
 * KeyObjects are passed to node:crypto.
 */
import { diffieHellman, randomBytes, KeyObject } from 'node:crypto';
import { type EvpPrivateKey, evpX25519 } from '../../native/libcrypto-x25519.js';
import {
  x25519PrivateKeyObject,
  x25519PublicKeyObject,
  x25519PublicOf,
} from '../../util/x25519-der.js';

const evp = evpX25519();

export const KEY_SIZE = 32;

export function clamp(sk: Uint8Array): Uint8Array {
  const k = Uint8Array.from(sk);
  k[0]! &= 248;
  k[31] = (k[31]! & 127) | 64;
  return k;
}

export const privateKeyObject = x25519PrivateKeyObject;
export const publicKeyObject = x25519PublicKeyObject;

/** A private key imported for repeated DHs, with its public half. */
export interface PrivateKey {
  readonly publicKey: Uint8Array;
  /** libcrypto's handle, or node:crypto's KeyObject without it */
  readonly evp?: EvpPrivateKey;
  readonly node?: KeyObject;
}

export function importPrivateKey(sk: Uint8Array): PrivateKey {
  if (evp) {
    const k = evp.importPrivate(sk);
    return { publicKey: k.publicKey, evp: k };
  }
  const ko = privateKeyObject(sk);
  return { publicKey: publicKey(ko), node: ko };
}

/** Frees (and libcrypto cleanses) an imported key now; later DHs with it throw. */
export function disposePrivateKey(k: PrivateKey | null | undefined): void {
  if (k?.evp) evp?.freePrivate(k.evp);
}

const isPrivateKey = (k: Uint8Array | KeyObject | PrivateKey): k is PrivateKey =>
  !(k instanceof Uint8Array) && !(k instanceof KeyObject);

export function publicKey(sk: Uint8Array | KeyObject): Uint8Array {
  if (evp && sk instanceof Uint8Array) return evp.publicKey(sk);
  return x25519PublicOf(sk);
}

/** DH(sk, pk); null when the result is all-zero (low-order point), which WireGuard refuses. */
export function sharedSecret(
  sk: Uint8Array | KeyObject | PrivateKey,
  pk: Uint8Array,
): Uint8Array | null {
  let s: Uint8Array | null;
  if (isPrivateKey(sk))
    s = sk.evp ? evp!.sharedSecretWith(sk.evp, pk) : nodeSharedSecret(sk.node!, pk);
  else s = evp && sk instanceof Uint8Array ? evp.sharedSecret(sk, pk) : nodeSharedSecret(sk, pk);
  return nonZero(s);
}

function nonZero(s: Uint8Array | null): Uint8Array | null {
  if (!s) return null;
  let acc = 0;
  for (const b of s) acc |= b;
  return acc === 0 ? null : s;
}

/**
 * DH(a, pk) and DH(b, pk), each null as `sharedSecret`'s: with two imported libcrypto keys the
 * peer key is imported once for both (consuming a response: ee and se).
 */
export function sharedSecrets(
  a: Uint8Array | KeyObject | PrivateKey,
  b: Uint8Array | KeyObject | PrivateKey,
  pk: Uint8Array,
): [Uint8Array | null, Uint8Array | null] {
  if (evp && isPrivateKey(a) && isPrivateKey(b) && a.evp && b.evp) {
    const [s1, s2] = evp.sharedSecretsWith(a.evp, b.evp, pk);
    return [nonZero(s1), nonZero(s2)];
  }
  return [sharedSecret(a, pk), sharedSecret(b, pk)];
}

function nodeSharedSecret(sk: Uint8Array | KeyObject, pk: Uint8Array): Uint8Array | null {
  try {
    const priv = sk instanceof Uint8Array ? privateKeyObject(sk) : sk;
    return new Uint8Array(diffieHellman({ privateKey: priv, publicKey: publicKeyObject(pk) }));
  } catch {
    return null;
  }
}

export function generatePrivateKey(): Uint8Array {
  return clamp(randomBytes(KEY_SIZE));
}
