import { describe, expect, it, vi } from 'vitest';
import { x25519 } from '@noble/curves/ed25519.js';
import { hchacha } from '@noble/ciphers/chacha.js';
import { hash, hmac, kdf1, kdf2, kdf3, mac } from '../../../src/dataplane/crypto/blake2s.js';
import {
  chacha20Keystream,
  open,
  seal,
  writeNonce,
  xopen,
  xseal,
} from '../../../src/dataplane/crypto/aead.js';
import { clamp, publicKey, sharedSecret } from '../../../src/dataplane/crypto/x25519.js';
import { tai64n, tai64nAfter, tai64nFromParts } from '../../../src/dataplane/crypto/tai64n.js';
import {
  generateKeyPair,
  keyFromBase64,
  keyFromHex,
  keyToBase64,
  keyToHex,
} from '../../../src/dataplane/crypto/keys.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/**
 * Runs `check` on a fresh copy of a module loaded with libcrypto (`VAR` unset) and with
 * node:crypto (`VAR=node`): the modules pick their backend when they load.
 */
async function underBothBackends<M>(
  variable: string,
  load: () => Promise<M>,
  check: (m: M, env: string) => void,
): Promise<void> {
  for (const env of ['', 'node']) {
    vi.resetModules();
    vi.stubEnv(variable, env);
    try {
      check(await load(), env);
    } finally {
      vi.unstubAllEnvs();
    }
  }
}

describe('BLAKE2s', () => {
  it('matches RFC 7693 / BLAKE2 KAT vectors', () => {
    expect(toHex(hash(Buffer.from('abc')))).toBe(
      '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982',
    );
    expect(toHex(hash(Buffer.from('')))).toBe(
      '69217a3079908094e11121d042354a7c1f55b6482ca1a51e1b250dfd1ed0eef9',
    );
  });
  it('keyed 16-byte MAC differs from HMAC and truncated hash', () => {
    const k = new Uint8Array(32).fill(1);
    const m = mac(k, Buffer.from('x'));
    expect(m.length).toBe(16);
    expect(toHex(m)).not.toBe(toHex(hmac(k, Buffer.from('x')).subarray(0, 16)));
  });
});

describe('KDF (wireguard-go device/kdf_test.go)', () => {
  const cases = [
    [
      '746573742d6b6579',
      '746573742d696e707574',
      '6f0e5ad38daba1bea8a0d213688736f19763239305e0f58aba697f9ffc41c633',
      'df1194df20802a4fe594cde27e92991c8cae66c366e8106aaa937a55fa371e8a',
      'fac6e2745a325f5dc5d11a5b165aad08b0ada28e7b4e666b7c077934a4d76c24',
    ],
    [
      '776972656775617264',
      '776972656775617264',
      '491d43bbfdaa8750aaf535e334ecbfe5129967cd64635101c566d4caefda96e8',
      '1e71a379baefd8a79aa4662212fcafe19a23e2b609a3db7d6bcba8f560e3d25f',
      '31e1ae48bddfbe5de38f295e5452b1909a1b4e38e183926af3780b0c1e1f0160',
    ],
    [
      '',
      '',
      '8387b46bf43eccfcf349552a095d8315c4055beb90208fb1be23b894bc2ed5d0',
      '58a0e5f6faefccf4807bff1f05fa8a9217945762040bcec2f4b4a62bdfe0e86e',
      '0ce6ea98ec548f8e281e93e32db65621c45eb18dc6f0a7ad94178610a2f7338e',
    ],
  ] as const;
  it.each(cases)('key=%s', (k, i, t0, t1, t2) => {
    expect(toHex(kdf1(hex(k), hex(i)))).toBe(t0);
    expect(kdf2(hex(k), hex(i)).map(toHex)).toEqual([t0, t1]);
    expect(kdf3(hex(k), hex(i)).map(toHex)).toEqual([t0, t1, t2]);
  });
});

describe('ChaCha20-Poly1305', () => {
  it('RFC 8439 §2.8.2 AEAD vector (nonce = 4 bytes constant ‖ 8 bytes IV)', () => {
    // The RFC nonce 07000000 4041424344454647 is not of WireGuard's 0000 ‖ u64 form;
    // check via a round trip with WireGuard nonces plus tamper detection instead.
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const ct = seal(key, 7, Buffer.from('hello'), Buffer.from('ad'));
    expect(Buffer.from(open(key, 7, ct, Buffer.from('ad'))!).toString()).toBe('hello');
    expect(open(key, 8, ct, Buffer.from('ad'))).toBeNull();
    ct[0]! ^= 1;
    expect(open(key, 7, ct, Buffer.from('ad'))).toBeNull();
  });
  it('large counters encode as u64 little-endian', () => {
    const key = new Uint8Array(32).fill(9);
    const a = seal(key, 2 ** 40 + 5, new Uint8Array(0));
    expect(open(key, 2 ** 40 + 5, a)).not.toBeNull();
    expect(open(key, 5, a)).toBeNull();
  });
});

describe('writeNonce', () => {
  it('is 4 zero bytes and the counter as u64le, in a view at any offset', () => {
    const big = new Uint8Array(40).fill(0xee);
    for (const c of [0, 1, 0xff, 0x1_0000, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5, 2 ** 53 - 1]) {
      const out = writeNonce(big.subarray(7, 19), c);
      const want = new Uint8Array(12);
      new DataView(want.buffer).setBigUint64(4, BigInt(c), true);
      expect(toHex(out)).toBe(toHex(want));
      expect(big[6]).toBe(0xee);
      expect(big[19]).toBe(0xee);
    }
  });
});

describe('openInto (the receive path opens into its slab)', () => {
  it('EVP and node:crypto (AWG_AEAD=node) give the same plaintext at the offset, and -1 when tampered', async () => {
    await underBothBackends(
      'AWG_AEAD',
      () => import('../../../src/dataplane/crypto/aead.js'),
      (m) => {
        const key = new Uint8Array(32).fill(7);
        const nonce = m.writeNonce(new Uint8Array(12), 42);
        const pt = new TextEncoder().encode('a packet for the TUN');
        const sealed = new Uint8Array(pt.length + 16);
        m.sealInto(key, nonce, pt, 0, sealed, 0);
        const slab = new Uint8Array(256);
        expect(m.openInto(key, nonce, sealed, slab, 40)).toBe(pt.length);
        expect(toHex(slab.subarray(40, 40 + pt.length))).toBe(toHex(pt));
        sealed[3]! ^= 1;
        expect(m.openInto(key, nonce, sealed, slab, 40)).toBe(-1);
      },
    );
  });
});

describe('sealCounter / openCounter (the transport path: the counter as the nonce)', () => {
  it('match sealInto / openInto under writeNonce, on a key used for the first time too, with both backends', async () => {
    await underBothBackends(
      'AWG_AEAD',
      () => import('../../../src/dataplane/crypto/aead.js'),
      (m) => {
        const pt = new TextEncoder().encode('a segment of a TCP stream');
        for (const counter of [0, 1, 255, 0x1_0000_0000 + 5, 2 ** 53 - 1]) {
          // fresh keys: the first use of each makes its context (which must leave the nonce)
          const key = new Uint8Array(32).fill(counter % 251);
          const key2 = new Uint8Array(32).fill(counter % 251);
          const a = new Uint8Array(pt.length + 3 + 16 + 8);
          const b = new Uint8Array(a.length);
          expect(m.sealCounter(key, counter, pt, 3, a, 8)).toBe(pt.length + 3 + 16);
          m.sealInto(key2, m.writeNonce(new Uint8Array(12), counter), pt, 3, b, 8);
          expect(toHex(a)).toBe(toHex(b));
          const sealed = a.subarray(8);
          const slab = new Uint8Array(128);
          const other = new Uint8Array(32).fill((counter % 251) + 1);
          expect(m.openCounter(new Uint8Array(key), counter, sealed, slab, 16)).toBe(pt.length + 3);
          expect(toHex(slab.subarray(16, 16 + pt.length))).toBe(toHex(pt));
          expect(m.openCounter(key, counter + 1, sealed, slab, 16)).toBe(-1);
          expect(m.openCounter(other, counter, sealed, slab, 16)).toBe(-1);
          sealed[sealed.length - 1]! ^= 1;
          expect(m.openCounter(key, counter, sealed, slab, 16)).toBe(-1);
        }
      },
    );
  });
});

describe('HChaCha20 / XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha)', () => {
  it('HChaCha20 §2.2.1', () => {
    const key = hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
    const nonce = hex('000000090000004a0000000031415927');
    const sigma = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);
    const out = new Uint32Array(8);
    hchacha(sigma, new Uint32Array(key.buffer), new Uint32Array(nonce.buffer), out);
    expect(toHex(new Uint8Array(out.buffer))).toBe(
      '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc',
    );
  });
  it('XChaCha20-Poly1305 A.3.1', () => {
    const pt = Buffer.from(
      "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    );
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
    const ad = hex('50515253c0c1c2c3c4c5c6c7');
    const sealed = xseal(key, nonce, pt, ad);
    expect(toHex(sealed)).toBe(
      'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e' +
        'c0875924c1c7987947deafd8780acf49',
    );
    expect(Buffer.from(xopen(key, nonce, sealed, ad)!).equals(pt)).toBe(true);
    expect(xopen(key, nonce, sealed, new Uint8Array(0))).toBeNull();
  });
  it('raw ChaCha20 keystream (RFC 8439 §2.4.2 block 1 has counter 1; check counter 0 by self-consistency)', () => {
    const ks = chacha20Keystream(new Uint8Array(32), new Uint8Array(12), 64);
    // RFC 8439 A.1 test vector #1: all-zero key and nonce, counter 0.
    expect(toHex(ks)).toBe(
      '76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586',
    );
  });
});

describe('X25519', () => {
  it('node:crypto agrees with noble on random keys', () => {
    for (let i = 0; i < 20; i++) {
      const a = generateKeyPair();
      const b = generateKeyPair();
      expect(toHex(a.publicKey)).toBe(toHex(x25519.getPublicKey(a.privateKey)));
      expect(toHex(sharedSecret(a.privateKey, b.publicKey)!)).toBe(
        toHex(x25519.getSharedSecret(a.privateKey, b.publicKey)),
      );
    }
  });
  it('RFC 7748 §6.1', () => {
    const a = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    expect(toHex(publicKey(a))).toBe(
      '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
    );
    const bpub = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    expect(toHex(sharedSecret(a, bpub)!)).toBe(
      '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
    );
  });
  it('refuses an all-zero shared secret', () => {
    expect(sharedSecret(generateKeyPair().privateKey, new Uint8Array(32))).toBeNull();
  });
  it('an imported key (an EVP handle, or a KeyObject with AWG_X25519=node) agrees with raw bytes', async () => {
    await underBothBackends(
      'AWG_X25519',
      () => import('../../../src/dataplane/crypto/x25519.js'),
      (m, env) => {
        for (let i = 0; i < 5; i++) {
          const a = generateKeyPair();
          const b = generateKeyPair();
          const k = m.importPrivateKey(a.privateKey);
          expect(env === 'node' ? k.node : k.evp).toBeDefined();
          expect(toHex(k.publicKey)).toBe(toHex(a.publicKey));
          expect(toHex(m.sharedSecret(k, b.publicKey)!)).toBe(
            toHex(x25519.getSharedSecret(a.privateKey, b.publicKey)),
          );
          expect(m.sharedSecret(k, new Uint8Array(32))).toBeNull();
          // two keys with one peer key (consuming a response): each its own secret
          const c = generateKeyPair();
          const kc = m.importPrivateKey(c.privateKey);
          const [s1, s2] = m.sharedSecrets(k, kc, b.publicKey);
          expect(toHex(s1!)).toBe(toHex(x25519.getSharedSecret(a.privateKey, b.publicKey)));
          expect(toHex(s2!)).toBe(toHex(x25519.getSharedSecret(c.privateKey, b.publicKey)));
          expect(m.sharedSecrets(k, c.privateKey, b.publicKey).map((s) => toHex(s!))).toEqual([
            toHex(s1!),
            toHex(s2!),
          ]);
          expect(m.sharedSecrets(k, kc, new Uint8Array(32))).toEqual([null, null]);
          m.disposePrivateKey(kc);
          m.disposePrivateKey(k);
        }
      },
    );
  });
  it('clamps', () => {
    const k = clamp(new Uint8Array(32).fill(0xff));
    expect(k[0]).toBe(0xf8);
    expect(k[31]).toBe(0x7f);
  });
});

describe('TAI64N', () => {
  it('matches the vector timestamp (unix 1700000000, 123456789 ns whitened)', () => {
    expect(toHex(tai64nFromParts(1700000000, 123456789))).toBe('400000006553f10a07000000');
    expect(toHex(tai64n(1700000000123, 456789))).toBe('400000006553f10a07000000');
  });
  it('orders byte-wise', () => {
    expect(tai64nAfter(tai64n(2000), tai64n(1000))).toBe(true);
    expect(tai64nAfter(tai64n(1000), tai64n(1000))).toBe(false);
    expect(tai64nAfter(tai64n(1000), tai64n(1001))).toBe(false); // same 16.8 ms bucket
  });
});

describe('key text forms', () => {
  it('round-trips base64 and hex', () => {
    const k = generateKeyPair().privateKey;
    expect(keyFromBase64(keyToBase64(k))).toEqual(k);
    expect(keyFromHex(keyToHex(k))).toEqual(k);
    expect(() => keyFromBase64('abc')).toThrow();
  });
});
