/**
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s core (docs/dataplane.md#the-handshake), free of
 * message framing so
 * the standard cacophony vector runs through the same code as WireGuard. The prologue,
 * ephemeral keys and payloads are parameters; WireGuard uses prologue = IDENTIFIER,
 * payload 1 = TAI64N, payload 2 = empty.
 */
import { hash, kdf1, kdf2, kdf3 } from '../crypto/blake2s.js';
import { open, seal } from '../crypto/aead.js';
import { type PrivateKey, publicKey, sharedSecret, sharedSecrets } from '../crypto/x25519.js';

/** A raw private key, or one imported once for several DHs (crypto/x25519.ts). */
export type Secret = Uint8Array | PrivateKey;
const publicOf = (k: Secret): Uint8Array => (k instanceof Uint8Array ? publicKey(k) : k.publicKey);

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const ZERO_KEY = new Uint8Array(32);

export interface SymmetricState {
  /** chaining key C */
  ck: Uint8Array;
  /** handshake hash H */
  h: Uint8Array;
}

export function initialState(
  prologue: Uint8Array | string = IDENTIFIER,
  name = CONSTRUCTION,
): SymmetricState {
  const n = Buffer.from(name);
  const ck = n.length <= 32 ? Buffer.concat([n, Buffer.alloc(32 - n.length)]) : hash(n);
  return { ck, h: hash(ck, typeof prologue === 'string' ? Buffer.from(prologue) : prologue) };
}

const WG_INITIAL = initialState();
export const INITIAL_CHAIN_KEY: Uint8Array = WG_INITIAL.ck;
export const INITIAL_HASH: Uint8Array = WG_INITIAL.h;

export interface InitiationOut {
  ephemeralPublic: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedPayload: Uint8Array;
  state: SymmetricState;
}

export interface InitiationIn {
  init?: SymmetricState;
  localStaticPrivate: Secret;
  localStaticPublic: Uint8Array;
  remoteStaticPublic: Uint8Array;
  ephemeralPrivate: Secret;
  payload: Uint8Array;
  /** DH(local static, remote static), precomputed per peer */
  staticStatic?: Uint8Array | null;
}

/**
 * Message 1 up to its payload: everything but the timestamp depends only on the keys, so a
 * device prepares it while idle and only `finishInitiation` runs when a packet waits.
 */
export interface PreparedInitiation {
  ephemeralPublic: Uint8Array;
  encryptedStatic: Uint8Array;
  /** C and H after "e, es, s, ss", and the key that seals the payload */
  ck: Uint8Array;
  h: Uint8Array;
  key: Uint8Array;
}

/** e, es, s, ss. Null if a DH result is all-zero. */
export function prepareInitiation(p: Omit<InitiationIn, 'payload'>): PreparedInitiation | null {
  const init = p.init ?? WG_INITIAL;
  let h = hash(init.h, p.remoteStaticPublic);
  const epub = publicOf(p.ephemeralPrivate);
  let ck: Uint8Array = kdf1(init.ck, epub);
  h = hash(h, epub);
  const es = sharedSecret(p.ephemeralPrivate, p.remoteStaticPublic);
  if (!es) return null;
  let key: Uint8Array;
  [ck, key] = kdf2(ck, es);
  const encryptedStatic = seal(key, 0, p.localStaticPublic, h);
  h = hash(h, encryptedStatic);
  const ss =
    p.staticStatic === undefined
      ? sharedSecret(p.localStaticPrivate, p.remoteStaticPublic)
      : p.staticStatic;
  if (!ss) return null;
  [ck, key] = kdf2(ck, ss);
  return { ephemeralPublic: epub, encryptedStatic, ck, h, key };
}

/** The payload (WireGuard: the TAI64N timestamp) sealed onto a prepared message 1. */
export function finishInitiation(pre: PreparedInitiation, payload: Uint8Array): InitiationOut {
  const encryptedPayload = seal(pre.key, 0, payload, pre.h);
  const h = hash(pre.h, encryptedPayload);
  return {
    ephemeralPublic: pre.ephemeralPublic,
    encryptedStatic: pre.encryptedStatic,
    encryptedPayload,
    state: { ck: pre.ck, h },
  };
}

/** Message 1: e, es, s, ss. Returns null if a DH result is all-zero. */
export function createInitiation(p: InitiationIn): InitiationOut | null {
  const pre = prepareInitiation(p);
  return pre && finishInitiation(pre, p.payload);
}

export interface ConsumedInitiation {
  remoteStaticPublic: Uint8Array;
  remoteEphemeral: Uint8Array;
  payload: Uint8Array;
  state: SymmetricState;
}

export interface ConsumeInitiationIn {
  init?: SymmetricState;
  localStaticPrivate: Secret;
  localStaticPublic: Uint8Array;
  ephemeralPublic: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedPayload: Uint8Array;
  /**
   * Called with the decrypted initiator static key; returns the precomputed static-static
   * DH, or null to abort (unknown peer). Default: compute it.
   */
  lookup?: (remoteStatic: Uint8Array) => Uint8Array | null;
}

export function consumeInitiation(p: ConsumeInitiationIn): ConsumedInitiation | null {
  const init = p.init ?? WG_INITIAL;
  let h = hash(hash(init.h, p.localStaticPublic), p.ephemeralPublic);
  let ck: Uint8Array = kdf1(init.ck, p.ephemeralPublic);
  const es = sharedSecret(p.localStaticPrivate, p.ephemeralPublic);
  if (!es) return null;
  let key: Uint8Array;
  [ck, key] = kdf2(ck, es);
  const spub = open(key, 0, p.encryptedStatic, h);
  if (!spub || spub.length !== 32) return null;
  h = hash(h, p.encryptedStatic);
  const ss = p.lookup ? p.lookup(spub) : sharedSecret(p.localStaticPrivate, spub);
  if (!ss) return null;
  [ck, key] = kdf2(ck, ss);
  const payload = open(key, 0, p.encryptedPayload, h);
  if (!payload) return null;
  h = hash(h, p.encryptedPayload);
  return {
    remoteStaticPublic: new Uint8Array(spub),
    remoteEphemeral: p.ephemeralPublic,
    payload,
    state: { ck, h },
  };
}

export interface ResponseIn {
  state: SymmetricState;
  remoteEphemeral: Uint8Array;
  remoteStaticPublic: Uint8Array;
  ephemeralPrivate: Secret;
  psk: Uint8Array;
  payload: Uint8Array;
}

export interface ResponseOut {
  ephemeralPublic: Uint8Array;
  encryptedPayload: Uint8Array;
  state: SymmetricState;
}

/** Message 2: e, ee, se, psk. */
export function createResponse(p: ResponseIn): ResponseOut | null {
  const epub = publicOf(p.ephemeralPrivate);
  let h = hash(p.state.h, epub);
  let ck: Uint8Array = kdf1(p.state.ck, epub);
  const ee = sharedSecret(p.ephemeralPrivate, p.remoteEphemeral);
  const se = sharedSecret(p.ephemeralPrivate, p.remoteStaticPublic);
  if (!ee || !se) return null;
  ck = kdf1(ck, ee);
  ck = kdf1(ck, se);
  const [ck2, tau, key] = kdf3(ck, p.psk);
  h = hash(h, tau);
  const encryptedPayload = seal(key, 0, p.payload, h);
  h = hash(h, encryptedPayload);
  return { ephemeralPublic: epub, encryptedPayload, state: { ck: ck2, h } };
}

export interface ConsumeResponseIn {
  state: SymmetricState;
  localStaticPrivate: Secret;
  localEphemeralPrivate: Secret;
  ephemeralPublic: Uint8Array;
  encryptedPayload: Uint8Array;
  psk: Uint8Array;
}

export function consumeResponse(
  p: ConsumeResponseIn,
): { payload: Uint8Array; state: SymmetricState } | null {
  let h = hash(p.state.h, p.ephemeralPublic);
  let ck: Uint8Array = kdf1(p.state.ck, p.ephemeralPublic);
  // the peer's ephemeral imported once for both DHs
  const [ee, se] = sharedSecrets(p.localEphemeralPrivate, p.localStaticPrivate, p.ephemeralPublic);
  if (!ee || !se) return null;
  ck = kdf1(ck, ee);
  ck = kdf1(ck, se);
  const [ck2, tau, key] = kdf3(ck, p.psk);
  h = hash(h, tau);
  const payload = open(key, 0, p.encryptedPayload, h);
  if (!payload) return null;
  h = hash(h, p.encryptedPayload);
  return { payload, state: { ck: ck2, h } };
}

/** Split(): (initiator send, initiator receive) = KDF2(C, empty). */
export function split(ck: Uint8Array): [Uint8Array, Uint8Array] {
  return kdf2(ck, new Uint8Array(0));
}
