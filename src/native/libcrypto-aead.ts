/**
 * ChaCha20-Poly1305 and raw ChaCha20 through libcrypto's EVP (the bindings of
 * libcrypto-cipher.ts), for src/dataplane/crypto/aead.ts:
 * - `evpAead`: the transport hot path, with one cipher context per key, set up once and
 *   re-keyed per packet with the nonce only (`sealInto`, `openInto`), and the handshake's
 *   one-off keys with associated data (`sealAd`, `openAd`);
 * - `evpChaCha20`: the raw keystream for AmneziaWG 3.x header protection.
 *
 * The transport path calls libcrypto with addresses as numbers (uintptr_t) wherever it can:
 * its contexts, its scratch, and the output buffer, whose address is kept while the same buffer
 * (a device's slab) is passed again.
 */
import {
  EVP_CTRL_AEAD_GET_TAG,
  EVP_CTRL_AEAD_SET_TAG,
  TAG,
  addrFns,
  aeadFns,
  checkSealRoom,
  contextPerKey,
  openOn,
  scratch,
} from './libcrypto-cipher.js';
import { addressOfBytes, bindOnce, unlessNode } from './libcrypto.js';

/** OpenSSL's OSSL_PARAM data type of a byte string, and the "not yet set" return size */
const OSSL_PARAM_OCTET_STRING = 5;
const OSSL_PARAM_UNMODIFIED = 0xffffffffffffffffn;

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
   * `sealInto` and `openInto` with WireGuard's nonce (4 zero bytes ‖ u64le `counter`, < 2^53)
   * written straight into the cipher's scratch: the transport path's calls
   */
  sealCounter(
    key: Uint8Array,
    counter: number,
    plaintext: Uint8Array,
    padLength: number,
    out: Uint8Array,
    offset: number,
  ): number;
  openCounter(
    key: Uint8Array,
    counter: number,
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

const aead = bindOnce((): EvpAead | null => {
  const b = aeadFns();
  const a = addrFns();
  if (!b || !a) return null;
  const { f, type } = b;
  const { p } = a;
  const sc = scratch();
  const outl = sc.outl;
  // the transport path's scratch, by address: nonce @0, tag @16, outl @32, "tag\0" @40, and
  // @48 the OSSL_PARAM array { "tag", OCTET_STRING, @16, 16 }, END that gives
  // EVP_DecryptInit_ex2 the expected tag with the nonce (one call where an init and a ctrl were)
  const mem = Buffer.allocUnsafeSlow(160).fill(0);
  const memAt = addressOfBytes(mem);
  const NONCE_AT = 0;
  const TAG_AT = 16;
  const OUTL_AT = 32;
  const PARAMS_AT = 48;
  mem.write('tag\0', 40, 'latin1');
  mem.writeBigUInt64LE(BigInt(memAt + 40), PARAMS_AT); // key
  mem.writeUInt32LE(OSSL_PARAM_OCTET_STRING, PARAMS_AT + 8); // data_type
  mem.writeBigUInt64LE(BigInt(memAt + TAG_AT), PARAMS_AT + 16); // data
  mem.writeBigUInt64LE(BigInt(TAG), PARAMS_AT + 24); // data_size
  mem.writeBigUInt64LE(OSSL_PARAM_UNMODIFIED, PARAMS_AT + 32); // return_size
  // PARAMS_AT + 40…80: the END entry, zeros; @128 a zero nonce, never written (a new key's
  // context is keyed with it, so a nonce already set for the message is left alone)
  const ZERO_AT = 128;
  const init2 = p.decInit2;
  const setNonce = (nonce12: Uint8Array) => {
    for (let k = 0; k < 12; k++) mem[NONCE_AT + k] = nonce12[k]!;
  };
  // WireGuard's nonce: 4 zero bytes, the counter as u64le (no nonce buffer written and copied)
  const setCounter = (counter: number) => {
    const lo = counter >>> 0;
    const hi = (counter - lo) / 0x1_0000_0000;
    mem[NONCE_AT] = 0;
    mem[NONCE_AT + 1] = 0;
    mem[NONCE_AT + 2] = 0;
    mem[NONCE_AT + 3] = 0;
    mem[NONCE_AT + 4] = lo & 0xff;
    mem[NONCE_AT + 5] = (lo >>> 8) & 0xff;
    mem[NONCE_AT + 6] = (lo >>> 16) & 0xff;
    mem[NONCE_AT + 7] = lo >>> 24;
    mem[NONCE_AT + 8] = hi & 0xff;
    mem[NONCE_AT + 9] = (hi >>> 8) & 0xff;
    mem[NONCE_AT + 10] = (hi >>> 16) & 0xff;
    mem[NONCE_AT + 11] = hi >>> 24;
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
  // a context per key and direction, keyed once with a zero nonce
  const encFor = contextPerKey(
    p,
    (ctx, key) => p.encInit(ctx, a.type, 0, key, memAt + ZERO_AT),
    'EVP cipher init failed',
  );
  const decFor = contextPerKey(
    p,
    (ctx, key) => p.decInit(ctx, a.type, 0, key, memAt + ZERO_AT),
    'EVP cipher init failed',
  );
  function openInto(
    key: Uint8Array,
    nonce12: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): number {
    if (sealed.length < TAG) return -1;
    setNonce(nonce12);
    return openNonced(key, sealed, out, offset);
  }
  /** openInto once the nonce is in the scratch (which a new key's context leaves alone) */
  function openNonced(key: Uint8Array, sealed: Uint8Array, out: Uint8Array, offset: number) {
    const n = sealed.length - TAG;
    if (n < 0) return -1;
    if (offset < 0 || offset + n > out.length)
      throw new RangeError('EVP open: no room for the plaintext');
    const ctx = decFor(key);
    for (let k = 0; k < TAG; k++) mem[TAG_AT + k] = sealed[n + k]!;
    if (init2) {
      if (init2(ctx, 0, 0, memAt + NONCE_AT, memAt + PARAMS_AT) !== 1) return -1;
    } else {
      if (p.decInit(ctx, 0, 0, null, memAt + NONCE_AT) !== 1) return -1;
      if (p.ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG, memAt + TAG_AT) !== 1) return -1;
    }
    if (n) p.decUpdate(ctx, outAt(out) + offset, memAt + OUTL_AT, sealed, n);
    return p.decFinal(ctx, memAt + TAG_AT, memAt + OUTL_AT) > 0 ? n : -1;
  }
  // the handshake's one-off keys: one context each way, re-keyed per call
  let encOnce: unknown = null;
  let decOnce: unknown = null;
  const once = (encrypt: boolean, key: Uint8Array, nonce12: Uint8Array): unknown => {
    let ctx = encrypt ? encOnce : decOnce;
    // the cipher only when the context is new; after that key and nonce alone, as the
    // transport path re-keys its contexts: `EVP_chacha20_poly1305()` is a legacy cipher, and
    // an init that passes it fetches the provider's implementation by name and rebuilds the
    // context's state each time (two of these per first ping, on its path)
    let cipher: unknown = null;
    if (!ctx) {
      ctx = f.ctxNew();
      if (!ctx) throw new Error('EVP_CIPHER_CTX_new failed');
      cipher = type;
    }
    const ok = encrypt
      ? f.encInit(ctx, cipher, null, key, nonce12)
      : f.decInit(ctx, cipher, null, key, nonce12);
    if (ok !== 1) {
      // a context whose first init failed is not kept: the next call starts with the cipher
      if (cipher) f.ctxFree(ctx);
      throw new Error('EVP cipher init failed');
    }
    if (encrypt) encOnce = ctx;
    else decOnce = ctx;
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
      setNonce(nonce12);
      return sealNonced(key, plaintext, padLength, out, offset);
    },
    sealCounter(key, counter, plaintext, padLength, out, offset) {
      setCounter(counter);
      return sealNonced(key, plaintext, padLength, out, offset);
    },
    openCounter(key, counter, sealed, out, offset) {
      setCounter(counter);
      return openNonced(key, sealed, out, offset);
    },
    open(key, nonce12, sealed) {
      if (sealed.length < TAG) return null;
      const pt = Buffer.allocUnsafe(sealed.length - TAG);
      return openInto(key, nonce12, sealed, pt, 0) < 0 ? null : pt;
    },
    openInto,
  };
  /** sealInto once the nonce is in the scratch (which a new key's context leaves alone) */
  function sealNonced(
    key: Uint8Array,
    plaintext: Uint8Array,
    padLength: number,
    out: Uint8Array,
    offset: number,
  ): number {
    const n = plaintext.length;
    checkSealRoom(offset, n, padLength, out.length, sc.zeroPad.length);
    const ctx = encFor(key);
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
  }
});

/** the EVP AEAD, or undefined (no usable OpenSSL in the process, or AWG_AEAD=node) */
export const evpAead = unlessNode('AWG_AEAD', aead);

/**
 * Raw IETF ChaCha20 (no Poly1305) for AmneziaWG 3.x header protection: the keystream of
 * (key, nonce, block counter 0) XORed into place, on one EVP context per key (the key is
 * set once; each call sets the 16-byte IV, u32le counter 0 ‖ nonce). Replaces a
 * `createCipheriv('chacha20')` per packet, whose setup cost more than the XOR of a header.
 * Undefined where `evpAead()` would be.
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

const chacha20 = bindOnce((l): EvpChaCha20 | null => {
  const a = addrFns();
  if (!a) return null;
  const cipher = (l.func('uintptr_t EVP_chacha20()') as () => number)();
  // in place: the same view in and out
  const update = l.func(
    'void EVP_EncryptUpdate(uintptr_t ctx, uint8_t *out, uintptr_t outl, const uint8_t *in, int inl)',
  ) as (ctx: number, out: Uint8Array, outl: number, inp: Uint8Array, inl: number) => void;
  if (!cipher) return null;
  const { p } = a;
  // iv (16) @0, outl @16
  const mem = Buffer.allocUnsafeSlow(64).fill(0);
  const memAt = addressOfBytes(mem);
  const ctxFor = contextPerKey(
    p,
    (ctx, key) => p.encInit(ctx, cipher, 0, key, memAt),
    'EVP ChaCha20 init failed',
  );
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
});

/** Raw ChaCha20 through EVP, or undefined (no usable OpenSSL in the process, or AWG_AEAD=node) */
export const evpChaCha20 = unlessNode('AWG_AEAD', chacha20);
