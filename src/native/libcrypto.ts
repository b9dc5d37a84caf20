/**
 * libcrypto (OpenSSL 3) through koffi, where node:crypto's per-call setup dominates. This file
 * finds the library (`processOpenSsl`) and holds what every binding over it shares: functions
 * declared once per thread (`bindOnce`), the off switches, and addresses of byte arrays. The
 * bindings, each used by src/dataplane/crypto:
 * - libcrypto-aead.ts: ChaCha20-Poly1305 for the transport hot path, one cipher context per
 *   key, set up once and re-keyed per packet with the nonce only (`evpAead`); raw ChaCha20 for
 *   AmneziaWG's header protection (`evpChaCha20`);
 * - libcrypto-batch.ts: one context for runs of messages under changing keys (the crypto
 *   pool's threads, `evpAeadContext`);
 * - libcrypto-x25519.ts: X25519 from raw 32-byte keys (`evpX25519`);
 * - libcrypto-blake2s.ts: BLAKE2s hashing, HMAC and BLAKE2SMAC (`evpBlake2s`);
 * - libcrypto-cipher.ts: the EVP cipher functions those share.
 *
 * Why: node:crypto builds a new object per call (`createCipheriv`: a key schedule, a JS
 * wrapper, allocations; a raw X25519 key only as a DER document to decode), and that setup
 * costs more than the work itself (encrypting 1420 bytes, one DH). Measurements:
 * bench/RESULTS.md, section "Step 10 (started)".
 *
 * Contract:
 * - Each `evp…()` is undefined when the process exports no usable OpenSSL 3 (processOpenSsl),
 *   or when its off switch (AWG_AEAD, AWG_X25519, AWG_BLAKE2 = node; for diagnosis) is set;
 *   callers then use node:crypto.
 * - Output is byte-identical to node:crypto's (tested); an authentication failure returns
 *   null (or −1), as openWithNonce does.
 * - Single-threaded: a binding and its contexts are used by one call at a time; every thread
 *   binds its own.
 */
import koffi from 'koffi';

/** The process's libcrypto, as koffi loaded it. */
export type Lib = ReturnType<typeof koffi.load>;

let lib: Lib | null | undefined;

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
export function processOpenSsl(): Lib | null {
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

/**
 * A binding made once per thread, on first use: `bind` declares its functions on the process's
 * OpenSSL and builds what callers use. null for good when there is no usable OpenSSL, a symbol
 * is missing (koffi throws) or `bind` returns null.
 */
export function bindOnce<T>(bind: (l: Lib) => T | null): () => T | null {
  let bound: T | null | undefined;
  return () => {
    if (bound !== undefined) return bound;
    bound = null;
    const l = processOpenSsl();
    if (!l) return null;
    try {
      bound = bind(l);
    } catch {
      bound = null;
    }
    return bound;
  };
}

/**
 * A binding behind its off switch: undefined when `env[name]` is `node` (diagnosis), else what
 * `get` gives (undefined for null).
 */
export function unlessNode<T>(
  name: string,
  get: () => T | null,
): (env?: NodeJS.ProcessEnv) => T | undefined {
  return (env = process.env) => (env[name] === 'node' ? undefined : (get() ?? undefined));
}

/** The address of `b`'s first byte; reading `.buffer` first moves an on-heap array off the heap. */
export function addressOfBytes(b: Uint8Array): number {
  return b.buffer.byteLength > 0 ? Number(koffi.address(b) as unknown as bigint) : 0;
}
