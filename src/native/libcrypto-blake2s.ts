/**
 * BLAKE2s through libcrypto for the handshake's hashing (src/dataplane/crypto/blake2s.ts):
 * one-shot EVP_Digest and HMAC with the digest fetched once, and keyed BLAKE2s with a 16-byte
 * output (WireGuard's MAC) through OpenSSL 3's BLAKE2SMAC on one reused context.
 */
import koffi from 'koffi';
import { type Lib, bindOnce, unlessNode } from './libcrypto.js';

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

// an empty buffer reaches C as NULL, which HMAC refuses for a key: point at a byte, length 0
const nonNull = new Uint8Array(1);
const ptr = (b: Uint8Array): Uint8Array => (b.length ? b : nonNull);

/**
 * BLAKE2s through libcrypto's one-shot EVP_Digest / HMAC with a digest fetched once, or
 * undefined (no usable OpenSSL in the process, or AWG_BLAKE2=node). node:crypto's createHash /
 * createHmac build an object and fetch the digest per call, about twenty times a handshake,
 * which is slow when cold, as after an idle while. Measurements: bench/RESULTS.md, section
 * "Step 10 (continued, evening of 2026-11-23)", paragraph "First ping, taken apart again".
 */
const blake2s = bindOnce((l): EvpBlake2s | null => {
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
  const keyedHmac = loadHmac(l);
  return {
    ...(mac ? { mac } : {}),
    hash(data) {
      const out = Buffer.allocUnsafe(32);
      if (digest(ptr(data), data.length, out, size, md, null) !== 1 || size[0] !== 32)
        throw new Error('EVP_Digest(BLAKE2S-256) failed');
      return out;
    },
    hmac(key, data) {
      if (keyedHmac) return keyedHmac(key, data);
      const out = Buffer.allocUnsafe(32);
      if (!hmac(md, ptr(key), key.length, ptr(data), data.length, out, size) || size[0] !== 32)
        throw new Error('HMAC(BLAKE2S-256) failed');
      return out;
    },
  };
});

/** BLAKE2s one-shot, HMAC and MAC through libcrypto, or undefined (see `blake2s` above) */
export const evpBlake2s = unlessNode('AWG_BLAKE2', blake2s);

/** OSSL_PARAM: key, data_type (+4 padding), data, data_size, return_size (LP64) */
const OSSL_PARAM_SIZE = 40;
const OSSL_PARAM_UNSIGNED_INTEGER = 2;
const OSSL_PARAM_UTF8_STRING = 4;

/**
 * One OSSL_PARAM and its END in a block off V8's heap (allocUnsafeSlow, > 64 bytes), so the
 * addresses inside stay valid: `{ name, type, &value, size, unmodified }`, the name at 96,
 * the value at 112. Read only by EVP_MAC_CTX_set_params, which copies what it needs.
 */
export function paramBlock(name: string, type: number, value: Buffer): Buffer {
  const block = Buffer.allocUnsafeSlow(160).fill(0);
  const base =
    (koffi.address(new Uint8Array(block.buffer)) as unknown as bigint) + BigInt(block.byteOffset);
  block.write(`${name}\0`, 96, 'latin1');
  value.copy(block, 112);
  block.writeBigUInt64LE(base + 96n, 0);
  block.writeUInt32LE(type, 8);
  block.writeBigUInt64LE(base + 112n, 16);
  block.writeBigUInt64LE(
    BigInt(type === OSSL_PARAM_UTF8_STRING ? value.length - 1 : value.length),
    24,
  );
  block.writeBigUInt64LE(0xffffffffffffffffn, 32); // OSSL_PARAM_UNMODIFIED
  return block.subarray(0, 2 * OSSL_PARAM_SIZE);
}

interface MacCalls {
  ctx: unknown;
  init: (c: unknown, k: Uint8Array, n: number, p: null) => number;
  update: (c: unknown, d: Uint8Array, n: number) => number;
  final: (c: unknown, o: Uint8Array, ol: BigUint64Array, n: number) => number;
}

/** A context of EVP_MAC `name` with `params` set once, and the calls that re-key and run it. */
function macContext(l: Lib, name: string, params: Buffer): MacCalls | null {
  const fetch = l.func(
    'void *EVP_MAC_fetch(void *ctx, const char *algorithm, const char *properties)',
  ) as (c: null, a: string, p: null) => unknown;
  const ctxNew = l.func('void *EVP_MAC_CTX_new(void *mac)') as (m: unknown) => unknown;
  const setParams = l.func('int EVP_MAC_CTX_set_params(void *ctx, const uint8_t *params)') as (
    c: unknown,
    p: Uint8Array,
  ) => number;
  const m = fetch(null, name, null);
  if (!m) return null;
  const ctx = ctxNew(m);
  if (!ctx || setParams(ctx, params) !== 1) return null;
  return {
    ctx,
    init: l.func(
      'int EVP_MAC_init(void *ctx, const uint8_t *key, size_t keylen, void *params)',
    ) as MacCalls['init'],
    update: l.func(
      'int EVP_MAC_update(void *ctx, const uint8_t *data, size_t datalen)',
    ) as MacCalls['update'],
    final: l.func(
      'int EVP_MAC_final(void *ctx, uint8_t *out, size_t *outl, size_t outsize)',
    ) as MacCalls['final'],
  };
}

/**
 * HMAC-BLAKE2s on one EVP_MAC context whose digest is set once, re-keyed by EVP_MAC_init per
 * call. OpenSSL 3's one-shot HMAC() fetches the HMAC implementation and the digest by name,
 * and makes and frees a context, every call (EVP_Q_mac: name-map lookups under a lock), about
 * twenty times a handshake: a visible share of a first ping's path (bench/RESULTS.md, Step 24).
 * null when the provider refuses (the one-shot stays).
 */
function loadHmac(l: Lib): ((key: Uint8Array, data: Uint8Array) => Buffer) | null {
  try {
    const c = macContext(
      l,
      'HMAC',
      paramBlock('digest', OSSL_PARAM_UTF8_STRING, Buffer.from('BLAKE2S-256\0', 'latin1')),
    );
    if (!c) return null;
    const outLen = new BigUint64Array(1);
    const { ctx, init, update, final } = c;
    return (key, data) => {
      const out = Buffer.allocUnsafe(32);
      if (
        init(ctx, ptr(key), key.length, null) !== 1 ||
        update(ctx, ptr(data), data.length) !== 1 ||
        final(ctx, out, outLen, 32) !== 1 ||
        outLen[0] !== 32n
      )
        throw new Error('HMAC(BLAKE2S-256) failed');
      return out;
    };
  } catch {
    return null;
  }
}

/**
 * BLAKE2SMAC (keyed BLAKE2s) with its output size set to 16 once on one context, re-keyed by
 * EVP_MAC_init per call (the size stays: it lives in the context's parameter block). In
 * JavaScript (@noble/hashes) the mac1 of a handshake message ran in V8's baseline tier — a
 * handshake is too rare for the optimising compiler — and cost about as much as building the
 * rest of the initiation. null when the provider has no BLAKE2SMAC or refuses the size.
 */
function loadBlake2sMac(l: Lib): EvpBlake2s['mac'] | null {
  try {
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(16n);
    const c = macContext(l, 'BLAKE2SMAC', paramBlock('size', OSSL_PARAM_UNSIGNED_INTEGER, size));
    if (!c) return null;
    const { ctx, init, update, final } = c;
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
