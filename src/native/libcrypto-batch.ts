/**
 * The batch helper of the crypto pool (src/dataplane/crypto/pool-jobs.ts): one
 * ChaCha20-Poly1305 context per direction for a run of transport messages under changing keys,
 * on the EVP functions of libcrypto-cipher.ts. Every pool thread makes its own.
 */
import { TAG, aeadFns, openOn, scratch, sealOn } from './libcrypto-cipher.js';

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
