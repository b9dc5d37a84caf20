/**
 * WireGuard handshake messages bound to device and peer state (wireguard-go
 * `noise-protocol.go` Create/Consume + BeginSymmetricSession). Messages are the bare
 * 148/92-byte forms; AWG framing happens in the caller.
 */
import { MESSAGE_INITIATION_TYPE } from '../constants.js';
import { type PrivateKey, clamp, disposePrivateKey, importPrivateKey } from '../crypto/x25519.js';
import { keysEqual } from '../crypto/keys.js';
import { tai64n, tai64nAfter } from '../crypto/tai64n.js';
import { HANDSHAKE_INITIATION_RATE } from '../constants.js';
import {
  consumeInitiation,
  consumeResponse,
  createResponse,
  finishInitiation,
  prepareInitiation,
  split,
} from '../noise/handshake.js';
import {
  decodeInitiation,
  decodeResponse,
  encodeInitiation,
  encodeResponse,
} from '../noise/messages.js';
import { ReplayFilter } from '../noise/replay.js';
import type { RandomSource } from '../awg/random.js';
import type { Clock } from '../clock.js';
import type { Keypair } from './keypair.js';
import type { Peer, Prepared } from './peer.js';

export interface IndexEntry {
  peer: Peer;
  keypair: Keypair | null;
}

/** Device state the handshake needs. */
export interface HandshakeHost {
  readonly clock: Clock;
  readonly rng: RandomSource;
  readonly indices: Map<number, IndexEntry>;
  staticPrivate: Uint8Array | null;
  staticPublic: Uint8Array | null;
  /** the static private key imported for DHs (crypto/x25519.ts importPrivateKey) */
  staticKey: PrivateKey | null;
  peerByKey(pub: Uint8Array): Peer | undefined;
  /** prepare the peer's next initiation while idle (the device schedules it; optional) */
  prepareSoon?(p: Peer): void;
  /** extra nanoseconds for TAI64N (tests keep it 0) */
  readonly tai64nNanos?: () => number;
}

export function newIndex(h: HandshakeHost, entry: IndexEntry): number {
  for (;;) {
    const i = h.rng.intn(0x1_0000_0000);
    if (i !== 0 && !h.indices.has(i)) {
      h.indices.set(i, entry);
      return i;
    }
  }
}

function clearHandshake(h: HandshakeHost, p: Peer): void {
  const hs = p.handshake;
  if (hs.localIndex) {
    const e = h.indices.get(hs.localIndex);
    if (e && e.keypair === null) h.indices.delete(hs.localIndex);
  }
  hs.state = 'zeroed';
  hs.chain = null;
  disposePrivateKey(hs.localEphemeral);
  hs.localEphemeral = null;
  hs.remoteEphemeral = null;
  hs.localIndex = 0;
  hs.remoteIndex = 0;
}

export { clearHandshake };

/**
 * Prepares the peer's next initiation up to its timestamp (a fresh ephemeral key, es, the
 * sealed static key, ss): the two scalar multiplications and most of the hashing of message 1,
 * done while idle so that a packet waiting for a handshake waits only for the rest (the
 * first packet after a peer reset). Keeps an existing preparation that is still current.
 * Measurements: bench/RESULTS.md, section "Step 10 (continued, evening of 2026-11-23)".
 */
export function prepareNextInitiation(h: HandshakeHost, p: Peer): void {
  if (currentPrepared(h, p)) return;
  dropPrepared(p);
  const staticKey = h.staticKey;
  const ss = p.handshake.precomputedStaticStatic;
  if (!staticKey || !h.staticPublic || !ss) return;
  const ephemeral = importPrivateKey(clamp(h.rng.bytes(32)));
  const initiation = prepareInitiation({
    localStaticPrivate: staticKey,
    localStaticPublic: h.staticPublic,
    remoteStaticPublic: p.publicKey,
    ephemeralPrivate: ephemeral,
    staticStatic: ss,
  });
  if (!initiation) {
    disposePrivateKey(ephemeral);
    return;
  }
  p.handshake.prepared = { initiation, ephemeral, staticKey, staticStatic: ss };
}

/** The peer's prepared initiation when it was made with today's keys, else null. */
function currentPrepared(h: HandshakeHost, p: Peer): Prepared | null {
  const pre = p.handshake.prepared;
  return pre &&
    pre.staticKey === h.staticKey &&
    pre.staticStatic === p.handshake.precomputedStaticStatic
    ? pre
    : null;
}

/** Forgets (and frees the ephemeral key of) a prepared initiation. */
export function dropPrepared(p: Peer): void {
  const pre = p.handshake.prepared;
  if (!pre) return;
  p.handshake.prepared = null;
  disposePrivateKey(pre.ephemeral);
}

export function createMessageInitiation(
  h: HandshakeHost,
  p: Peer,
  type = MESSAGE_INITIATION_TYPE,
): Uint8Array | null {
  if (!h.staticPrivate || !h.staticPublic || !p.handshake.precomputedStaticStatic) return null;
  clearHandshake(h, p);
  const hs = p.handshake;
  // each initiation uses its own ephemeral: a preparation is used once
  prepareNextInitiation(h, p);
  const pre = hs.prepared;
  hs.prepared = null;
  if (!pre) return null;
  // the next preparation is scheduled by the caller once the message is out (send.ts)
  const out = finishInitiation(pre.initiation, tai64n(h.clock.wallNow(), h.tai64nNanos?.() ?? 0));
  hs.localIndex = newIndex(h, { peer: p, keypair: null });
  hs.localEphemeral = pre.ephemeral;
  hs.chain = out.state;
  hs.state = 'initiation-created';
  return encodeInitiation(
    type,
    hs.localIndex,
    out.ephemeralPublic,
    out.encryptedStatic,
    out.encryptedPayload,
  );
}

/** Returns the peer on success; the message's macs must already be checked. */
export function consumeMessageInitiation(h: HandshakeHost, msg: Uint8Array): Peer | null {
  if (!h.staticPrivate || !h.staticPublic) return null;
  const d = decodeInitiation(msg);
  let peer: Peer | undefined;
  const r = consumeInitiation({
    localStaticPrivate: h.staticKey ?? h.staticPrivate,
    localStaticPublic: h.staticPublic,
    ephemeralPublic: d.ephemeral,
    encryptedStatic: d.encStatic,
    encryptedPayload: d.encTimestamp,
    lookup: (spub) => {
      peer = h.peerByKey(spub);
      return peer?.handshake.precomputedStaticStatic ?? null;
    },
  });
  if (!r || !peer) return null;
  const hs = peer.handshake;
  const now = h.clock.now();
  // replay and flood protection
  if (!tai64nAfter(r.payload, hs.lastTimestamp)) return null;
  if (now - hs.lastInitiationConsumed <= HANDSHAKE_INITIATION_RATE) return null;
  clearHandshake(h, peer);
  hs.chain = r.state;
  hs.remoteEphemeral = Uint8Array.from(d.ephemeral); // the datagram is the bind's
  hs.remoteIndex = d.sender;
  hs.lastTimestamp = r.payload;
  hs.lastInitiationConsumed = now;
  hs.state = 'initiation-consumed';
  return peer;
}

export function createMessageResponse(h: HandshakeHost, p: Peer, type: number): Uint8Array | null {
  const hs = p.handshake;
  if (hs.state !== 'initiation-consumed' || !hs.chain || !hs.remoteEphemeral) return null;
  const eph = importPrivateKey(clamp(h.rng.bytes(32)));
  const out = createResponse({
    state: hs.chain,
    remoteEphemeral: hs.remoteEphemeral,
    remoteStaticPublic: p.publicKey,
    ephemeralPrivate: eph,
    psk: hs.presharedKey,
    payload: new Uint8Array(0),
  });
  if (!out) {
    disposePrivateKey(eph);
    return null;
  }
  hs.localIndex = newIndex(h, { peer: p, keypair: null });
  hs.localEphemeral = eph;
  hs.chain = out.state;
  hs.state = 'response-created';
  return encodeResponse(
    type,
    hs.localIndex,
    hs.remoteIndex,
    out.ephemeralPublic,
    out.encryptedPayload,
  );
}

export function consumeMessageResponse(h: HandshakeHost, msg: Uint8Array): Peer | null {
  if (!h.staticPrivate) return null;
  const d = decodeResponse(msg);
  const e = h.indices.get(d.receiver);
  if (!e || e.keypair !== null) return null;
  const p = e.peer;
  const hs = p.handshake;
  if (
    hs.state !== 'initiation-created' ||
    !hs.chain ||
    !hs.localEphemeral ||
    hs.localIndex !== d.receiver
  )
    return null;
  const r = consumeResponse({
    state: hs.chain,
    localStaticPrivate: h.staticKey ?? h.staticPrivate,
    localEphemeralPrivate: hs.localEphemeral,
    ephemeralPublic: d.ephemeral,
    encryptedPayload: d.encEmpty,
    psk: hs.presharedKey,
  });
  if (!r) return null;
  hs.chain = r.state;
  hs.remoteIndex = d.sender;
  hs.state = 'response-consumed';
  return p;
}

/**
 * Derives the transport keypair from the finished handshake and rotates keypairs: the
 * initiator uses it at once; the responder parks it in `next` until the initiator confirms
 * it with a first transport packet.
 */
export function beginSymmetricSession(h: HandshakeHost, p: Peer): Keypair | null {
  const hs = p.handshake;
  let isInitiator: boolean;
  if (hs.state === 'response-consumed') isInitiator = true;
  else if (hs.state === 'response-created') isInitiator = false;
  else return null;
  const [t1, t2] = split(hs.chain!.ck);
  const kp: Keypair = {
    sendKey: isInitiator ? t1 : t2,
    recvKey: isInitiator ? t2 : t1,
    sendNonce: 0,
    replay: new ReplayFilter(),
    isInitiator,
    created: h.clock.now(),
    localIndex: hs.localIndex,
    remoteIndex: hs.remoteIndex,
  };
  h.indices.set(kp.localIndex, { peer: p, keypair: kp });
  hs.localIndex = 0;
  clearHandshake(h, p);
  const k = p.keypairs;
  if (isInitiator) {
    if (k.next) {
      deleteKeypair(h, k.previous);
      deleteKeypair(h, k.current);
      k.previous = k.next;
      k.next = null;
    } else {
      deleteKeypair(h, k.previous);
      k.previous = k.current;
    }
    k.current = kp;
  } else {
    deleteKeypair(h, k.next);
    deleteKeypair(h, k.previous);
    k.previous = null;
    k.next = kp;
  }
  return kp;
}

/** Key confirmation: the first packet on `next` promotes it. True if a rotation happened. */
export function receivedWithKeypair(h: HandshakeHost, p: Peer, kp: Keypair): boolean {
  const k = p.keypairs;
  if (k.next !== kp) return false;
  deleteKeypair(h, k.previous);
  k.previous = k.current;
  k.current = kp;
  k.next = null;
  return true;
}

export function deleteKeypair(h: HandshakeHost, kp: Keypair | null): void {
  if (kp && h.indices.get(kp.localIndex)?.keypair === kp) h.indices.delete(kp.localIndex);
}

export function isOwnKey(h: HandshakeHost, pub: Uint8Array): boolean {
  return !!h.staticPublic && keysEqual(h.staticPublic, pub);
}
