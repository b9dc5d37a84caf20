/**
 * The EVP cipher functions the ChaCha20-Poly1305 bindings share (libcrypto-aead.ts,
 * libcrypto-batch.ts), declared twice: with pointers as buffers (`aeadFns`: the handshake's
 * one-off keys, the pool's contexts) and with pointers as numbers (`addrFns`: the transport
 * path, whose memory is ours and whose addresses are known). Also the contexts kept per key,
 * and sealing and opening on a context already keyed (`sealOn`, `openOn`).
 *
 * Numbers are the cheapest pointers koffi takes, then Buffers, then a fresh view per call (four
 * or five calls per packet): the transport path passes its contexts, its scratch and its
 * output buffer by address. Only off-heap memory is addressed: reading `.buffer` of a typed
 * array moves an on-heap one off the heap for good, and the scratch is a Buffer of its own.
 * Contexts are cached per key buffer (WeakMap; the keypair's key buffers keep their identity
 * for the keypair's life) and freed (EVP_CIPHER_CTX_free, which cleanses them) when the key
 * buffer is collected.
 */
import { bindOnce } from './libcrypto.js';

export const EVP_CTRL_AEAD_GET_TAG = 0x10;
export const EVP_CTRL_AEAD_SET_TAG = 0x11;
export const TAG = 16;

export interface Fns {
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
   * (koffi then makes no JS number for it, which makes a seal measurably faster)
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
export interface AddrFns {
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
  /**
   * EVP_DecryptInit_ex2 (OpenSSL 3): the nonce and the expected tag in one call (the tag as an
   * OSSL_PARAM array), instead of an init and a ctrl; null where the library has no such export
   */
  decInit2: ((ctx: number, type: number, key: number, iv: number, params: number) => number) | null;
}

/** The EVP cipher functions and EVP_chacha20_poly1305(), bound once per thread. */
export const aeadFns = bindOnce((l): { f: Fns; type: unknown } | null => {
  const f = {
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
  const type = f.cipher();
  return type ? { f, type } : null;
});

/** The transport path's EVP functions with numeric pointers, bound once per thread. */
export const addrFns = bindOnce((l): { p: AddrFns; type: number } | null => {
  const p = {
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
    decInit2: optional(() =>
      l.func(
        'int EVP_DecryptInit_ex2(uintptr_t ctx, uintptr_t type, uintptr_t key, uintptr_t iv, uintptr_t params)',
      ),
    ),
  } as unknown as AddrFns;
  const type = p.cipher();
  return type ? { p, type } : null;
});

/** A function the library may lack (OpenSSL 1.1 has no *_ex2), or null. */
function optional<T>(bind: () => T): T | null {
  try {
    return bind();
  } catch {
    return null;
  }
}

/**
 * Cipher contexts, one per key buffer: made on a key's first use (`init` keys a new context;
 * 1 on success, else `failed` is thrown) and freed (EVP_CIPHER_CTX_free, which cleanses them)
 * when the key buffer is collected. The transport path calls the returned function per packet.
 */
export function contextPerKey(
  p: AddrFns,
  init: (ctx: number, key: Uint8Array) => number,
  failed: string,
): (key: Uint8Array) => number {
  const ctxs = new WeakMap<Uint8Array, number>();
  const freed = new FinalizationRegistry<number>((ctx) => p.ctxFree(ctx));
  return (key) => {
    let ctx = ctxs.get(key);
    if (ctx) return ctx;
    ctx = p.ctxNew();
    if (!ctx) throw new Error('EVP_CIPHER_CTX_new failed');
    if (init(ctx, key) !== 1) {
      p.ctxFree(ctx);
      throw new Error(failed);
    }
    ctxs.set(key, ctx);
    freed.register(key, ctx);
    return ctx;
  };
}

/**
 * Throws unless `plaintext ‖ zeros(padLength)` sealed (n + padLength + TAG bytes) fits `out`
 * from `offset` and the pad fits the zeros: libcrypto writes through the pointers (a short
 * `out` would be written past its end, a long pad read past the zeros).
 */
export function checkSealRoom(
  offset: number,
  n: number,
  padLength: number,
  outLength: number,
  zeros: number,
): void {
  if (offset < 0 || offset + n + padLength + TAG > outLength || padLength < 0 || padLength > zeros)
    throw new RangeError('EVP seal: no room for the sealed message');
}

/** Per-thread scratch the EVP calls write into. */
export interface Scratch {
  outl: Int32Array;
  tag: Uint8Array;
  zeroPad: Uint8Array;
}

export function scratch(): Scratch {
  return { outl: new Int32Array(1), tag: new Uint8Array(TAG), zeroPad: new Uint8Array(64 * 1024) };
}

/** `plaintext ‖ zeros(padLength)` sealed on a keyed, nonced context into out at offset; bytes written */
export function sealOn(
  f: Fns,
  ctx: unknown,
  s: Scratch,
  plaintext: Uint8Array,
  padLength: number,
  out: Uint8Array,
  offset: number,
): number {
  checkSealRoom(offset, plaintext.length, padLength, out.length, s.zeroPad.length);
  let o = offset;
  if (plaintext.length) {
    f.encUpdateV(ctx, out.subarray(o), s.outl, plaintext, plaintext.length);
    o += s.outl[0]!;
  }
  // pointers are passed whole where the length is an argument, and the tag goes through the
  // scratch: a fresh view per call was a visible share of the engine's thread (engine-syscalls --user)
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
export function openOn(
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
