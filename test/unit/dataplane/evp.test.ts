/**
 * The EVP transport AEAD (crypto/evp.ts) against node:crypto's ChaCha20-Poly1305: the same
 * bytes for random packets, padding and empty keepalives; a tampered ciphertext or tag, or
 * the wrong key, is refused; contexts are per key; AWG_AEAD=node switches it off.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evpAead } from '../../../src/dataplane/crypto/evp.js';

const evp = evpAead({});

function nodeSeal(key: Uint8Array, nonce: Uint8Array, pt: Uint8Array, pad: number): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  return Buffer.concat([c.update(Buffer.concat([pt, Buffer.alloc(pad)])), c.final(), c.getAuthTag()]);
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
      fc.property(fc.uint8Array({ maxLength: 1500 }), fc.integer({ min: 0, max: 15 }), fc.nat(), fc.nat({ max: 1 }), fc.nat({ max: 7 }), (pt, pad, counter, k, offset) => {
        const key = keys[k]!;
        const nonce = Buffer.alloc(12);
        nonce.writeUInt32LE(counter, 4);
        const out = Buffer.alloc(offset + pt.length + pad + 16);
        const n = evp!.sealInto(key, nonce, pt, pad, out, offset);
        const want = nodeSeal(key, nonce, pt, pad);
        expect(n).toBe(want.length);
        expect(out.subarray(offset).equals(want)).toBe(true);
        expect(evp!.open(key, nonce, want)!.equals(Buffer.concat([pt, Buffer.alloc(pad)]))).toBe(true);
        expect(nodeOpen(key, nonce, out.subarray(offset)).length).toBe(pt.length + pad);
      }),
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

  it('AWG_AEAD=node switches it off', () => {
    expect(evpAead({ AWG_AEAD: 'node' })).toBeUndefined();
  });
});
