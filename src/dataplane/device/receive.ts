/**
 * Inbound path (wireguard-go `receive.go`): datagrams from the bind are classified by the AWG
 * codec; handshake messages are checked (mac1; under load mac2 and the rate limiter) and
 * consumed, cookie replies stored, transport messages opened, replay-checked and, when the
 * inner source belongs to the sending peer (cryptokey routing), written to the TUN.
 */
import type { Endpoint } from '../conn/bind.js';
import {
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MIN_MESSAGE_SIZE,
  UNDER_LOAD_AFTER_TIME,
} from '../constants.js';
import { TAG_SIZE, openCounter } from '../crypto/aead.js';
import { COOKIE, TRANSPORT, readU32, readU64 } from '../noise/messages.js';
import {
  beginSymmetricSession,
  consumeMessageInitiation,
  consumeMessageResponse,
  receivedWithKeypair,
} from './handshake.js';
import type { PoolQueue } from '../crypto/pool-queue.js';
import { PerSecond } from '../rate.js';
import type { Keypair } from './keypair.js';
import type { Peer } from './peer.js';
import type { RateLimiter } from './ratelimiter.js';
import { clampMss } from '../tun/mss.js';
import { SlabViews } from '../views.js';
import {
  type SendHost,
  sendHandshakeCookie,
  sendHandshakeInitiation,
  sendHandshakeResponse,
  sendKeepalive,
  mssLimit,
  sendStagedPackets,
  sourceBytes,
} from './send.js';
import {
  timersAnyAuthenticatedPacketReceived,
  timersAnyAuthenticatedPacketTraversal,
  timersDataReceived,
  timersHandshakeComplete,
  timersSessionDerived,
} from './timers.js';

/** What the receive path needs from the device. */
export interface ReceiveHost extends SendHost {
  readonly rateLimiter: RateLimiter;
  readonly load: HandshakeLoad;
  /** roaming: an authenticated packet moves the peer's endpoint to its source */
  setEndpointFromPacket(p: Peer, from: Endpoint): void;
  /** inner packets for the TUN, written at the end of the receive batch */
  readonly tunOut: Uint8Array[];
  /**
   * transport messages are opened into this slab; `tunOut` holds views of it until
   * `flushTun` writes them and starts the slab over at `rxOff` 0
   */
  readonly rxSlab: Buffer;
  rxOff: number;
  flushTun(): void;
  /** the peer's data arrived while `p.boosted`: the handshake boost for it ends once the batch is written */
  unboost(p: Peer): void;
  /**
   * the crypto pool's receive queue (crypto/pool.ts): a batch's transport messages are opened
   * on every core at its end (`finishOpens`), then handled in arrival order; null: opened
   * one by one as they arrive (AWG_CRYPTO_THREADS=0)
   */
  readonly openQueue: PoolQueue | null;
  /** the messages queued on openQueue, in arrival order (`pendingOpens` of them are live) */
  readonly opens: PendingOpen[];
  pendingOpens: number;
}

/** A transport message whose opening is queued, and what handling it needs afterwards. */
export interface PendingOpen {
  p: Peer;
  kp: Keypair;
  counter: number;
  from: Endpoint;
  datagramLength: number;
  /** where in rxSlab its plaintext goes (reserved when queued) */
  at: number;
  job: number;
}

/**
 * "Under load" = handshake messages per second at or above the threshold, held for
 * UNDER_LOAD_AFTER_TIME (a single-threaded engine has no handshake queue to measure).
 */
export class HandshakeLoad {
  private until = -Infinity;
  private readonly perSecond = new PerSecond();

  constructor(private readonly threshold: number) {}

  isUnderLoad(now: number): boolean {
    return now < this.until;
  }

  count(now: number): void {
    if (this.perSecond.add(1, now) >= this.threshold) this.until = now + UNDER_LOAD_AFTER_TIME;
  }
}

export function routineReceiveIncoming(h: ReceiveHost, data: Uint8Array, from: Endpoint): void {
  if (!h.isUp()) return;
  const at = h.codec.transportOnly(data);
  if (at >= 0) {
    receiveTransport(h, data, at, from, data.length);
    return;
  }
  // size and type can fit more than one kind (codec.candidates): the first that authenticates wins
  for (const c of h.codec.candidates(data)) {
    switch (c.kind) {
      case 1:
      case 2:
        // what arrived before it is handled before it (queued transport messages)
        if (h.pendingOpens) finishOpens(h);
        if (receiveHandshake(h, c.kind, c.msg, from)) return;
        break;
      case 3:
        if (h.pendingOpens) finishOpens(h);
        if (receiveCookieReply(h, c.msg)) return;
        break;
      case 4:
        receiveTransport(h, c.msg, 0, from, data.length);
        return;
    }
  }
}

/** false when mac1 does not authenticate the message (another reading may); true once consumed. */
function receiveHandshake(h: ReceiveHost, kind: 1 | 2, msg: Uint8Array, from: Endpoint): boolean {
  if (!h.staticPublic || !h.cookieChecker.checkMAC1(msg)) return false;
  h.load.count(h.clock.now());
  if (h.load.isUnderLoad(h.clock.now())) {
    if (!h.cookieChecker.checkMAC2(msg, sourceBytes(from), h.clock.now())) {
      sendHandshakeCookie(h, msg, from);
      return true;
    }
    if (!h.rateLimiter.allow(from.address, h.clock.now())) return true;
  }
  if (kind === 1) {
    const p = consumeMessageInitiation(h, msg);
    if (!p || !p.running) return true;
    h.setEndpointFromPacket(p, from);
    p.rxBytes += msg.length;
    timersAnyAuthenticatedPacketTraversal(h, p);
    timersAnyAuthenticatedPacketReceived(h, p);
    sendHandshakeResponse(h, p);
  } else {
    const p = consumeMessageResponse(h, msg);
    if (!p || !p.running) return true;
    h.setEndpointFromPacket(p, from);
    p.rxBytes += msg.length;
    timersAnyAuthenticatedPacketTraversal(h, p);
    // before the send: the data sent next arms the new-handshake timer this disarms
    timersAnyAuthenticatedPacketReceived(h, p);
    if (!beginSymmetricSession(h, p)) return true;
    // the packets that waited for the session (or a keepalive) first: the session's timers,
    // the handshake's bookkeeping and its event are nothing they need
    sendKeepalive(h, p);
    timersSessionDerived(h, p);
    timersHandshakeComplete(h, p);
  }
  return true;
}

/** true when the reply authenticated and its cookie was stored */
function receiveCookieReply(h: ReceiveHost, msg: Uint8Array): boolean {
  const e = h.indices.get(readU32(msg, COOKIE.receiver));
  if (!e) return false;
  return e.peer.cookieGenerator.consumeReply(msg, h.clock.now());
}

/** The transport message `msg[at…]` (the datagram, or a reading of it). */
function receiveTransport(
  h: ReceiveHost,
  msg: Uint8Array,
  at: number,
  from: Endpoint,
  datagramLength: number,
): void {
  if (msg.length - at < MIN_MESSAGE_SIZE) return;
  const e = h.indices.get(readU32(msg, at + TRANSPORT.receiver));
  if (!e || !e.keypair) return;
  const { peer: p, keypair: kp } = e;
  if (!p.running || h.clock.now() - kp.created >= h.timing.rejectAfterTime()) return;
  const counter = readU64(msg, at + TRANSPORT.counter);
  if (!(counter < h.rejectAfterMessages)) return;
  // opened into the receive slab (the datagram is the bind's, valid only until the batch ends)
  const sealed = msg.subarray(at + MESSAGE_TRANSPORT_HEADER_SIZE);
  const room = sealed.length - TAG_SIZE;
  if (h.rxOff + room > h.rxSlab.length) h.flushTun();
  const q = h.openQueue;
  if (q && room <= h.rxSlab.length) {
    let job = q.open(kp.recvKey, counter, sealed, h.rxSlab, h.rxOff);
    if (job < 0 && h.pendingOpens) {
      finishOpens(h); // the queue is full: what is queued first (the slab keeps its offset)
      job = q.open(kp.recvKey, counter, sealed, h.rxSlab, h.rxOff);
    }
    if (job >= 0) {
      const o =
        h.opens[h.pendingOpens] ??
        (h.opens[h.pendingOpens] = { p, kp, counter, from, datagramLength, at: 0, job });
      o.p = p;
      o.kp = kp;
      o.counter = counter;
      o.from = from;
      o.datagramLength = datagramLength;
      o.at = h.rxOff;
      o.job = job;
      h.pendingOpens++;
      h.rxOff += (room + 7) & ~7;
      return;
    }
  }
  const slab = h.reuseBuffers && room <= h.rxSlab.length ? h.rxSlab : Buffer.allocUnsafe(room);
  const into = slab === h.rxSlab ? h.rxOff : 0;
  const n = openCounter(kp.recvKey, counter, sealed, slab, into);
  if (n < 0) return;
  if (afterOpen(h, p, kp, counter, from, datagramLength, slab, into, n) && slab === h.rxSlab)
    h.rxOff += (n + 7) & ~7;
}

/**
 * Opens the queued transport messages (on the crypto pool), then handles each in arrival
 * order. Called at the end of every receive batch (the datagrams are views of the bind's
 * block until then), before a handshake message of the batch, and when the slab is full.
 */
export function finishOpens(h: ReceiveHost): void {
  const q = h.openQueue;
  const n = h.pendingOpens;
  if (!q || n === 0) return;
  q.run();
  h.pendingOpens = 0;
  const slab = h.rxSlab;
  for (let i = 0; i < n; i++) {
    const o = h.opens[i]!;
    const len = q.result(o.job);
    if (len >= 0) afterOpen(h, o.p, o.kp, o.counter, o.from, o.datagramLength, slab, o.at, len);
  }
  q.reset();
}

/**
 * An authenticated transport message, its plaintext `buf[at, at + n)`: replay, timers,
 * roaming, cryptokey routing. true: queued for the TUN (one view of `buf`: the IP packet).
 */
function afterOpen(
  h: ReceiveHost,
  p: Peer,
  kp: Keypair,
  counter: number,
  from: Endpoint,
  datagramLength: number,
  buf: Uint8Array,
  at: number,
  n: number,
): boolean {
  if (!kp.replay.validate(counter, h.rejectAfterMessages)) return false;
  if (receivedWithKeypair(h, p, kp)) {
    timersHandshakeComplete(h, p);
    sendStagedPackets(h, p);
  }
  keepKeyFreshReceiving(h, p);
  timersAnyAuthenticatedPacketTraversal(h, p);
  timersAnyAuthenticatedPacketReceived(h, p);
  p.rxBytes += datagramLength;
  const w = h.codec.transportPrefix + MESSAGE_TRANSPORT_HEADER_SIZE + n;
  if (w > p.udpWindow) p.udpWindow = w;
  h.setEndpointFromPacket(p, from);
  // keepalive: empty, or (AWG 3 padded keepalives) first byte zero; IP packets start with 4/6
  const keepalive = n === 0 || buf[at] === 0;
  if (!keepalive || keepaliveAnswers(h, p)) {
    p.dataUnansweredSince = null;
    p.lastRxKeepalive = keepalive;
  }
  if (keepalive) return false;
  // before the checks, as wireguard-go and the kernel: any data arms the answering keepalive
  timersDataReceived(h, p);
  const len = ipLength(buf, at, n);
  if (len < 0) return false;
  const v4 = buf[at]! >> 4 === 4;
  if (h.allowedIps.lookupAt(buf, at + (v4 ? 12 : 8), v4 ? 4 : 16) !== p) return false;
  const pkt = rxViews.of(buf, at, at + len);
  // the SYN sets what our host sends: the path's whole size, which we do not pad past
  if (h.mssClamp && h.codec.transportPrefix > 0) clampMss(pkt, 0, len, mssLimit(h, p, true));
  if (p.boosted) h.unboost(p);
  h.tunOut.push(pkt);
  return true;
}

/** the receive slab's packet views (one thread: shared by the process's devices) */
const rxViews = new SlabViews();

/**
 * Does a keepalive answer our unanswered data? A passive keepalive goes out KEEPALIVE_TIMEOUT
 * after the data that armed it arrived, or (re-armed while more data came) a timeout after
 * the last one: one received sooner than two timeouts (+ 2 s for the trip and the timers)
 * after our first unanswered send may have been armed by data sent before it — before a
 * fault — and says nothing about this series (health: it would restart the count, or end a
 * no-data down that has not ended). Data messages always answer.
 */
function keepaliveAnswers(h: ReceiveHost, p: Peer): boolean {
  const since = p.dataUnansweredSince;
  return since === null || h.clock.now() - since >= 2 * h.timing.keepaliveTimeout() + 2_000;
}

function keepKeyFreshReceiving(h: ReceiveHost, p: Peer): void {
  if (p.timers.sentLastMinuteHandshake) return;
  const kp = p.keypairs.current;
  if (kp && kp.isInitiator && h.clock.now() - kp.created > h.timing.lastMinuteRekey()) {
    p.timers.sentLastMinuteHandshake = true;
    sendHandshakeInitiation(h, p, false);
  }
}

/**
 * The IP packet's length from its length field (the plaintext `b[at, at + n)` may be longer:
 * WireGuard's padding); −1 when it is not a sane IPv4/IPv6 packet.
 */
function ipLength(b: Uint8Array, at: number, n: number): number {
  const v = b[at]! >> 4;
  if (v === 4 && n >= 20) {
    const len = (b[at + 2]! << 8) | b[at + 3]!;
    return len >= 20 && len <= n ? len : -1;
  }
  if (v === 6 && n >= 40) {
    const len = ((b[at + 4]! << 8) | b[at + 5]!) + 40;
    return len <= n ? len : -1;
  }
  return -1;
}
