/**
 * X25519 from raw 32-byte keys through libcrypto's EVP_PKEY raw-key calls, for
 * src/dataplane/crypto/x25519.ts. node:crypto takes a raw key only as a DER document, and
 * decoding one costs several times the DH itself; a handshake needs five DHs. Private keys
 * used again and again (the device's static key, an ephemeral's two DHs) are imported once
 * (`importPrivate`), each with a derive context of its own made at its first DH and kept
 * until the key is freed: a DH is then the peer key's import, `EVP_PKEY_derive_set_peer_ex`
 * and `EVP_PKEY_derive` (a context and its set-up fetch the key type by name each time,
 * and `EVP_PKEY_derive_set_peer` builds a third context to check the peer key, which for
 * X25519 only asks that it has a public half). `sharedSecretsWith` imports one peer key for
 * two private keys (consuming a response: ee and se). Measurements: bench/RESULTS.md,
 * section "The first ping of 3.1, second round".
 */
import { type Lib, bindOnce, unlessNode } from './libcrypto.js';
import { paramBlock } from './libcrypto-blake2s.js';

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
  /**
   * DH(a, pk) and DH(b, pk) with `pk` imported once; each null when refused (a low-order
   * point: both). Throws when a key was freed.
   */
  sharedSecretsWith(
    a: EvpPrivateKey,
    b: EvpPrivateKey,
    pk: Uint8Array,
  ): [Uint8Array | null, Uint8Array | null];
  freePrivate(key: EvpPrivateKey): void;
}

/** libcrypto's objects behind an imported private key */
interface Native {
  pkey: unknown;
  /** its derive context (EVP_PKEY_derive_init done), made at the first DH */
  ctx: unknown;
}

/** An imported X25519 private key: its public half and libcrypto's objects (null once freed). */
export interface EvpPrivateKey {
  readonly publicKey: Uint8Array;
  /** @internal the EVP_PKEY and its derive context */
  handle: Native | null;
}

const EVP_PKEY_X25519 = 1034;
/** EVP_PKEY_PUBLIC_KEY: OSSL_KEYMGMT_SELECT_ALL_PARAMETERS (0x84) | _PUBLIC_KEY (0x02) */
const EVP_PKEY_PUBLIC_KEY = 0x86;
const OSSL_PARAM_OCTET_STRING = 5;
/** where paramBlock puts the value: the peer key is written there before each import */
const PARAM_VALUE_AT = 112;

/**
 * Imports raw X25519 public keys (a peer's) with `EVP_PKEY_fromdata` on one context made and
 * initialised once, from a parameter block ("pub", 32 bytes) whose value is overwritten per
 * key. `EVP_PKEY_new_raw_public_key` makes that context per key: the key manager fetched by
 * name (name-map lookups, a lock), set up and freed, each time — once on every first ping's
 * path (the peer's ephemeral in its response). null: this libcrypto refuses it (the raw
 * import then stays).
 */
export function publicImporter(
  l: Lib,
  clearErrors: () => void,
): ((pk: Uint8Array) => unknown) | null {
  try {
    const ctxFromName = l.func(
      'void *EVP_PKEY_CTX_new_from_name(void *libctx, const char *name, const char *propquery)',
    ) as (lc: null, n: string, p: null) => unknown;
    const fromdataInit = l.func('int EVP_PKEY_fromdata_init(void *ctx)') as (c: unknown) => number;
    const fromdata = l.func(
      'int EVP_PKEY_fromdata(void *ctx, _Out_ void **ppkey, int selection, const uint8_t *params)',
    ) as (c: unknown, out: unknown[], sel: number, p: Uint8Array) => number;
    const ctx = ctxFromName(null, 'X25519', null);
    if (!ctx) return null;
    if (fromdataInit(ctx) !== 1) {
      (l.func('void EVP_PKEY_CTX_free(void *ctx)') as (c: unknown) => void)(ctx);
      return null;
    }
    const params = paramBlock('pub', OSSL_PARAM_OCTET_STRING, Buffer.alloc(32));
    // the value's 32 bytes, inside the block (paramBlock's layout: the OSSL_PARAM points there)
    const value = new Uint8Array(params.buffer, params.byteOffset + PARAM_VALUE_AT, 32);
    const out: unknown[] = [null];
    return (pk) => {
      value.set(pk);
      out[0] = null;
      const ok = fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params);
      value.fill(0);
      if (ok === 1) return out[0];
      clearErrors();
      return null;
    };
  } catch {
    return null;
  }
}

interface XFns {
  newPriv: (type: number, e: null, key: Uint8Array, len: number) => unknown;
  newPub: (type: number, e: null, key: Uint8Array, len: number) => unknown;
  getPub: (pkey: unknown, out: Uint8Array, len: BigUint64Array) => number;
  ctxNew: (pkey: unknown, e: null) => unknown;
  deriveInit: (ctx: unknown) => number;
  setPeerEx: (ctx: unknown, peer: unknown, validate: number) => number;
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
    setPeerEx: l.func('int EVP_PKEY_derive_set_peer_ex(void *ctx, void *peer, int validate_peer)'),
    derive: l.func('int EVP_PKEY_derive(void *ctx, uint8_t *key, size_t *keylen)'),
    pkeyFree: l.func('void EVP_PKEY_free(void *pkey)'),
    ctxFree: l.func('void EVP_PKEY_CTX_free(void *ctx)'),
  } as unknown as XFns;
  const { newPriv, getPub, ctxNew, deriveInit, setPeerEx, derive, pkeyFree, ctxFree } = x;
  const clearErrors = l.func('void ERR_clear_error()') as () => void;
  const importPublic = publicImporter(l, clearErrors);
  /** a peer's raw public key as an EVP_PKEY (freed by the caller), or null when refused */
  const newPub = importPublic
    ? (_t: number, _e: null, pk: Uint8Array, _n: number) => importPublic(pk)
    : x.newPub;
  const len = new BigUint64Array(1);
  /** DH of an EVP_PKEY private key with a raw public key */
  const dh = (a: unknown, pk: Uint8Array): Uint8Array | null => {
    if (pk.length !== 32) return null;
    const b = newPub(EVP_PKEY_X25519, null, pk, 32);
    const c = ctxNew(a, null);
    try {
      if (!b || !c || deriveInit(c) !== 1) return null;
      return derivePeer(c, b);
    } finally {
      if (c) ctxFree(c);
      if (b) pkeyFree(b);
    }
  };
  /** the key's derive context, made on first use; throws once the key is freed */
  const contextOf = (key: EvpPrivateKey): unknown => {
    const n = key.handle;
    if (!n) throw new Error('X25519: private key already freed');
    if (n.ctx) return n.ctx;
    const c = ctxNew(n.pkey, null);
    if (!c) throw new Error('X25519: EVP_PKEY_CTX_new failed');
    if (deriveInit(c) !== 1) {
      ctxFree(c);
      throw new Error('X25519: EVP_PKEY_derive_init failed');
    }
    n.ctx = c;
    return c;
  };
  /** DH on a key's kept context with an imported peer key (the context keeps a reference) */
  const derivePeer = (c: unknown, peer: unknown): Uint8Array | null => {
    const out = new Uint8Array(32);
    len[0] = 32n;
    // no peer check: for X25519 it only asks for a public half, which a raw import has;
    // a low-order point fails the derive itself (an all-zero result)
    if (setPeerEx(c, peer, 0) !== 1 || derive(c, out, len) !== 1 || len[0] !== 32n) {
      // a refusal leaves its error on the thread's queue, where node:crypto would find it
      clearErrors();
      return null;
    }
    return out;
  };
  /** `use` of a raw public key imported for it (freed after), or `none` when it cannot be */
  const withPeer = <T>(pk: Uint8Array, none: T, use: (peer: unknown) => T): T => {
    if (pk.length !== 32) return none;
    const b = newPub(EVP_PKEY_X25519, null, pk, 32);
    if (!b) return none;
    try {
      return use(b);
    } finally {
      pkeyFree(b);
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
  const freeNative = (n: Native): void => {
    if (n.ctx) ctxFree(n.ctx); // first: the context holds a reference to the key
    n.ctx = null;
    pkeyFree(n.pkey);
  };
  // a key whose owner forgot to free it is freed when the owner is collected
  const held = new FinalizationRegistry<Native>(freeNative);
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
      const native: Native = { pkey: a, ctx: null };
      const key: EvpPrivateKey = { publicKey, handle: native };
      held.register(key, native, key);
      return key;
    },
    sharedSecretWith(key, pk) {
      const c = contextOf(key);
      return withPeer(pk, null, (b) => derivePeer(c, b));
    },
    sharedSecretsWith(k1, k2, pk) {
      const c1 = contextOf(k1);
      const c2 = contextOf(k2);
      return withPeer(pk, [null, null], (b) => [derivePeer(c1, b), derivePeer(c2, b)]);
    },
    freePrivate(key) {
      const n = key.handle;
      if (!n) return;
      held.unregister(key);
      key.handle = null;
      freeNative(n);
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
