/**
 * Per-peer state: static identity, handshake, keypairs, cookie generator, timers, staged
 * packets and counters. Behaviour lives in device.ts / handshake.ts / timers.ts.
 */
import type { Endpoint } from '../conn/bind.js';
import { DEFAULT_UDP_WINDOW } from '../constants.js';
import { CookieGenerator } from '../noise/cookie.js';
import type { PreparedInitiation, SymmetricState } from '../noise/handshake.js';
import type { PrivateKey } from '../crypto/x25519.js';
import { type UintRange, ZERO_RANGE } from '../awg/range.js';
import { type Keypairs, emptyKeypairs } from './keypair.js';
import { Timer } from './timer.js';
import type { Clock } from '../clock.js';

export type HandshakeState =
  | 'zeroed'
  | 'initiation-created'
  | 'initiation-consumed'
  | 'response-created'
  | 'response-consumed';

export interface Handshake {
  state: HandshakeState;
  chain: SymmetricState | null;
  localEphemeral: PrivateKey | null;
  remoteEphemeral: Uint8Array | null;
  /** the next initiation up to its timestamp, prepared while idle (device/handshake.ts) */
  prepared: Prepared | null;
  localIndex: number;
  remoteIndex: number;
  precomputedStaticStatic: Uint8Array | null;
  presharedKey: Uint8Array;
  lastTimestamp: Uint8Array;
  lastInitiationConsumed: number;
  lastSentHandshake: number;
}

/** A prepared initiation and the keys it was prepared with (stale when either changed). */
export interface Prepared {
  initiation: PreparedInitiation;
  ephemeral: PrivateKey;
  staticKey: PrivateKey;
  staticStatic: Uint8Array;
}

export interface PeerTimers {
  retransmitHandshake: Timer;
  sendKeepalive: Timer;
  newHandshake: Timer;
  zeroKeyMaterial: Timer;
  persistentKeepalive: Timer;
  handshakeAttempts: number;
  maxHandshakeAttempts: number;
  needAnotherKeepalive: boolean;
  sentLastMinuteHandshake: boolean;
}

export interface PeerExpiry {
  retransmitHandshake(p: Peer): void;
  sendKeepalive(p: Peer): void;
  newHandshake(p: Peer): void;
  zeroKeyMaterial(p: Peer): void;
  persistentKeepalive(p: Peer): void;
}

export class Peer {
  readonly handshake: Handshake;
  keypairs: Keypairs = emptyKeypairs();
  readonly cookieGenerator: CookieGenerator;
  readonly timers: PeerTimers;
  endpoint: Endpoint | null = null;
  /** set when configured with a hostname; re-resolved after repeated handshake failures */
  endpointHost: { host: string; port: number } | null = null;
  persistentKeepalive: UintRange = ZERO_RANGE;
  staged: Uint8Array[] = [];
  running = false;
  txBytes = 0;
  rxBytes = 0;
  /** Unix ms of the last completed handshake; 0 = never */
  lastHandshakeWall = 0;
  /** clock ms of the first initiation still unanswered (null: none pending); health uses it */
  handshakePendingSince: number | null = null;
  /** clock ms of the first data message sent since the last answer — a data message, or a keepalive that can answer it (receive.ts keepaliveAnswers) — (null: none unanswered); health's data path */
  dataUnansweredSince: number | null = null;
  /** the last answer was a keepalive (the peer only answers our data: a one-way flow) */
  lastRxKeepalive = false;
  udpWindow = DEFAULT_UDP_WINDOW;
  /** a handshake boost waits for this peer's first data packet (dataplane/boost.ts) */
  boosted = false;

  constructor(
    readonly publicKey: Uint8Array,
    clock: Clock,
    expiry: PeerExpiry,
  ) {
    this.cookieGenerator = new CookieGenerator(publicKey);
    this.handshake = {
      state: 'zeroed',
      chain: null,
      localEphemeral: null,
      remoteEphemeral: null,
      prepared: null,
      localIndex: 0,
      remoteIndex: 0,
      precomputedStaticStatic: null,
      presharedKey: new Uint8Array(32),
      lastTimestamp: new Uint8Array(12),
      lastInitiationConsumed: -Infinity,
      lastSentHandshake: -Infinity,
    };
    this.timers = {
      retransmitHandshake: new Timer(clock, () => expiry.retransmitHandshake(this)),
      sendKeepalive: new Timer(clock, () => expiry.sendKeepalive(this)),
      newHandshake: new Timer(clock, () => expiry.newHandshake(this)),
      zeroKeyMaterial: new Timer(clock, () => expiry.zeroKeyMaterial(this)),
      persistentKeepalive: new Timer(clock, () => expiry.persistentKeepalive(this)),
      handshakeAttempts: 0,
      maxHandshakeAttempts: 0,
      needAnotherKeepalive: false,
      sentLastMinuteHandshake: false,
    };
  }

  get publicKeyHex(): string {
    return Buffer.from(this.publicKey).toString('hex');
  }
}
