/**
 * mac1/mac2 and cookie replies (docs/dataplane.md#cookies, wireguard-go `device/cookie.go`).
 * Messages passed in are the bare 148/92-byte WireGuard messages (no AWG framing) whose
 * last 32 bytes are mac1 ‖ mac2. Time is injected (`now` in ms, monotonic).
 */
import { COOKIE_REFRESH_TIME } from '../constants.js';
import { hash, mac, xopen, xseal } from '../crypto/index.js';
import { COOKIE } from './messages.js';

export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export function mac1Key(receiverStatic: Uint8Array): Uint8Array {
  return hash(Buffer.from(LABEL_MAC1), receiverStatic);
}

export function cookieKey(replySenderStatic: Uint8Array): Uint8Array {
  return hash(Buffer.from(LABEL_COOKIE), replySenderStatic);
}

function equal16(a: Uint8Array, b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < 16; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

/** Responder side: verifies macs of messages sent to us and issues cookies. */
export class CookieChecker {
  private mac1KeyValue: Uint8Array;
  private encryptionKey: Uint8Array;
  private secret: Uint8Array = new Uint8Array(32);
  private secretSet = -Infinity;

  constructor(
    localStatic: Uint8Array,
    private readonly randomBytes: (n: number) => Uint8Array,
  ) {
    this.mac1KeyValue = mac1Key(localStatic);
    this.encryptionKey = cookieKey(localStatic);
  }

  /** Re-key after the local static key changes. */
  init(localStatic: Uint8Array): void {
    this.mac1KeyValue = mac1Key(localStatic);
    this.encryptionKey = cookieKey(localStatic);
    this.secretSet = -Infinity;
  }

  checkMAC1(msg: Uint8Array): boolean {
    const n = msg.length;
    return equal16(mac(this.mac1KeyValue, msg.subarray(0, n - 32)), msg.subarray(n - 32, n - 16));
  }

  /** `source` = the sender's address bytes (any stable encoding: only we recompute it). */
  checkMAC2(msg: Uint8Array, source: Uint8Array, now: number): boolean {
    if (now - this.secretSet > COOKIE_REFRESH_TIME) return false;
    const cookie = mac(this.secret, source);
    const n = msg.length;
    return equal16(mac(cookie, msg.subarray(0, n - 16)), msg.subarray(n - 16));
  }

  /** Fixed secret, for vectors. */
  setSecret(secret: Uint8Array, now: number): void {
    this.secret = Uint8Array.from(secret);
    this.secretSet = now;
  }

  /**
   * A 64-byte cookie reply to `msg` (type field left as 3; AWG framing rewrites it).
   * `nonce` is injectable for vectors.
   */
  createReply(
    msg: Uint8Array,
    receiverIndex: number,
    source: Uint8Array,
    now: number,
    nonce?: Uint8Array,
  ): Uint8Array {
    if (now - this.secretSet > COOKIE_REFRESH_TIME) {
      this.secret = this.randomBytes(32);
      this.secretSet = now;
    }
    const cookie = mac(this.secret, source);
    const n = msg.length;
    const mac1 = msg.subarray(n - 32, n - 16);
    const nonce24 = nonce ?? this.randomBytes(24);
    const out = new Uint8Array(COOKIE.size);
    const v = new DataView(out.buffer);
    v.setUint32(COOKIE.type, 3, true);
    v.setUint32(COOKIE.receiver, receiverIndex, true);
    out.set(nonce24, COOKIE.nonce);
    out.set(xseal(this.encryptionKey, nonce24, cookie, mac1), COOKIE.cookie);
    return out;
  }
}

/** Initiator side (one per peer): adds macs to messages we send, consumes cookie replies. */
export class CookieGenerator {
  private mac1KeyValue: Uint8Array;
  private decryptionKey: Uint8Array;
  private cookie: Uint8Array = new Uint8Array(16);
  private cookieSet = -Infinity;
  private lastMAC1: Uint8Array | null = null;

  constructor(remoteStatic: Uint8Array) {
    this.mac1KeyValue = mac1Key(remoteStatic);
    this.decryptionKey = cookieKey(remoteStatic);
  }

  /** Fills mac1 and mac2 in place. */
  addMacs(msg: Uint8Array, now: number): void {
    const n = msg.length;
    const m1 = mac(this.mac1KeyValue, msg.subarray(0, n - 32));
    msg.set(m1, n - 32);
    this.lastMAC1 = m1;
    if (now - this.cookieSet > COOKIE_REFRESH_TIME) {
      msg.fill(0, n - 16);
    } else {
      msg.set(mac(this.cookie, msg.subarray(0, n - 16)), n - 16);
    }
  }

  /** Returns true if the reply authenticated against our last mac1 and the cookie was stored. */
  consumeReply(reply: Uint8Array, now: number): boolean {
    if (!this.lastMAC1) return false;
    const cookie = xopen(
      this.decryptionKey,
      reply.subarray(COOKIE.nonce, COOKIE.nonce + 24),
      reply.subarray(COOKIE.cookie, COOKIE.size),
      this.lastMAC1,
    );
    if (!cookie) return false;
    this.cookie = cookie;
    this.cookieSet = now;
    return true;
  }

  hasCookie(now: number): boolean {
    return now - this.cookieSet <= COOKIE_REFRESH_TIME;
  }
}
