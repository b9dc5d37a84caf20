/**
 * X25519 from raw 32-byte keys through libcrypto's EVP_PKEY raw-key calls, for
 * src/dataplane/crypto/x25519.ts. node:crypto takes a raw key only as a DER document, and
 * decoding one costs several times the DH itself; a handshake needs five DHs. Private keys
 * used again and again (the device's static key) are imported once (`importPrivate`).
 */
import { bindOnce, unlessNode } from './libcrypto.js';

export interface EvpX25519 {
  /** DH(sk, pk), or null when libcrypto refuses it (a low-order point gives an all-zero secret) */
  sharedSecret(sk: Uint8Array, pk: Uint8Array): Uint8Array | null;
  publicKey(sk: Uint8Array): Uint8Array;
  /**
   * Imports a private key once (OpenSSL derives its public key on import: a scalar
   * multiplication) for repeated DHs, each then one multiplication instead of two. The
   * handle is freed by `freePrivate`, or when the returned object is collected.
   */
  importPrivate(sk: Uint8Array): EvpPrivateKey;
  sharedSecretWith(key: EvpPrivateKey, pk: Uint8Array): Uint8Array | null;
  freePrivate(key: EvpPrivateKey): void;
}

/** An imported X25519 private key: its public half and libcrypto's EVP_PKEY (null once freed). */
export interface EvpPrivateKey {
  readonly publicKey: Uint8Array;
  /** @internal the EVP_PKEY */
  handle: unknown;
}

const EVP_PKEY_X25519 = 1034;

interface XFns {
  newPriv: (type: number, e: null, key: Uint8Array, len: number) => unknown;
  newPub: (type: number, e: null, key: Uint8Array, len: number) => unknown;
  getPub: (pkey: unknown, out: Uint8Array, len: BigUint64Array) => number;
  ctxNew: (pkey: unknown, e: null) => unknown;
  deriveInit: (ctx: unknown) => number;
  setPeer: (ctx: unknown, peer: unknown) => number;
  derive: (ctx: unknown, out: Uint8Array, len: BigUint64Array) => number;
  pkeyFree: (pkey: unknown) => void;
  ctxFree: (ctx: unknown) => void;
}

const x25519 = bindOnce((l): EvpX25519 | null => {
  const x = {
    newPriv: l.func(
      'void *EVP_PKEY_new_raw_private_key(int type, void *e, const uint8_t *key, size_t keylen)',
    ),
    newPub: l.func(
      'void *EVP_PKEY_new_raw_public_key(int type, void *e, const uint8_t *key, size_t keylen)',
    ),
    getPub: l.func('int EVP_PKEY_get_raw_public_key(void *pkey, uint8_t *pub, size_t *len)'),
    ctxNew: l.func('void *EVP_PKEY_CTX_new(void *pkey, void *e)'),
    deriveInit: l.func('int EVP_PKEY_derive_init(void *ctx)'),
    setPeer: l.func('int EVP_PKEY_derive_set_peer(void *ctx, void *peer)'),
    derive: l.func('int EVP_PKEY_derive(void *ctx, uint8_t *key, size_t *keylen)'),
    pkeyFree: l.func('void EVP_PKEY_free(void *pkey)'),
    ctxFree: l.func('void EVP_PKEY_CTX_free(void *ctx)'),
  } as unknown as XFns;
  const { newPriv, newPub, getPub, ctxNew, deriveInit, setPeer, derive, pkeyFree, ctxFree } = x;
  const len = new BigUint64Array(1);
  /** DH of an EVP_PKEY private key with a raw public key */
  const dh = (a: unknown, pk: Uint8Array): Uint8Array | null => {
    if (pk.length !== 32) return null;
    const b = newPub(EVP_PKEY_X25519, null, pk, 32);
    const c = ctxNew(a, null);
    try {
      if (!b || !c) return null;
      const out = new Uint8Array(32);
      len[0] = 32n;
      if (deriveInit(c) !== 1 || setPeer(c, b) !== 1 || derive(c, out, len) !== 1 || len[0] !== 32n)
        return null;
      return out;
    } finally {
      if (c) ctxFree(c);
      if (b) pkeyFree(b);
    }
  };
  const rawPublic = (a: unknown): Uint8Array => {
    const out = new Uint8Array(32);
    len[0] = 32n;
    if (getPub(a, out, len) !== 1 || len[0] !== 32n)
      throw new Error('X25519: EVP_PKEY_get_raw_public_key failed');
    return out;
  };
  /** an EVP_PKEY of a raw private key (freed by the caller); throws for anything but 32 bytes */
  const privateKey = (sk: Uint8Array): unknown => {
    const a = sk.length === 32 ? newPriv(EVP_PKEY_X25519, null, sk, 32) : null;
    if (!a) throw new Error('X25519: not a 32-byte private key');
    return a;
  };
  // a handle whose owner forgot to free it is freed when the owner is collected
  const held = new FinalizationRegistry<unknown>((handle) => pkeyFree(handle));
  return {
    sharedSecret(sk, pk) {
      if (sk.length !== 32) return null;
      const a = newPriv(EVP_PKEY_X25519, null, sk, 32);
      if (!a) return null;
      try {
        return dh(a, pk);
      } finally {
        pkeyFree(a);
      }
    },
    importPrivate(sk) {
      const a = privateKey(sk);
      let publicKey: Uint8Array;
      try {
        publicKey = rawPublic(a);
      } catch (e) {
        pkeyFree(a);
        throw e;
      }
      const key: EvpPrivateKey = { publicKey, handle: a };
      held.register(key, a, key);
      return key;
    },
    sharedSecretWith(key, pk) {
      if (!key.handle) throw new Error('X25519: private key already freed');
      return dh(key.handle, pk);
    },
    freePrivate(key) {
      if (!key.handle) return;
      held.unregister(key);
      pkeyFree(key.handle);
      key.handle = null;
    },
    publicKey(sk) {
      const a = privateKey(sk);
      try {
        return rawPublic(a);
      } finally {
        pkeyFree(a);
      }
    },
  };
});

/** X25519 through EVP_PKEY raw keys, or undefined (no usable OpenSSL in the process, or AWG_X25519=node) */
export const evpX25519 = unlessNode('AWG_X25519', x25519);
