import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { open, seal } from '../../../src/dataplane/crypto/aead.js';
import { importPrivateKey, publicKey } from '../../../src/dataplane/crypto/x25519.js';
import {
  INITIAL_CHAIN_KEY,
  INITIAL_HASH,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  finishInitiation,
  initialState,
  prepareInitiation,
  split,
  type Secret,
} from '../../../src/dataplane/noise/handshake.js';
import { CookieChecker, CookieGenerator, mac1Key } from '../../../src/dataplane/noise/cookie.js';
import {
  decodeInitiation,
  decodeResponse,
  encodeInitiation,
  encodeResponse,
} from '../../../src/dataplane/noise/messages.js';
import { ReplayFilter } from '../../../src/dataplane/noise/replay.js';

const fixtures = new URL('../../fixtures/dataplane/', import.meta.url);
const cacophony = JSON.parse(
  readFileSync(new URL('cacophony_IKpsk2_25519_ChaChaPoly_BLAKE2s.json', fixtures), 'utf8'),
)[0];
const V = JSON.parse(readFileSync(new URL('wg-awg-vectors.json', fixtures), 'utf8'));
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('cacophony Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s', () => {
  // raw key bytes through createInitiation, and keys imported once (crypto/x25519.ts) through
  // a prepared message 1 (what a device sends): the same bytes either way
  it.each([false, true])(
    'reproduces the handshake, handshake hash and transport messages (imported keys, prepared message 1: %s)',
    (imported) => {
      const c = cacophony;
      const secret = (h: string): Secret => (imported ? importPrivateKey(hex(h)) : hex(h));
      const pub = (k: Secret) => (k instanceof Uint8Array ? publicKey(k) : k.publicKey);
      const init = initialState(hex(c.init_prologue), c.protocol_name);
      const iStatic = secret(c.init_static);
      const rStatic = secret(c.resp_static);
      const iEph = secret(c.init_ephemeral);
      const m1In = {
        init,
        localStaticPrivate: iStatic,
        localStaticPublic: pub(iStatic),
        remoteStaticPublic: hex(c.init_remote_static),
        ephemeralPrivate: iEph,
        payload: hex(c.messages[0].payload),
      };
      const m1 = imported
        ? finishInitiation(prepareInitiation(m1In)!, m1In.payload)
        : createInitiation(m1In)!;
      expect(
        toHex(Buffer.concat([m1.ephemeralPublic, m1.encryptedStatic, m1.encryptedPayload])),
      ).toBe(c.messages[0].ciphertext);
      const r1 = consumeInitiation({
        init,
        localStaticPrivate: rStatic,
        localStaticPublic: pub(rStatic),
        ephemeralPublic: m1.ephemeralPublic,
        encryptedStatic: m1.encryptedStatic,
        encryptedPayload: m1.encryptedPayload,
      })!;
      expect(toHex(r1.payload)).toBe(c.messages[0].payload);
      expect(toHex(r1.remoteStaticPublic)).toBe(toHex(pub(iStatic)));
      const m2 = createResponse({
        state: r1.state,
        remoteEphemeral: r1.remoteEphemeral,
        remoteStaticPublic: r1.remoteStaticPublic,
        ephemeralPrivate: secret(c.resp_ephemeral),
        psk: hex(c.resp_psks[0]),
        payload: hex(c.messages[1].payload),
      })!;
      expect(toHex(Buffer.concat([m2.ephemeralPublic, m2.encryptedPayload]))).toBe(
        c.messages[1].ciphertext,
      );
      const i2 = consumeResponse({
        state: m1.state,
        localStaticPrivate: iStatic,
        localEphemeralPrivate: iEph,
        ephemeralPublic: m2.ephemeralPublic,
        encryptedPayload: m2.encryptedPayload,
        psk: hex(c.init_psks[0]),
      })!;
      expect(toHex(i2.payload)).toBe(c.messages[1].payload);
      expect(toHex(i2.state.h)).toBe(c.handshake_hash);
      expect(toHex(m2.state.h)).toBe(c.handshake_hash);
      const [t1, t2] = split(i2.state.ck);
      const msgs = c.messages.slice(2);
      for (let i = 0; i < msgs.length; i++) {
        const key = i % 2 === 0 ? t1 : t2;
        const counter = Math.floor(i / 2);
        expect(toHex(seal(key, counter, hex(msgs[i].payload)))).toBe(msgs[i].ciphertext);
        expect(toHex(open(key, counter, hex(msgs[i].ciphertext))!)).toBe(msgs[i].payload);
      }
    },
  );
});

describe('WireGuard vectors (wg-awg-vectors.json)', () => {
  const I = V.inputs;
  const iPriv = hex(I.init_static_priv);
  const rPriv = hex(I.resp_static_priv);
  const iPub = hex(I.init_static_pub);
  const rPub = hex(I.resp_static_pub);

  it('constants', () => {
    expect(toHex(INITIAL_CHAIN_KEY)).toBe(V.constants.InitialChainKey);
    expect(toHex(INITIAL_HASH)).toBe(V.constants.InitialHash);
    expect(toHex(publicKey(iPriv))).toBe(I.init_static_pub);
    expect(toHex(mac1Key(rPub))).toBe(V.initiation.mac1_key);
    expect(toHex(mac1Key(iPub))).toBe(V.response.mac1_key);
  });

  it('handshake, keys, keepalive, data and cookie reply byte-for-byte', () => {
    const m1 = createInitiation({
      localStaticPrivate: iPriv,
      localStaticPublic: iPub,
      remoteStaticPublic: rPub,
      ephemeralPrivate: hex(I.init_ephemeral_priv),
      payload: hex(I.tai64n_timestamp),
    })!;
    expect(toHex(m1.state.ck)).toBe(V.initiation.chain_key_after);
    expect(toHex(m1.state.h)).toBe(V.initiation.hash_after);
    const init = encodeInitiation(
      1,
      I.init_sender_index,
      m1.ephemeralPublic,
      m1.encryptedStatic,
      m1.encryptedPayload,
    );
    const gen = new CookieGenerator(rPub);
    gen.addMacs(init, 0);
    expect(toHex(init)).toBe(V.initiation.hex);

    const checker = new CookieChecker(rPub, () => new Uint8Array(32));
    expect(checker.checkMAC1(init)).toBe(true);
    const d = decodeInitiation(init);
    const r1 = consumeInitiation({
      localStaticPrivate: rPriv,
      localStaticPublic: rPub,
      ephemeralPublic: d.ephemeral,
      encryptedStatic: d.encStatic,
      encryptedPayload: d.encTimestamp,
    })!;
    expect(toHex(r1.payload)).toBe(I.tai64n_timestamp);

    const m2 = createResponse({
      state: r1.state,
      remoteEphemeral: r1.remoteEphemeral,
      remoteStaticPublic: r1.remoteStaticPublic,
      ephemeralPrivate: hex(I.resp_ephemeral_priv),
      psk: hex(I.psk),
      payload: new Uint8Array(0),
    })!;
    const resp = encodeResponse(
      2,
      I.resp_sender_index,
      d.sender,
      m2.ephemeralPublic,
      m2.encryptedPayload,
    );
    new CookieGenerator(iPub).addMacs(resp, 0);
    expect(toHex(resp)).toBe(V.response.hex);
    expect(toHex(m2.state.ck)).toBe(V.response.chain_key_after);
    expect(toHex(m2.state.h)).toBe(V.response.hash_after);

    const dr = decodeResponse(resp);
    const i2 = consumeResponse({
      state: m1.state,
      localStaticPrivate: iPriv,
      localEphemeralPrivate: hex(I.init_ephemeral_priv),
      ephemeralPublic: dr.ephemeral,
      encryptedPayload: dr.encEmpty,
      psk: hex(I.psk),
    })!;
    const [t1, t2] = split(i2.state.ck);
    expect(toHex(t1)).toBe(V.transport_keys.initiator_send);
    expect(toHex(t2)).toBe(V.transport_keys.initiator_recv);

    const hdr = (counter: number) => {
      const h = Buffer.alloc(16);
      h.writeUInt32LE(4, 0);
      h.writeUInt32LE(dr.sender, 4);
      h.writeBigUInt64LE(BigInt(counter), 8);
      return h;
    };
    expect(toHex(Buffer.concat([hdr(0), seal(t1, 0, new Uint8Array(0))]))).toBe(
      V.keepalive_initiator_counter0.hex,
    );
    expect(
      toHex(Buffer.concat([hdr(1), seal(t1, 1, hex(V.data_initiator_counter1.padded_plaintext))])),
    ).toBe(V.data_initiator_counter1.hex);

    // cookie reply from the responder under load, then mac2 on the same initiation
    checker.setSecret(hex(V.cookie_reply.responder_cookie_secret), 0);
    const reply = checker.createReply(
      init,
      d.sender,
      hex(V.cookie_reply.source_bytes),
      0,
      hex(V.cookie_reply.nonce),
    );
    expect(toHex(reply)).toBe(V.cookie_reply.hex);
    expect(gen.consumeReply(reply, 1000)).toBe(true);
    const again = Uint8Array.from(init);
    gen.addMacs(again, 1000);
    expect(toHex(again)).toBe(V.initiation_with_mac2.hex);
    expect(checker.checkMAC2(again, hex(V.cookie_reply.source_bytes), 1000)).toBe(true);
    expect(checker.checkMAC2(again, hex('c00002026cca'), 1000)).toBe(false);
    expect(checker.checkMAC2(again, hex(V.cookie_reply.source_bytes), 200_000)).toBe(false); // secret expired
  });

  it('rejects a tampered mac1 and a reply not matching our last mac1', () => {
    const gen = new CookieGenerator(rPub);
    const msg = new Uint8Array(148).fill(7);
    gen.addMacs(msg, 0);
    const checker = new CookieChecker(rPub, (n) => new Uint8Array(n).fill(3));
    expect(checker.checkMAC1(msg)).toBe(true);
    const reply = checker.createReply(msg, 1, hex('7f0000010001'), 0);
    msg[5]! ^= 1;
    expect(checker.checkMAC1(msg)).toBe(false);
    gen.addMacs(new Uint8Array(148).fill(8), 0); // lastMAC1 changes
    expect(gen.consumeReply(reply, 0)).toBe(false);
  });
});

describe('replay filter (wireguard-go replay_test.go cases)', () => {
  const LIMIT = 2 ** 53;
  it('accepts fresh counters, rejects replays and counters behind the window', () => {
    const f = new ReplayFilter();
    const W = f.windowSize;
    expect(W).toBe(8128);
    const t = (n: number, ok: boolean) => expect(f.validate(n, LIMIT), `counter ${n}`).toBe(ok);
    t(0, true);
    t(1, true);
    t(1, false);
    t(9, true);
    t(8, true);
    t(7, true);
    t(7, false);
    t(W, true);
    t(W + 1, true);
    t(W + 1, false);
    t(0, false);
    t(2, true);
    t(W + 3, true);
    t(2, false);
    t(3, true);
    t(3, false);
    t(4, true); // 2 is behind the window, 3 at its edge
    t(W * 3, true);
    t(W * 2 - 1, false);
    t(W * 2, true); // edge of the window
    t(W * 3 - 1, true);
    t(W * 3 - 1, false);
  });
  it('rejects counters at the limit', () => {
    const f = new ReplayFilter();
    expect(f.validate(100, 100)).toBe(false);
    expect(f.validate(99, 100)).toBe(true);
  });
  it('window of 32 blocks = 1984 (RFC 6479 example size)', () => {
    const f = new ReplayFilter(32);
    expect(f.windowSize).toBe(1984);
    expect(f.validate(5000, LIMIT)).toBe(true);
    expect(f.validate(5000 - 1984, LIMIT)).toBe(true);
    expect(f.validate(5000 - 1985, LIMIT)).toBe(false);
  });
  it('matches a naive set-based model on random sequences', () => {
    const f = new ReplayFilter(4); // window 192
    const seen = new Set<number>();
    let last = 0;
    let x = 12345;
    const rnd = () => (x = (x * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 20000; i++) {
      const n = Math.max(0, Math.floor(last + (rnd() - 0.6) * 400));
      let expected: boolean;
      if (n > last) expected = true;
      else if (last - n > f.windowSize) expected = false;
      else expected = !seen.has(n);
      expect(f.validate(n, LIMIT)).toBe(expected);
      if (expected) {
        seen.add(n);
        if (n > last) last = n;
      }
    }
  });
});
