/**
 * libcrypto (OpenSSL 3) through koffi, where node:crypto's per-call setup dominates:
 * - ChaCha20-Poly1305 for the transport hot path, with one cipher context per key, set up
 *   once and re-keyed per packet with the nonce only (`evpAead`);
 * - X25519 from raw 32-byte keys (`evpX25519`): node:crypto can only take a raw key as a DER
 *   document, and decoding one costs ≈ 0.46 ms (private) / 0.1 ms (public) against ≈ 0.05 ms
 *   for the DH itself; a handshake needs five of them (bench/RESULTS.md Step 10).
 *
 * Why: `createCipheriv` builds a new cipher object (key schedule, JS wrapper, allocations)
 * for every packet; that setup costs more than encrypting 1420 bytes. Measured here (one
 * core, 1420-byte packets): createCipheriv ≈ 7 µs per packet, EVP with a reused context
 * ≈ 2–3 µs (bench/aead.bench.ts, RESULTS.md Step 10). Used by src/dataplane/crypto (aead.ts, x25519.ts).
 *
 * Contract:
 * - `evpAead()` is undefined when the process exports no usable OpenSSL 3 (processOpenSsl), or
 *   when AWG_AEAD=node (the off switch for diagnosis); callers then use node:crypto.
 * - Output is byte-identical to node:crypto's (tested); an authentication failure returns
 *   null, as openWithNonce does.
 * - Contexts are cached per key buffer (WeakMap; the keypair's key buffers keep their
 *   identity for the keypair's life) and freed (EVP_CIPHER_CTX_free, which cleanses them)
 *   when the key buffer is collected.
 * - Single-threaded: a context is used by one call at a time.
 * - The transport path (`sealInto`, `openInto`) calls libcrypto with addresses as numbers
 *   (uintptr_t) wherever it can: its contexts, its scratch, and the output buffer, whose
 *   address is kept while the same buffer (a device's slab) is passed again. koffi takes a
 *   number in ≈ 60 ns, a Buffer in ≈ 85 and a fresh view in ≈ 125 (four or five calls per
 *   packet). Only off-heap memory is addressed: reading `.buffer` of a typed array moves an
 *   on-heap one off the heap for good, and the scratch is a Buffer of its own.
 */
import koffi from 'koffi';

const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;
const TAG = 16;

interface Fns {
  ctxNew: () => unknown;
  ctxFree: (ctx: unknown) => void;
  cipher: () => unknown;
  encInit: (
    ctx: unknown,
    type: unknown,
    impl: null,
    key: Uint8Array | null,
    iv: Uint8Array | null,
  ) => number;
  encUpdate: (
    ctx: unknown,
    out: Uint8Array,
    outl: Int32Array,
    inp: Uint8Array,
    inl: number,
  ) => number;
  encFinal: (ctx: unknown, out: Uint8Array, outl: Int32Array) => number;
  /**
   * The same calls declared `void`, for the transport path, which does not read their result
   * (koffi makes no JS number for it): a seal of 1,420 bytes 2–6 % faster (bench/RESULTS.md)
   */
  encUpdateV: (
    ctx: unknown,
    out: Uint8Array,
    outl: Int32Array,
    inp: Uint8Array,
    inl: number,
  ) => void;
  encFinalV: (ctx: unknown, out: Uint8Array, outl: Int32Array) => void;
  decUpdateV: (
    ctx: unknown,
    out: Uint8Array,
    outl: Int32Array,
    inp: Uint8Array,
    inl: number,
  ) => void;
  decInit: (
    ctx: unknown,
    type: unknown,
    impl: null,
    key: Uint8Array | null,
    iv: Uint8Array | null,
  ) => number;
  decUpdate: (
    ctx: unknown,
    out: Uint8Array,
    outl: Int32Array,
    inp: Uint8Array,
    inl: number,
  ) => number;
  decFinal: (ctx: unknown, out: Uint8Array, outl: Int32Array) => number;
  ctrl: (ctx: unknown, type: number, arg: number, ptr: Uint8Array) => number;
}

/** The transport path's calls, with pointers as numbers (uintptr_t) where the memory is ours. */
interface AddrFns {
  ctxNew: () => number;
  ctxFree: (ctx: number) => void;
  cipher: () => number;
  encInit: (ctx: number, type: number, impl: number, key: Uint8Array | null, iv: number) => number;
  encUpdate: (ctx: number, out: number, outl: number, inp: Uint8Array, inl: number) => void;
  encFinal: (ctx: number, out: number, outl: number) => void;
  decInit: (ctx: number, type: number, impl: number, key: Uint8Array | null, iv: number) => number;
  decUpdate: (ctx: number, out: number, outl: number, inp: Uint8Array, inl: number) => void;
  decFinal: (ctx: number, out: number, outl: number) => number;
  ctrl: (ctx: number, type: number, arg: number, ptr: number) => number;
}

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

export interface EvpAead {
  /** encrypt `plaintext ‖ zeros(padLength)` into `out` at `offset` (ciphertext ‖ tag); bytes written */
  sealInto(
    key: Uint8Array,
    nonce12: Uint8Array,
    plaintext: Uint8Array,
    padLength: number,
    out: Uint8Array,
    offset: number,
  ): number;
  /** ciphertext ‖ tag → plaintext, or null when authentication fails */
  open(key: Uint8Array, nonce12: Uint8Array, sealed: Uint8Array): Buffer | null;
  /**
   * ciphertext ‖ tag → plaintext written into `out` at `offset` (room for sealed.length − 16
   * bytes needed); its length, or −1 when authentication fails (what was written is garbage)
   */
  openInto(
    key: Uint8Array,
    nonce12: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): number;
  /**
   * One-off keys with associated data (the handshake's AEAD): one context re-keyed per call,
   * nothing cached per key. ciphertext ‖ tag; or the plaintext / null.
   */
  sealAd(key: Uint8Array, nonce12: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer;
  openAd(key: Uint8Array, nonce12: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Buffer | null;
}

/** BLAKE2s-256 and HMAC-BLAKE2s one-shot through libcrypto (the handshake's hashing). */
export interface EvpBlake2s {
  hash(data: Uint8Array): Buffer;
  hmac(key: Uint8Array, data: Uint8Array): Buffer;
  /**
   * Keyed BLAKE2s with a 16-byte output (WireGuard's MAC: mac1, mac2, cookies; not HMAC),
   * through OpenSSL 3's BLAKE2SMAC on one reused context; undefined where this libcrypto has
   * no BLAKE2SMAC (blake2s.ts computes it in JavaScript then). Key: 1–32 bytes.
   */
  mac?(key: Uint8Array, data: Uint8Array): Uint8Array;
}

let loaded: EvpAead | null | undefined;
let loadedX: EvpX25519 | null | undefined;
let loadedB: EvpBlake2s | null | undefined;

/**
 * BLAKE2s through libcrypto's one-shot EVP_Digest / HMAC with a digest fetched once, or
 * undefined (no usable OpenSSL in the process, or AWG_BLAKE2=node). node:crypto's createHash /
 * createHmac build an object and fetch the digest per call, about twenty times a handshake;
 * cold, as after an idle while, a hash-and-KDF step of the response took 0.06–0.16 ms
 * (bench/RESULTS.md, Step 10, "First ping, taken apart again").
 */
export function evpBlake2s(env: NodeJS.ProcessEnv = process.env): EvpBlake2s | undefined {
  if (env.AWG_BLAKE2 === 'node') return undefined;
  if (loadedB === undefined) loadedB = loadBlake2s();
  return loadedB ?? undefined;
}

// an empty buffer reaches C as NULL, which HMAC refuses for a key: point at a byte, length 0
const nonNull = new Uint8Array(1);
const ptr = (b: Uint8Array): Uint8Array => (b.length ? b : nonNull);

function loadBlake2s(): EvpBlake2s | null {
  const l = libcrypto();
  if (!l) return null;
  try {
    const fetch = l.func(
      'void *EVP_MD_fetch(void *ctx, const char *algorithm, const char *properties)',
    ) as (c: null, a: string, p: null) => unknown;
    const digest = l.func(
      'int EVP_Digest(const uint8_t *data, size_t count, uint8_t *md, unsigned int *size, const void *type, void *impl)',
    ) as (
      d: Uint8Array,
      n: number,
      md: Uint8Array,
      size: Uint32Array,
      type: unknown,
      impl: null,
    ) => number;
    const hmac = l.func(
      'uint8_t *HMAC(const void *md, const uint8_t *key, int keylen, const uint8_t *d, size_t n, uint8_t *out, unsigned int *outlen)',
    ) as (
      md: unknown,
      k: Uint8Array,
      kl: number,
      d: Uint8Array,
      n: number,
      out: Uint8Array,
      ol: Uint32Array,
    ) => unknown;
    const md = fetch(null, 'BLAKE2S-256', null);
    if (!md) return null;
    const size = new Uint32Array(1);
    const mac = loadBlake2sMac(l);
    return {
      ...(mac ? { mac } : {}),
      hash(data) {
        const out = Buffer.allocUnsafe(32);
        if (digest(ptr(data), data.length, out, size, md, null) !== 1 || size[0] !== 32)
          throw new Error('EVP_Digest(BLAKE2S-256) failed');
        return out;
      },
      hmac(key, data) {
        const out = Buffer.allocUnsafe(32);
        if (!hmac(md, ptr(key), key.length, ptr(data), data.length, out, size) || size[0] !== 32)
          throw new Error('HMAC(BLAKE2S-256) failed');
        return out;
      },
    };
  } catch {
    return null;
  }
}

/** OSSL_PARAM: key, data_type (+4 padding), data, data_size, return_size (LP64) */
const OSSL_PARAM_SIZE = 40;
const OSSL_PARAM_UNSIGNED_INTEGER = 2;

/**
 * BLAKE2SMAC (keyed BLAKE2s) with its output size set to 16 once on one context, re-keyed by
 * EVP_MAC_init per call (the size stays: it lives in the context's parameter block). In
 * JavaScript (@noble/hashes) the mac1 of a handshake message ran in V8's baseline tier — a
 * handshake is too rare for the optimising compiler — and cost about as much as building the
 * rest of the initiation (bench/RESULTS.md, Step 10, the daemon's first ping). null when the
 * provider has no BLAKE2SMAC or refuses the size.
 */
function loadBlake2sMac(l: NonNullable<ReturnType<typeof libcrypto>>): EvpBlake2s['mac'] | null {
  try {
    const fetch = l.func(
      'void *EVP_MAC_fetch(void *ctx, const char *algorithm, const char *properties)',
    ) as (c: null, a: string, p: null) => unknown;
    const ctxNew = l.func('void *EVP_MAC_CTX_new(void *mac)') as (m: unknown) => unknown;
    const setParams = l.func('int EVP_MAC_CTX_set_params(void *ctx, const uint8_t *params)') as (
      c: unknown,
      p: Uint8Array,
    ) => number;
    const init = l.func(
      'int EVP_MAC_init(void *ctx, const uint8_t *key, size_t keylen, void *params)',
    ) as (c: unknown, k: Uint8Array, n: number, p: null) => number;
    const update = l.func('int EVP_MAC_update(void *ctx, const uint8_t *data, size_t datalen)') as (
      c: unknown,
      d: Uint8Array,
      n: number,
    ) => number;
    const final = l.func(
      'int EVP_MAC_final(void *ctx, uint8_t *out, size_t *outl, size_t outsize)',
    ) as (c: unknown, o: Uint8Array, ol: BigUint64Array, n: number) => number;
    const m = fetch(null, 'BLAKE2SMAC', null);
    if (!m) return null;
    const ctx = ctxNew(m);
    if (!ctx) return null;
    // [{ "size", UNSIGNED_INTEGER, &16, 8, unmodified }, END], "size\0", the size_t 16: off
    // V8's heap (allocUnsafeSlow, > 64 bytes), so the addresses inside stay valid; read only
    // by EVP_MAC_CTX_set_params, which copies the size into the context
    const block = Buffer.allocUnsafeSlow(128).fill(0);
    const base =
      (koffi.address(new Uint8Array(block.buffer)) as unknown as bigint) + BigInt(block.byteOffset);
    block.write('size\0', 96, 'latin1');
    block.writeBigUInt64LE(16n, 104);
    block.writeBigUInt64LE(base + 96n, 0);
    block.writeUInt32LE(OSSL_PARAM_UNSIGNED_INTEGER, 8);
    block.writeBigUInt64LE(base + 104n, 16);
    block.writeBigUInt64LE(8n, 24);
    block.writeBigUInt64LE(0xffffffffffffffffn, 32); // OSSL_PARAM_UNMODIFIED
    if (setParams(ctx, block.subarray(0, 2 * OSSL_PARAM_SIZE)) !== 1) return null;
    const outLen = new BigUint64Array(1);
    const fn = (key: Uint8Array, data: Uint8Array): Uint8Array => {
      const out = Buffer.allocUnsafe(16);
      if (
        init(ctx, key, key.length, null) !== 1 ||
        update(ctx, ptr(data), data.length) !== 1 ||
        final(ctx, out, outLen, 16) !== 1 ||
        outLen[0] !== 16n
      )
        throw new Error('BLAKE2SMAC failed');
      return out;
    };
    // a provider that ignored the size would answer 32 bytes: checked once here
    fn(new Uint8Array(32), new Uint8Array(0));
    return fn;
  } catch {
    return null;
  }
}

/** the EVP AEAD, or undefined (no usable OpenSSL in the process, or AWG_AEAD=node) */
export function evpAead(env: NodeJS.ProcessEnv = process.env): EvpAead | undefined {
  if (env.AWG_AEAD === 'node') return undefined;
  if (loaded === undefined) loaded = load();
  return loaded ?? undefined;
}

/** X25519 through EVP_PKEY raw keys, or undefined (no usable OpenSSL in the process, or AWG_X25519=node) */
export function evpX25519(env: NodeJS.ProcessEnv = process.env): EvpX25519 | undefined {
  if (env.AWG_X25519 === 'node') return undefined;
  if (loadedX === undefined) loadedX = loadX25519();
  return loadedX ?? undefined;
}

let lib: ReturnType<typeof koffi.load> | null | undefined;

/**
 * The OpenSSL this Node process already runs on: `koffi.load(null)` resolves symbols in the
 * process's global scope — the OpenSSL statically linked into official Node builds (which
 * exports it for addons), or the shared libcrypto a distribution's Node is linked against.
 * Never a second copy: loading the system's libcrypto.so.3 beside a Node with its own OpenSSL
 * makes the library's internal calls bind to Node's exported copy of another version, and
 * the first EVP call crashes the process (SIGSEGV with Node 22.23 / OpenSSL 3.5 and 24.21 /
 * 3.5.8 on Debian 12's libssl3 3.0; scripts/test.sh runs the native and data-plane tests on
 * official Node 22 and 24 builds, scripts/runtimes.sh). Refused (node:crypto is used) when the
 * process exports no OpenSSL 3, or one that is not the version node:crypto reports.
 */
export function processOpenSsl(): ReturnType<typeof koffi.load> | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (process.platform !== 'linux') return lib;
  try {
    const self = koffi.load(null as unknown as string);
    const versionNum = self.func('unsigned long OpenSSL_version_num(void)') as () =>
      number | bigint;
    const n = BigInt(versionNum());
    // 0xMNN00PP0: major, minor, patch (OpenSSL 3)
    const major = Number((n >> 28n) & 0xfn);
    const minor = Number((n >> 20n) & 0xffn);
    const patch = Number((n >> 4n) & 0xffn);
    const want = /^(\d+)\.(\d+)\.(\d+)/.exec(process.versions.openssl ?? '');
    if (
      major === 3 &&
      want &&
      Number(want[1]) === major &&
      Number(want[2]) === minor &&
      Number(want[3]) === patch
    )
      lib = self;
  } catch {
    lib = null;
  }
  return lib;
}
const libcrypto = processOpenSsl;

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

function loadX25519(): EvpX25519 | null {
  const l = libcrypto();
  if (!l) return null;
  let x: XFns;
  try {
    x = {
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
  } catch {
    return null;
  }
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
      const a = sk.length === 32 ? newPriv(EVP_PKEY_X25519, null, sk, 32) : null;
      if (!a) throw new Error('X25519: not a 32-byte private key');
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
      const a = sk.length === 32 ? newPriv(EVP_PKEY_X25519, null, sk, 32) : null;
      if (!a) throw new Error('X25519: not a 32-byte private key');
      try {
        return rawPublic(a);
      } finally {
        pkeyFree(a);
      }
    },
  };
}

let loadedAddr: { p: AddrFns; type: number } | null | undefined;

/** The transport path's EVP functions with numeric pointers, bound once per thread. */
function addrFns(): { p: AddrFns; type: number } | null {
  if (loadedAddr !== undefined) return loadedAddr;
  loadedAddr = null;
  const l = libcrypto();
  if (!l) return null;
  let p: AddrFns;
  try {
    p = {
      ctxNew: l.func('uintptr_t EVP_CIPHER_CTX_new()'),
      ctxFree: l.func('void EVP_CIPHER_CTX_free(uintptr_t ctx)'),
      cipher: l.func('uintptr_t EVP_chacha20_poly1305()'),
      encInit: l.func(
        'int EVP_EncryptInit_ex(uintptr_t ctx, uintptr_t type, uintptr_t impl, const uint8_t *key, uintptr_t iv)',
      ),
      encUpdate: l.func(
        'void EVP_EncryptUpdate(uintptr_t ctx, uintptr_t out, uintptr_t outl, const uint8_t *in, int inl)',
      ),
      encFinal: l.func('void EVP_EncryptFinal_ex(uintptr_t ctx, uintptr_t out, uintptr_t outl)'),
      decInit: l.func(
        'int EVP_DecryptInit_ex(uintptr_t ctx, uintptr_t type, uintptr_t impl, const uint8_t *key, uintptr_t iv)',
      ),
      decUpdate: l.func(
        'void EVP_DecryptUpdate(uintptr_t ctx, uintptr_t out, uintptr_t outl, const uint8_t *in, int inl)',
      ),
      decFinal: l.func('int EVP_DecryptFinal_ex(uintptr_t ctx, uintptr_t out, uintptr_t outl)'),
      ctrl: l.func('int EVP_CIPHER_CTX_ctrl(uintptr_t ctx, int type, int arg, uintptr_t ptr)'),
    } as unknown as AddrFns;
  } catch {
    return null;
  }
  const type = p.cipher();
  if (!type) return null;
  loadedAddr = { p, type };
  return loadedAddr;
}

/** The address of `b`'s first byte; reading `.buffer` first moves an on-heap array off the heap. */
function addressOfBytes(b: Uint8Array): number {
  return b.buffer.byteLength > 0 ? Number(koffi.address(b) as unknown as bigint) : 0;
}

/**
 * Raw IETF ChaCha20 (no Poly1305) for AmneziaWG 3.x header protection: the keystream of
 * (key, nonce, block counter 0) XORed into place, on one EVP context per key (the key is
 * set once; each call sets the 16-byte IV, u32le counter 0 ‖ nonce). Replaces a
 * `createCipheriv('chacha20')` per packet (≈ 5–7 µs, the 3.1 bench's engine at 1.8–2.4× the
 * anchor's CPU per byte, bench/RESULTS.md Step 14). Undefined where `evpAead()` would be.
 */
export interface EvpChaCha20 {
  /** data[at, at + len) ^= keystream(key, nonce = src[nonceAt, nonceAt + 12))[0, len) */
  xor(
    key: Uint8Array,
    src: Uint8Array,
    nonceAt: number,
    data: Uint8Array,
    at: number,
    len: number,
  ): void;
}

let loadedChaCha: EvpChaCha20 | null | undefined;

export function evpChaCha20(env: NodeJS.ProcessEnv = process.env): EvpChaCha20 | undefined {
  if (env.AWG_AEAD === 'node') return undefined;
  if (loadedChaCha === undefined) loadedChaCha = loadChaCha();
  return loadedChaCha ?? undefined;
}

function loadChaCha(): EvpChaCha20 | null {
  const a = addrFns();
  const l = libcrypto();
  if (!a || !l) return null;
  let cipher: number;
  let update: (ctx: number, out: Uint8Array, outl: number, inp: Uint8Array, inl: number) => void;
  try {
    cipher = (l.func('uintptr_t EVP_chacha20()') as () => number)();
    // in place: the same view in and out
    update = l.func(
      'void EVP_EncryptUpdate(uintptr_t ctx, uint8_t *out, uintptr_t outl, const uint8_t *in, int inl)',
    ) as typeof update;
  } catch {
    return null;
  }
  if (!cipher) return null;
  const { p } = a;
  // iv (16) @0, outl @16
  const mem = Buffer.allocUnsafeSlow(64).fill(0);
  const memAt = addressOfBytes(mem);
  const ctxs = new WeakMap<Uint8Array, number>();
  const freed = new FinalizationRegistry<number>((ctx) => p.ctxFree(ctx));
  const ctxFor = (key: Uint8Array): number => {
    let ctx = ctxs.get(key);
    if (ctx) return ctx;
    ctx = p.ctxNew();
    if (!ctx) throw new Error('EVP_CIPHER_CTX_new failed');
    if (p.encInit(ctx, cipher, 0, key, memAt) !== 1) {
      p.ctxFree(ctx);
      throw new Error('EVP ChaCha20 init failed');
    }
    ctxs.set(key, ctx);
    freed.register(key, ctx);
    return ctx;
  };
  return {
    xor(key, src, nonceAt, data, at, len) {
      if (len <= 0) return;
      if (at < 0 || at + len > data.length || nonceAt < 0 || nonceAt + 12 > src.length)
        throw new RangeError('ChaCha20: range outside the buffer');
      const ctx = ctxFor(key);
      for (let k = 0; k < 12; k++) mem[4 + k] = src[nonceAt + k]!;
      if (p.encInit(ctx, 0, 0, null, memAt) !== 1) throw new Error('EVP ChaCha20 init failed');
      const v = data.subarray(at, at + len);
      update(ctx, v, memAt + 16, v, len);
    },
  };
}

let loadedFns: { f: Fns; type: unknown } | null | undefined;

/** The EVP cipher functions and EVP_chacha20_poly1305(), bound once per thread. */
function aeadFns(): { f: Fns; type: unknown } | null {
  if (loadedFns !== undefined) return loadedFns;
  loadedFns = null;
  const l = libcrypto();
  if (!l) return null;
  let f: Fns;
  try {
    f = {
      ctxNew: l.func('void *EVP_CIPHER_CTX_new()'),
      ctxFree: l.func('void EVP_CIPHER_CTX_free(void *ctx)'),
      cipher: l.func('const void *EVP_chacha20_poly1305()'),
      encInit: l.func(
        'int EVP_EncryptInit_ex(void *ctx, const void *type, void *impl, const uint8_t *key, const uint8_t *iv)',
      ),
      encUpdate: l.func(
        'int EVP_EncryptUpdate(void *ctx, uint8_t *out, int *outl, const uint8_t *in, int inl)',
      ),
      encFinal: l.func('int EVP_EncryptFinal_ex(void *ctx, uint8_t *out, int *outl)'),
      encUpdateV: l.func(
        'void EVP_EncryptUpdate(void *ctx, uint8_t *out, int *outl, const uint8_t *in, int inl)',
      ),
      encFinalV: l.func('void EVP_EncryptFinal_ex(void *ctx, uint8_t *out, int *outl)'),
      decUpdateV: l.func(
        'void EVP_DecryptUpdate(void *ctx, uint8_t *out, int *outl, const uint8_t *in, int inl)',
      ),
      decInit: l.func(
        'int EVP_DecryptInit_ex(void *ctx, const void *type, void *impl, const uint8_t *key, const uint8_t *iv)',
      ),
      decUpdate: l.func(
        'int EVP_DecryptUpdate(void *ctx, uint8_t *out, int *outl, const uint8_t *in, int inl)',
      ),
      decFinal: l.func('int EVP_DecryptFinal_ex(void *ctx, uint8_t *out, int *outl)'),
      ctrl: l.func('int EVP_CIPHER_CTX_ctrl(void *ctx, int type, int arg, uint8_t *ptr)'),
    } as unknown as Fns;
  } catch {
    return null;
  }
  const type = f.cipher();
  if (!type) return null;
  loadedFns = { f, type };
  return loadedFns;
}

/** Per-thread scratch the EVP calls write into. */
interface Scratch {
  outl: Int32Array;
  tag: Uint8Array;
  zeroPad: Uint8Array;
}

function scratch(): Scratch {
  return { outl: new Int32Array(1), tag: new Uint8Array(TAG), zeroPad: new Uint8Array(64 * 1024) };
}

/** `plaintext ‖ zeros(padLength)` sealed on a keyed, nonced context into out at offset; bytes written */
function sealOn(
  f: Fns,
  ctx: unknown,
  s: Scratch,
  plaintext: Uint8Array,
  padLength: number,
  out: Uint8Array,
  offset: number,
): number {
  // libcrypto writes through the pointers: check the room here (a short `out` would be
  // written past its end, a long pad read past the zeros)
  if (
    offset < 0 ||
    offset + plaintext.length + padLength + TAG > out.length ||
    padLength < 0 ||
    padLength > s.zeroPad.length
  )
    throw new RangeError('EVP seal: no room for the sealed message');
  let o = offset;
  if (plaintext.length) {
    f.encUpdateV(ctx, out.subarray(o), s.outl, plaintext, plaintext.length);
    o += s.outl[0]!;
  }
  // pointers are passed whole where the length is an argument, and the tag goes through the
  // scratch: a view per call was ~3 % of the engine's thread (engine-syscalls --user)
  if (padLength) {
    f.encUpdateV(ctx, out.subarray(o), s.outl, s.zeroPad, padLength);
    o += s.outl[0]!;
  }
  f.encFinalV(ctx, s.tag, s.outl);
  if (f.ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, s.tag) !== 1) throw new Error('EVP tag failed');
  for (let k = 0; k < TAG; k++) out[o + k] = s.tag[k]!;
  return o + TAG - offset;
}

/** ciphertext ‖ tag (and optional AD) opened on a keyed, nonced context into out at offset: length or −1 */
function openOn(
  f: Fns,
  ctx: unknown,
  s: Scratch,
  sealed: Uint8Array,
  ad: Uint8Array | null,
  out: Uint8Array,
  offset: number,
): number {
  const n = sealed.length - TAG;
  if (n < 0) return -1; // the callers check it too: the tag is read from sealed[n…]
  for (let k = 0; k < TAG; k++) s.tag[k] = sealed[n + k]!;
  if (f.ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, s.tag) !== 1) return -1;
  if (ad?.length && f.decUpdate(ctx, null as unknown as Uint8Array, s.outl, ad, ad.length) !== 1)
    return -1;
  if (n) f.decUpdateV(ctx, offset ? out.subarray(offset) : out, s.outl, sealed, n);
  return f.decFinal(ctx, s.tag, s.outl) > 0 ? n : -1;
}

/**
 * One ChaCha20-Poly1305 context for a run of transport messages under changing keys (the
 * crypto pool's threads, crypto/pool-jobs.ts): `key` null re-uses the key of the previous
 * call and sets the nonce only; a key re-keys the context (a memcpy for ChaCha20, no
 * allocation). Output byte-identical to `EvpAead.sealInto` / `openInto`. One thread at a
 * time; `free()` cleanses and frees it. Undefined where `evpAead()` would be (no usable
 * OpenSSL, or AWG_AEAD=node).
 */
export interface EvpAeadContext {
  seal(
    key: Uint8Array | null,
    nonce12: Uint8Array,
    plaintext: Uint8Array,
    padLength: number,
    out: Uint8Array,
    offset: number,
  ): number;
  /** the plaintext's length, or −1 when authentication fails */
  open(
    key: Uint8Array | null,
    nonce12: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): number;
  free(): void;
}

export function evpAeadContext(env: NodeJS.ProcessEnv = process.env): EvpAeadContext | undefined {
  if (env.AWG_AEAD === 'node') return undefined;
  const b = aeadFns();
  if (!b) return undefined;
  const { f, type } = b;
  const encCtx = f.ctxNew();
  const decCtx = f.ctxNew();
  if (!encCtx || !decCtx) {
    if (encCtx) f.ctxFree(encCtx);
    if (decCtx) f.ctxFree(decCtx);
    return undefined;
  }
  let encKeyed = false;
  let decKeyed = false;
  const sc = scratch();
  let freed = false;
  return {
    seal(key, nonce12, plaintext, padLength, out, offset) {
      if (!key && !encKeyed) throw new Error('EVP seal: no key yet');
      // the cipher is given once: with it, OpenSSL 3 fetches the implementation again on
      // every init (a lock shared by every thread); a new key alone is a memcpy
      if (f.encInit(encCtx, encKeyed ? null : type, null, key, nonce12) !== 1)
        throw new Error('EVP_EncryptInit_ex failed');
      encKeyed = true;
      return sealOn(f, encCtx, sc, plaintext, padLength, out, offset);
    },
    open(key, nonce12, sealed, out, offset) {
      if (sealed.length < TAG) return -1;
      if (offset < 0 || offset + sealed.length - TAG > out.length)
        throw new RangeError('EVP open: no room for the plaintext');
      if (!key && !decKeyed) throw new Error('EVP open: no key yet');
      if (f.decInit(decCtx, decKeyed ? null : type, null, key, nonce12) !== 1) return -1;
      decKeyed = true;
      return openOn(f, decCtx, sc, sealed, null, out, offset);
    },
    free() {
      if (freed) return;
      freed = true;
      f.ctxFree(encCtx);
      f.ctxFree(decCtx);
    },
  };
}

function load(): EvpAead | null {
  const b = aeadFns();
  const a = addrFns();
  if (!b || !a) return null;
  const { f, type } = b;
  const { p } = a;
  const sc = scratch();
  const outl = sc.outl;
  const zeroNonce = new Uint8Array(12);
  // the transport path's scratch, by address: nonce @0, tag @16, outl @32
  const mem = Buffer.allocUnsafeSlow(64);
  const memAt = addressOfBytes(mem);
  const NONCE_AT = 0;
  const TAG_AT = 16;
  const OUTL_AT = 32;
  const setNonce = (nonce12: Uint8Array) => {
    for (let k = 0; k < 12; k++) mem[NONCE_AT + k] = nonce12[k]!;
  };
  // the last output buffer and its address (a device passes the same slab every time)
  let lastOut: Uint8Array | null = null;
  let lastOutAt = 0;
  const outAt = (out: Uint8Array): number => {
    if (out !== lastOut) {
      lastOut = out;
      lastOutAt = addressOfBytes(out);
    }
    return lastOutAt;
  };
  const enc = new WeakMap<Uint8Array, number>();
  const dec = new WeakMap<Uint8Array, number>();
  const freed = new FinalizationRegistry<number>((ctx) => p.ctxFree(ctx));
  const ctxFor = (
    cache: WeakMap<Uint8Array, number>,
    key: Uint8Array,
    encrypt: boolean,
  ): number => {
    let ctx = cache.get(key);
    if (ctx) return ctx;
    ctx = p.ctxNew();
    if (!ctx) throw new Error('EVP_CIPHER_CTX_new failed');
    setNonce(zeroNonce);
    const ok = encrypt
      ? p.encInit(ctx, a.type, 0, key, memAt + NONCE_AT)
      : p.decInit(ctx, a.type, 0, key, memAt + NONCE_AT);
    if (ok !== 1) {
      p.ctxFree(ctx);
      throw new Error('EVP cipher init failed');
    }
    cache.set(key, ctx);
    freed.register(key, ctx);
    return ctx;
  };
  function openInto(
    key: Uint8Array,
    nonce12: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): number {
    const n = sealed.length - TAG;
    if (n < 0) return -1;
    if (offset < 0 || offset + n > out.length)
      throw new RangeError('EVP open: no room for the plaintext');
    const ctx = ctxFor(dec, key, false);
    setNonce(nonce12);
    if (p.decInit(ctx, 0, 0, null, memAt + NONCE_AT) !== 1) return -1;
    for (let k = 0; k < TAG; k++) mem[TAG_AT + k] = sealed[n + k]!;
    if (p.ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, memAt + TAG_AT) !== 1) return -1;
    if (n) p.decUpdate(ctx, outAt(out) + offset, memAt + OUTL_AT, sealed, n);
    return p.decFinal(ctx, memAt + TAG_AT, memAt + OUTL_AT) > 0 ? n : -1;
  }
  // the handshake's one-off keys: one context each way, re-keyed per call
  let encOnce: unknown = null;
  let decOnce: unknown = null;
  const once = (encrypt: boolean, key: Uint8Array, nonce12: Uint8Array): unknown => {
    let ctx = encrypt ? encOnce : decOnce;
    if (!ctx) {
      ctx = f.ctxNew();
      if (!ctx) throw new Error('EVP_CIPHER_CTX_new failed');
      if (encrypt) encOnce = ctx;
      else decOnce = ctx;
    }
    const ok = encrypt
      ? f.encInit(ctx, type, null, key, nonce12)
      : f.decInit(ctx, type, null, key, nonce12);
    if (ok !== 1) throw new Error('EVP cipher init failed');
    return ctx;
  };
  return {
    sealAd(key, nonce12, plaintext, ad) {
      const ctx = once(true, key, nonce12);
      if (ad.length && f.encUpdate(ctx, null as unknown as Uint8Array, outl, ad, ad.length) !== 1)
        throw new Error('EVP AAD failed');
      const out = Buffer.allocUnsafe(plaintext.length + TAG);
      if (plaintext.length) f.encUpdate(ctx, out, outl, plaintext, plaintext.length);
      f.encFinal(ctx, sc.tag, outl);
      if (f.ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, out.subarray(plaintext.length)) !== 1)
        throw new Error('EVP tag failed');
      return out;
    },
    openAd(key, nonce12, sealed, ad) {
      if (sealed.length < TAG) return null;
      const pt = Buffer.allocUnsafe(sealed.length - TAG);
      return openOn(f, once(false, key, nonce12), sc, sealed, ad, pt, 0) < 0 ? null : pt;
    },
    sealInto(key, nonce12, plaintext, padLength, out, offset) {
      // libcrypto writes through the pointers: check the room here (a short `out` would be
      // written past its end, a long pad read past the zeros)
      const n = plaintext.length;
      if (
        offset < 0 ||
        offset + n + padLength + TAG > out.length ||
        padLength < 0 ||
        padLength > sc.zeroPad.length
      )
        throw new RangeError('EVP seal: no room for the sealed message');
      const ctx = ctxFor(enc, key, true);
      setNonce(nonce12);
      if (p.encInit(ctx, 0, 0, null, memAt + NONCE_AT) !== 1)
        throw new Error('EVP_EncryptInit_ex failed');
      const at = outAt(out) + offset;
      if (n) p.encUpdate(ctx, at, memAt + OUTL_AT, plaintext, n);
      if (padLength) p.encUpdate(ctx, at + n, memAt + OUTL_AT, sc.zeroPad, padLength);
      p.encFinal(ctx, memAt + TAG_AT, memAt + OUTL_AT);
      // the tag straight into place
      if (p.ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG, at + n + padLength) !== 1)
        throw new Error('EVP tag failed');
      return n + padLength + TAG;
    },
    open(key, nonce12, sealed) {
      if (sealed.length < TAG) return null;
      const pt = Buffer.allocUnsafe(sealed.length - TAG);
      return openInto(key, nonce12, sealed, pt, 0) < 0 ? null : pt;
    },
    openInto,
  };
}
