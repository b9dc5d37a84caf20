/**
 * libcrypto through koffi (src/native/libcrypto*.ts). The EVP transport AEAD
 * (native/libcrypto-aead.ts) against node:crypto's ChaCha20-Poly1305: the same
 * bytes for random packets, padding and empty keepalives; a tampered ciphertext or tag, or
 * the wrong key, is refused; contexts are per key; AWG_AEAD=node switches it off.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
} from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evpAead, evpChaCha20 } from '../../../src/native/libcrypto-aead.js';
import { evpBlake2s } from '../../../src/native/libcrypto-blake2s.js';
import { evpX25519, publicImporter } from '../../../src/native/libcrypto-x25519.js';
import { blake2s } from '@noble/hashes/blake2.js';

const evp = evpAead({});

function nodeSeal(key: Uint8Array, nonce: Uint8Array, pt: Uint8Array, pad: number): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  return Buffer.concat([
    c.update(Buffer.concat([pt, Buffer.alloc(pad)])),
    c.final(),
    c.getAuthTag(),
  ]);
}

function nodeOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Buffer {
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
}

describe.skipIf(!evp)('EVP ChaCha20-Poly1305 (libcrypto, reused contexts)', () => {
  it('seals the same bytes as node:crypto (random packets, padding, empty keepalives), at an offset, and opens them', () => {
    const keys = [randomBytes(32), randomBytes(32)];
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 1500 }),
        fc.integer({ min: 0, max: 15 }),
        fc.nat(),
        fc.nat({ max: 1 }),
        fc.nat({ max: 7 }),
        (pt, pad, counter, k, offset) => {
          const key = keys[k]!;
          const nonce = Buffer.alloc(12);
          nonce.writeUInt32LE(counter, 4);
          const out = Buffer.alloc(offset + pt.length + pad + 16);
          const n = evp!.sealInto(key, nonce, pt, pad, out, offset);
          const want = nodeSeal(key, nonce, pt, pad);
          expect(n).toBe(want.length);
          expect(out.subarray(offset).equals(want)).toBe(true);
          expect(evp!.open(key, nonce, want)!.equals(Buffer.concat([pt, Buffer.alloc(pad)]))).toBe(
            true,
          );
          expect(nodeOpen(key, nonce, out.subarray(offset)).length).toBe(pt.length + pad);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a flipped ciphertext or tag bit, the wrong key or nonce, and a message shorter than a tag', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const sealed = nodeSeal(key, nonce, randomBytes(100), 0);
    expect(evp!.open(key, nonce, sealed)).not.toBeNull();
    for (const i of [0, 50, 99, 100, 115]) {
      const bad = Buffer.from(sealed);
      bad[i]! ^= 1;
      expect(evp!.open(key, nonce, bad)).toBeNull();
    }
    expect(evp!.open(randomBytes(32), nonce, sealed)).toBeNull();
    expect(evp!.open(key, randomBytes(12), sealed)).toBeNull();
    expect(evp!.open(key, nonce, sealed.subarray(0, 15))).toBeNull();
    // a failure leaves the context usable
    expect(evp!.open(key, nonce, sealed)).not.toBeNull();
  });

  it('opens into a slab at an offset; -1 for a tampered message; refuses to write past the end', () => {
    const key = randomBytes(32);
    const slab = Buffer.alloc(4096, 0xaa);
    let at = 0;
    for (const len of [0, 1, 100, 1420]) {
      const nonce = randomBytes(12);
      const pt = randomBytes(len);
      const sealed = nodeSeal(key, nonce, pt, 0);
      expect(evp!.openInto(key, nonce, sealed, slab, at)).toBe(len);
      expect(slab.subarray(at, at + len).equals(pt)).toBe(true);
      const bad = Buffer.from(sealed);
      bad[bad.length - 1]! ^= 1;
      expect(evp!.openInto(key, nonce, bad, slab, at + len)).toBe(-1);
      at += len;
    }
    expect(evp!.openInto(key, randomBytes(12), randomBytes(10), slab, 0)).toBe(-1); // shorter than a tag
    expect(() =>
      evp!.openInto(
        key,
        randomBytes(12),
        nodeSeal(key, Buffer.alloc(12), randomBytes(64), 0),
        slab,
        4090,
      ),
    ).toThrow(RangeError);
  });

  it('seals into a view without touching the bytes around it; refuses a short out or an oversized pad', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(12);
    const pt = randomBytes(1420);
    const slab = Buffer.alloc(1600, 0xaa);
    const view = slab.subarray(7, 7 + 16 + 1420 + 4 + 16);
    expect(evp!.sealInto(key, nonce, pt, 4, view, 16)).toBe(1440);
    expect(view.subarray(16).equals(nodeSeal(key, nonce, pt, 4))).toBe(true);
    expect(slab.subarray(0, 7 + 16).every((b) => b === 0xaa)).toBe(true);
    expect(slab.subarray(7 + view.length).every((b) => b === 0xaa)).toBe(true);
    const short = Buffer.alloc(16 + 1420 + 4 + 15);
    expect(() => evp!.sealInto(key, nonce, pt, 4, short, 16)).toThrow(RangeError);
    expect(() => evp!.sealInto(key, nonce, pt, 0, short, 20)).toThrow(RangeError);
    const big = Buffer.alloc(200 * 1024);
    expect(() => evp!.sealInto(key, nonce, pt, 100 * 1024, big, 0)).toThrow(RangeError);
  });

  it('one-off keys with associated data (the handshake): the same bytes as node:crypto; a changed AD or tag is refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (pt, ad) => {
        const key = randomBytes(32);
        const nonce = randomBytes(12);
        const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
        if (ad.length) c.setAAD(ad, { plaintextLength: pt.length });
        const want = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
        const got = evp!.sealAd(key, nonce, pt, ad);
        expect(got.equals(want)).toBe(true);
        expect(evp!.openAd(key, nonce, got, ad)!.equals(Buffer.from(pt))).toBe(true);
        expect(evp!.openAd(key, nonce, got, Buffer.concat([ad, Buffer.of(1)]))).toBeNull();
        const bad = Buffer.from(got);
        bad[bad.length - 1]! ^= 1;
        expect(evp!.openAd(key, nonce, bad, ad)).toBeNull();
      }),
      { numRuns: 200 },
    );
  });

  it('the handshake contexts, re-keyed without the cipher: nothing carries over from the call before (its key, AD, a failed open)', () => {
    const want = (key: Buffer, nonce: Buffer, pt: Uint8Array, ad: Uint8Array) => {
      const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      if (ad.length) c.setAAD(ad, { plaintextLength: pt.length });
      return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
    };
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const n = randomBytes(12);
    const pt = randomBytes(48);
    const ad = randomBytes(32);
    const sealed = evp!.sealAd(k1, n, pt, ad);
    expect(sealed.equals(want(k1, n, pt, ad))).toBe(true);
    // another key and no AD right after: neither the key nor the AD of the call before stays
    expect(
      evp!.sealAd(k2, n, pt, new Uint8Array(0)).equals(want(k2, n, pt, new Uint8Array(0))),
    ).toBe(true);
    // a failed open (wrong key), then the right one, then an empty message with AD
    expect(evp!.openAd(k2, n, sealed, ad)).toBeNull();
    expect(evp!.openAd(k1, n, sealed, ad)!.equals(pt)).toBe(true);
    const empty = evp!.sealAd(k2, n, new Uint8Array(0), ad);
    expect(empty.equals(want(k2, n, new Uint8Array(0), ad))).toBe(true);
    expect(evp!.openAd(k2, n, empty, ad)!.length).toBe(0);
    expect(evp!.openAd(k1, n, empty, ad)).toBeNull();
  });

  it('AWG_AEAD=node switches it off', () => {
    expect(evpAead({ AWG_AEAD: 'node' })).toBeUndefined();
  });
});

const x = evpX25519({});
const der = (prefix: string, k: Uint8Array) => Buffer.concat([Buffer.from(prefix, 'hex'), k]);
const nodeDh = (sk: Uint8Array, pk: Uint8Array) =>
  diffieHellman({
    privateKey: createPrivateKey({
      key: der('302e020100300506032b656e04220420', sk),
      format: 'der',
      type: 'pkcs8',
    }),
    publicKey: createPublicKey({
      key: der('302a300506032b656e032100', pk),
      format: 'der',
      type: 'spki',
    }),
  });

const chacha = evpChaCha20({});

describe.skipIf(!chacha)('EVP ChaCha20 (header protection: keystream XORed into place)', () => {
  it('XORs what node:crypto does, for any key, nonce place, length and offset, keys reused in turn', () => {
    const keys = [randomBytes(32), randomBytes(32)];
    fc.assert(
      fc.property(
        fc.nat(1),
        fc.uint8Array({ minLength: 12, maxLength: 40 }),
        fc.nat(28),
        fc.uint8Array({ maxLength: 300 }),
        fc.nat(50),
        (k, src, nonceAt, data, pre) => {
          const key = keys[k]!;
          const at = Math.min(nonceAt, src.length - 12);
          const nonce = src.subarray(at, at + 12);
          const c = createCipheriv('chacha20', key, Buffer.concat([Buffer.alloc(4), nonce]));
          const want = c.update(Buffer.from(data));
          const buf = Buffer.concat([
            Buffer.alloc(pre, 0xee),
            Buffer.from(data),
            Buffer.alloc(3, 0xdd),
          ]);
          chacha!.xor(key, src, at, buf, pre, data.length);
          expect(buf.subarray(pre, pre + data.length).equals(want)).toBe(true);
          expect(buf.subarray(0, pre).every((b) => b === 0xee)).toBe(true);
          expect(buf.subarray(pre + data.length).every((b) => b === 0xdd)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a range outside the buffers', () => {
    const key = randomBytes(32);
    expect(() => chacha!.xor(key, Buffer.alloc(11), 0, Buffer.alloc(16), 0, 16)).toThrow(
      RangeError,
    );
    expect(() => chacha!.xor(key, Buffer.alloc(12), 0, Buffer.alloc(16), 1, 16)).toThrow(
      RangeError,
    );
    expect(evpChaCha20({ AWG_AEAD: 'node' })).toBeUndefined();
  });
});

describe.skipIf(!x)('EVP X25519 (libcrypto raw keys)', () => {
  it('RFC 7748 §6.1: both public keys and the shared secret', () => {
    const a = Buffer.from(
      '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
      'hex',
    );
    const b = Buffer.from(
      '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb',
      'hex',
    );
    expect(Buffer.from(x!.publicKey(a)).toString('hex')).toBe(
      '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
    );
    expect(Buffer.from(x!.publicKey(b)).toString('hex')).toBe(
      'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f',
    );
    expect(Buffer.from(x!.sharedSecret(a, x!.publicKey(b))!).toString('hex')).toBe(
      '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
    );
  });

  it('agrees with node:crypto on random keys (unclamped scalars too); refuses a low-order point and wrong lengths', () => {
    for (let i = 0; i < 50; i++) {
      const sk = randomBytes(32);
      const pk = x!.publicKey(randomBytes(32));
      expect(Buffer.from(x!.sharedSecret(sk, pk)!).equals(nodeDh(sk, pk))).toBe(true);
    }
    expect(x!.sharedSecret(randomBytes(32), new Uint8Array(32))).toBeNull();
    expect(x!.sharedSecret(randomBytes(31), randomBytes(32))).toBeNull();
    expect(() => x!.publicKey(randomBytes(31))).toThrow(/32-byte/);
  });

  it('an imported private key gives the same public key and secrets as raw bytes, until freed', () => {
    for (let i = 0; i < 20; i++) {
      const sk = randomBytes(32);
      const key = x!.importPrivate(sk);
      expect(Buffer.from(key.publicKey).equals(Buffer.from(x!.publicKey(sk)))).toBe(true);
      for (let j = 0; j < 3; j++) {
        const pk = x!.publicKey(randomBytes(32));
        expect(Buffer.from(x!.sharedSecretWith(key, pk)!).equals(nodeDh(sk, pk))).toBe(true);
      }
      expect(x!.sharedSecretWith(key, new Uint8Array(32))).toBeNull();
      expect(x!.sharedSecretWith(key, randomBytes(31))).toBeNull();
      x!.freePrivate(key);
      x!.freePrivate(key); // twice is harmless
      expect(() => x!.sharedSecretWith(key, x!.publicKey(randomBytes(32)))).toThrow(/freed/);
    }
    expect(() => x!.importPrivate(randomBytes(31))).toThrow(/32-byte/);
  });

  it('peer keys are imported on one kept context (EVP_PKEY_fromdata), each one its own key: many in a row, refused ones between', async () => {
    // the importer the DHs above use (the raw per-key import only where libcrypto refuses it)
    const { processOpenSsl } = await import('../../../src/native/libcrypto.js');
    const importPublic = publicImporter(processOpenSsl()!, () => undefined);
    expect(importPublic).not.toBeNull();
    const sk = randomBytes(32);
    const key = x!.importPrivate(sk);
    const pks = Array.from({ length: 40 }, () => x!.publicKey(randomBytes(32)));
    for (const [i, pk] of pks.entries()) {
      // the block's value is rewritten per key: no key is left from the one before
      expect(Buffer.from(x!.sharedSecretWith(key, pk)!).equals(nodeDh(sk, pk))).toBe(true);
      expect(Buffer.from(x!.sharedSecret(sk, pk)!).equals(nodeDh(sk, pk))).toBe(true);
      // refused; and nothing of the refusal is left on the error queue for node:crypto (the
      // next nodeDh threw "failed during derivation" when it was)
      if (i % 5 === 0) expect(x!.sharedSecretWith(key, new Uint8Array(32))).toBeNull();
    }
    const [a, b] = x!.sharedSecretsWith(key, key, pks[0]!);
    expect(Buffer.from(a!).equals(nodeDh(sk, pks[0]!))).toBe(true);
    expect(Buffer.from(b!).equals(nodeDh(sk, pks[0]!))).toBe(true);
    x!.freePrivate(key);
  });

  it("a key's kept derive context: peers in turn, keys interleaved, a refused point in between, one import for two keys", () => {
    const sks = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const keys = sks.map((sk) => x!.importPrivate(sk));
    for (let i = 0; i < 30; i++) {
      const pk = x!.publicKey(randomBytes(32));
      const k = i % 3;
      expect(Buffer.from(x!.sharedSecretWith(keys[k]!, pk)!).equals(nodeDh(sks[k]!, pk))).toBe(
        true,
      );
      // the same peer for two keys, imported once: each key's own secret, never the other's
      const [s1, s2] = x!.sharedSecretsWith(keys[k]!, keys[(k + 1) % 3]!, pk);
      expect(Buffer.from(s1!).equals(nodeDh(sks[k]!, pk))).toBe(true);
      expect(Buffer.from(s2!).equals(nodeDh(sks[(k + 1) % 3]!, pk))).toBe(true);
      if (i % 7 === 0) {
        // refused, and the context serves the next peer as before
        expect(x!.sharedSecretWith(keys[k]!, new Uint8Array(32))).toBeNull();
        expect(x!.sharedSecretsWith(keys[k]!, keys[0]!, new Uint8Array(32))).toEqual([null, null]);
        expect(x!.sharedSecretsWith(keys[k]!, keys[0]!, randomBytes(31))).toEqual([null, null]);
      }
    }
    expect(keys[0]!.handle?.ctx).toBeTruthy();
    x!.freePrivate(keys[1]!);
    expect(keys[1]!.handle).toBeNull();
    const pk = x!.publicKey(randomBytes(32));
    expect(() => x!.sharedSecretsWith(keys[0]!, keys[1]!, pk)).toThrow(/freed/);
    expect(() => x!.sharedSecretsWith(keys[1]!, keys[0]!, pk)).toThrow(/freed/);
    // the others are untouched by the freed one
    expect(Buffer.from(x!.sharedSecretWith(keys[2]!, pk)!).equals(nodeDh(sks[2]!, pk))).toBe(true);
    x!.freePrivate(keys[0]!);
    x!.freePrivate(keys[2]!);
  });

  it('AWG_X25519=node switches it off', () => {
    expect(evpX25519({ AWG_X25519: 'node' })).toBeUndefined();
  });
});

describe("the OpenSSL the engine binds to is the process's own", () => {
  it.skipIf(process.platform !== 'linux')(
    'its version is the one node:crypto reports (never a second libcrypto beside it)',
    async () => {
      const { processOpenSsl } = await import('../../../src/native/libcrypto.js');
      const lib = processOpenSsl();
      expect(lib).not.toBeNull();
      const n = BigInt(
        (lib!.func('unsigned long OpenSSL_version_num(void)') as () => number | bigint)(),
      );
      const got = `${(n >> 28n) & 0xfn}.${(n >> 20n) & 0xffn}.${(n >> 4n) & 0xffn}`;
      expect(process.versions.openssl).toMatch(new RegExp(`^${got.replace(/\./g, '\\.')}`));
    },
  );
});

const b2 = evpBlake2s({});

describe.skipIf(!b2)('BLAKE2s through libcrypto (one-shot digest and HMAC)', () => {
  it('the same as node:crypto for random inputs, empty keys and data included', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.uint8Array({ maxLength: 64 }),
        (data, key) => {
          expect(b2!.hash(data).equals(createHash('blake2s256').update(data).digest())).toBe(true);
          expect(
            b2!.hmac(key, data).equals(createHmac('blake2s256', key).update(data).digest()),
          ).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keyed BLAKE2s-128 (BLAKE2SMAC) the same as @noble/hashes for random keys and inputs', () => {
    expect(b2!.mac).toBeDefined();
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        (data, key) => {
          expect(
            Buffer.from(b2!.mac!(key, data)).equals(Buffer.from(blake2s(data, { key, dkLen: 16 }))),
          ).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('AWG_BLAKE2=node switches it off', () => {
    expect(evpBlake2s({ AWG_BLAKE2: 'node' })).toBeUndefined();
  });
});
