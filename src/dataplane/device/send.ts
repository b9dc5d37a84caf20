/**
 * Outbound path (wireguard-go `send.go`): packets read from the TUN are routed to a peer by
 * destination (cryptokey routing), staged, sealed with the peer's current keypair and sent
 * as AWG-framed transport messages; without a usable keypair a handshake initiation goes
 * out instead and the packets wait for it. Also the handshake messages we originate:
 * initiation, response, cookie reply.
 */
import type { AwgCodec } from '../awg/codec.js';
import type { AwgParams } from '../awg/params.js';
import type { Bind, Endpoint } from '../conn/bind.js';
import {
  DEFAULT_UDP_WINDOW,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  QUEUE_STAGED_SIZE,
} from '../constants.js';
import { TAG_SIZE, sealCounter } from '../crypto/aead.js';
import type { PoolQueue } from '../crypto/pool-queue.js';
import type { CookieChecker } from '../noise/cookie.js';
import { COOKIE, TRANSPORT, readU32, writeU32, writeU64 } from '../noise/messages.js';
import { clampMss, innerLimit, pathPlaintext } from '../tun/mss.js';
import type { TunDevice } from '../tun/tun.js';
import { SlabViews } from '../views.js';
import ipaddr from '../../util/ipaddr.js';
import { type AllowedIPs, addressBytes } from './allowedips.js';
import {
  type HandshakeHost,
  beginSymmetricSession,
  createMessageInitiation,
  createMessageResponse,
} from './handshake.js';
import type { Keypair } from './keypair.js';
import type { Peer } from './peer.js';
import {
  type TimerHost,
  timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal,
  timersDataSent,
  timersHandshakeInitiated,
  timersSessionDerived,
} from './timers.js';

/** What the send path needs from the device. */
export interface SendHost extends TimerHost, HandshakeHost {
  readonly tun: TunDevice;
  readonly bind: Bind;
  readonly codec: AwgCodec;
  readonly awg: AwgParams;
  readonly allowedIps: AllowedIPs<Peer>;
  readonly cookieChecker: CookieChecker;
  /** transport messages are sealed into this slab, reused once the bind has sent them */
  readonly txSlab: Buffer;
  /** false: a buffer per transport message instead (AWG_BUFFER_REUSE=0) */
  readonly reuseBuffers: boolean;
  /** TCP SYNs carried behind a transport prefix get an MSS that fits the path (tun/mss.ts) */
  readonly mssClamp: boolean;
  readonly rekeyAfterMessages: number;
  readonly rejectAfterMessages: number;
  /**
   * the crypto pool's send queue (crypto/pool.ts): transport messages of a burst are sealed
   * on every core before the burst is sent; null: sealed inline (AWG_CRYPTO_THREADS=0)
   */
  readonly sealQueue: PoolQueue | null;
  /** an initiation went out with data packets staged behind it (the handshake boost) */
  boostHandshake(p: Peer): void;
}

/**
 * A batch from the TUN: stage each packet on the peer its destination routes to, then flush.
 * The packets are views of the TUN's read slab, valid only during this call: what stays
 * staged (no session yet) is copied.
 */
export function routineReadFromTun(h: SendHost, packets: Uint8Array[]): void {
  if (!h.isUp()) return;
  const touched = new Set<Peer>();
  // a batch's packets mostly go to one peer: the set is asked only when the peer changes
  let last: Peer | null = null;
  const clamp = h.mssClamp && h.codec.transportPrefix > 0;
  for (const pkt of packets) {
    const v = pkt[0]! >> 4;
    const p =
      v === 4 && pkt.length >= 20
        ? h.allowedIps.lookupAt(pkt, 16, 4)
        : v === 6 && pkt.length >= 40
          ? h.allowedIps.lookupAt(pkt, 24, 16)
          : null;
    if (!p || !p.running) continue;
    if (clamp) clampMss(pkt, 0, pkt.length, mssLimit(h, p));
    // a TUN batch can carry more than the staging queue holds (a few TCP super-packets split
    // into segments): with a session they go out now; without one the oldest are dropped
    if (p.staged.length >= QUEUE_STAGED_SIZE) sendStagedPackets(h, p);
    stagePacket(p, pkt);
    if (p !== last) {
      touched.add(p);
      last = p;
    }
  }
  for (const p of touched) {
    sendStagedPackets(h, p);
    keepStaged(p);
  }
}

/**
 * The largest inner packet whose transport datagram to `p` fits the path (tun/mss.ts), for the
 * segments the peer sends (it pads them up to its MTU; a SYN from the TUN sets them) or, with
 * `ours`, for those we send (padded only up to `pathPlaintext`; a SYN to the TUN sets them).
 */
export function mssLimit(h: SendHost, p: Peer, ours = false): number {
  const v6 = endpointV6(p);
  const mtu = h.tun.mtu();
  return ours
    ? pathPlaintext(mtu, h.codec.transportPrefix, v6)
    : innerLimit(mtu, h.codec.transportPrefix, v6, h.codec.paddingAdditionMax);
}

function endpointV6(p: Peer): boolean {
  const a = p.endpoint?.address;
  // unknown endpoint: IPv6's larger headers; a v4-mapped address travels as IPv4
  return a === undefined || (a.includes(':') && !a.startsWith('::ffff:'));
}

/** Copies staged packets that are views of a larger buffer (the TUN's slab) into their own. */
function keepStaged(p: Peer): void {
  const s = p.staged;
  for (let i = 0; i < s.length; i++) {
    const b = s[i]!;
    if (b.byteLength !== b.buffer.byteLength) s[i] = new Uint8Array(b);
  }
}

function stagePacket(p: Peer, pkt: Uint8Array): void {
  if (p.staged.length >= QUEUE_STAGED_SIZE) p.staged.shift();
  p.staged.push(pkt);
}

/**
 * A data message the peer must answer (health: is the data path alive, is it back?).
 * With `from` (our tunnel address, which the peer's cryptokey routing accepts as our source):
 * an IP header from it, TTL (hop limit) 1, protocol 253 (RFC 3692), and nothing leaves the
 * peer. Two of them, for the two kinds of peer kernel:
 * - to TEST-NET (192.0.2.1 / 2001:db8::1, RFC 5737/3849): a kernel that forwards (a VPN
 *   server does) answers ICMP time exceeded at once;
 * - to the peer's endpoint address, when it is of the same family: a kernel that does not
 *   forward drops the first without a word (ip_error sends nothing with forwarding off), but
 *   its endpoint address is its own, so this one is delivered locally and answered "protocol
 *   unreachable" at once (a peer behind NAT has another address: only the first can answer).
 * Without `from`: the same header from 0.0.0.0, which every WireGuard drops after arming its
 * keepalive timer (wireguard-go and the kernel call timersDataReceived before the source
 * check), so a live peer answers within KEEPALIVE_TIMEOUT. Only on a usable session: never
 * starts a handshake.
 */
export function sendDataProbe(h: SendHost, p: Peer, from?: string): boolean {
  if (!keypairUsable(h, p.keypairs.current) || p.staged.length) return false;
  const src = from === undefined ? null : addressBytes(from);
  p.staged.push(src?.length === 16 ? probe6(src, TEST_NET6) : probe4(src, TEST_NET4));
  const own = src && p.endpoint ? addressBytes(p.endpoint.address) : null;
  if (src && own?.length === src.length && probeTarget(p.endpoint!.address))
    p.staged.push(own.length === 16 ? probe6(src, own) : probe4(src, own));
  sendStagedPackets(h, p);
  return true;
}

const TEST_NET4 = Uint8Array.of(192, 0, 2, 1);
const TEST_NET6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1);

/** address kinds a kernel never takes as its own from a tunnel */
const NOT_A_TARGET = [
  'unspecified',
  'loopback',
  'multicast',
  'broadcast',
  'reserved',
  'ipv4Mapped',
];

/** an endpoint address the second probe may go to (ipaddr.js's ranges, as route/darwin.ts) */
function probeTarget(address: string): boolean {
  return !NOT_A_TARGET.includes(ipaddr.parse(address).range());
}

function probe4(src: Uint8Array | null, dst: Uint8Array): Uint8Array {
  const pkt = new Uint8Array(20);
  pkt.set([0x45, 0, 0, 20, 0, 0, 0, 0, 1, PROBE_PROTOCOL]);
  if (src) {
    pkt.set(src, 12);
    pkt.set(dst, 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += (pkt[i]! << 8) | pkt[i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    const c = ~sum & 0xffff;
    pkt[10] = c >> 8;
    pkt[11] = c & 0xff;
  }
  return pkt;
}

function probe6(src: Uint8Array, dst: Uint8Array): Uint8Array {
  const pkt = new Uint8Array(40);
  pkt[0] = 0x60;
  pkt[6] = PROBE_PROTOCOL;
  pkt[7] = 1;
  pkt.set(src, 8);
  pkt.set(dst, 24);
  return pkt;
}

/** RFC 3692's experimental protocol number: nothing on the peer handles it */
const PROBE_PROTOCOL = 253;

/** Queues a keepalive (unless data is already staged) and flushes. */
export function sendKeepalive(h: SendHost, p: Peer): void {
  if (p.staged.length === 0) p.staged.push(new Uint8Array(0));
  sendStagedPackets(h, p);
}

function keypairUsable(h: SendHost, kp: Keypair | null): kp is Keypair {
  return (
    !!kp &&
    kp.sendNonce < h.rejectAfterMessages &&
    h.clock.now() - kp.created < h.timing.rejectAfterTime()
  );
}

export function sendStagedPackets(h: SendHost, p: Peer): void {
  if (!h.isUp() || !p.running || p.staged.length === 0) return;
  const kp = p.keypairs.current;
  if (!keypairUsable(h, kp)) {
    sendHandshakeInitiation(h, p, false);
    return;
  }
  const mtu = h.tun.mtu();
  // padding stops where the datagram would outgrow the path: a packet that fits pads within
  // it, so full-size segments (clamped to it) make equal datagrams (tun/mss.ts)
  const s4 = h.codec.transportPrefix;
  const fit = s4 > 0 ? pathPlaintext(mtu, s4, endpointV6(p)) : mtu;
  const slab = h.txSlab;
  const out: Uint8Array[] = [];
  let at = 0;
  let data = false;
  let sent = false;
  const staged = p.staged;
  let i = 0;
  for (; i < staged.length; i++) {
    if (kp.sendNonce >= h.rejectAfterMessages) break;
    const pkt = staged[i]!;
    // sealed into the slab; a full slab (or sendmmsg's burst) is sent and the slab reused
    const pad = h.codec.transportPadding(pkt.length, pkt.length <= fit ? fit : mtu, p.udpWindow);
    const size =
      h.codec.transportPrefix + MESSAGE_TRANSPORT_HEADER_SIZE + pkt.length + pad + TAG_SIZE;
    if (out.length === TX_BURST || (out.length && at + size > slab.length)) {
      sent = flushOut(h, p, out, sent);
      out.length = 0;
      at = 0;
    }
    const inSlab = h.reuseBuffers && size <= slab.length;
    const d = inSlab ? txViews.of(slab, at, at + size) : Buffer.allocUnsafe(size);
    // sealed through the slab itself (the cipher keeps its address), a buffer of its own else
    jobOf[out.length] = inSlab
      ? encrypt(h, p, kp, pkt, pad, d, slab, at)
      : encrypt(h, p, kp, pkt, pad, d, d, 0);
    if (inSlab) at += (size + 7) & ~7;
    out.push(d);
    if (pkt.length) data = true;
  }
  staged.splice(0, i);
  if (out.length) sent = flushOut(h, p, out, sent);
  if (sent && data) {
    timersDataSent(h, p);
    p.dataUnansweredSince ??= h.clock.now();
  }
  if (p.staged.length) sendHandshakeInitiation(h, p, false);
  keepKeyFreshSending(h, p);
}

/** the send slab's datagram views (one thread: shared by the process's devices) */
const txViews = new SlabViews();

/** Datagrams per send() from the slab (sendmmsg takes up to 64 at a time). */
const TX_BURST = 64;

/** Sends a run of sealed datagrams; the timers that precede the first send of a batch run once. */
function flushOut(h: SendHost, p: Peer, out: Uint8Array[], sentBefore: boolean): boolean {
  if (h.sealQueue) sealQueued(h, h.sealQueue, out);
  if (!out.length) return sentBefore;
  if (!sentBefore) {
    timersAnyAuthenticatedPacketTraversal(h, p);
    timersAnyAuthenticatedPacketSent(h, p);
  }
  sendBuffers(h, p, out);
  return true;
}

/**
 * Seals `pkt ‖ zeros(pad)` into `d`, which is exactly the transport message's size and lies
 * in `buf` at `at` (the send slab, or `d` itself); with the crypto pool the seal is queued and
 * `sealQueued` completes the burst before it is sent.
 */
function encrypt(
  h: SendHost,
  p: Peer,
  kp: Keypair,
  pkt: Uint8Array,
  pad: number,
  d: Uint8Array,
  buf: Uint8Array,
  at: number,
): number {
  const counter = kp.sendNonce++;
  const codec = h.codec;
  const s4 = codec.transportPrefix;
  writeU32(d, s4 + TRANSPORT.type, codec.pickType(4));
  writeU32(d, s4 + TRANSPORT.receiver, kp.remoteIndex);
  writeU64(d, s4 + TRANSPORT.counter, counter);
  if (d.length > p.udpWindow) p.udpWindow = d.length;
  const q = h.sealQueue;
  if (q) {
    const job = q.seal(kp.sendKey, counter, pkt, pad, d, s4 + MESSAGE_TRANSPORT_HEADER_SIZE);
    if (job >= 0) return job;
    // no room in the queue (a burst of large packets from outside the slabs): sealed here
  }
  sealCounter(kp.sendKey, counter, pkt, pad, buf, at + s4 + MESSAGE_TRANSPORT_HEADER_SIZE);
  codec.finishTransport(d);
  return -1;
}

/**
 * Runs the burst's queued seals on the pool, then completes each datagram (prefix, header
 * protection: after sealing); a datagram whose seal failed is dropped from `out`. One sealed
 * inline because the queue was full (jobOf −1) was completed by `encrypt`.
 */
function sealQueued(h: SendHost, q: PoolQueue, out: Uint8Array[]): void {
  if (q.length === 0) return;
  q.run();
  let failed = 0;
  for (let i = 0; i < out.length; i++) {
    const d = out[i]!;
    const job = jobOf[i]!;
    if (job >= 0) {
      if (q.result(job) < 0) {
        failed++;
        continue;
      }
      h.codec.finishTransport(d);
    }
    if (failed) out[i - failed] = d;
  }
  q.reset();
  if (failed) out.length -= failed;
}

/** the queued seal of each datagram of the burst being built (−1: sealed inline) */
const jobOf = new Int32Array(TX_BURST);

function sendBuffers(h: SendHost, p: Peer, bufs: Uint8Array[]): boolean {
  if (!p.endpoint) return false;
  h.bind.send(bufs, p.endpoint);
  for (const b of bufs) p.txBytes += b.length;
  return true;
}

function keepKeyFreshSending(h: SendHost, p: Peer): void {
  const kp = p.keypairs.current;
  if (!kp) return;
  if (
    kp.sendNonce > h.rekeyAfterMessages ||
    (kp.isInitiator && h.clock.now() - kp.created > h.timing.rekeyAfterTime())
  ) {
    sendHandshakeInitiation(h, p, false);
  }
}

/** At most one initiation per rekey timeout (the minimum of the AWG range), as wireguard-go. */
export function sendHandshakeInitiation(h: SendHost, p: Peer, isRetry: boolean): void {
  if (!h.isUp() || !p.running) return;
  if (!isRetry) {
    p.timers.handshakeAttempts = 0;
    p.timers.maxHandshakeAttempts = h.timing.maxHandshakeAttempts();
  }
  const now = h.clock.now();
  if (now - p.handshake.lastSentHandshake < h.timing.rekeyTimeoutLo()) return;
  p.handshake.lastSentHandshake = now;
  if (p.handshakePendingSince === null && p.endpoint) p.handshakePendingSince = now;
  const msg = createMessageInitiation(h, p, h.codec.pickType(1));
  if (!msg) return;
  p.cookieGenerator.addMacs(msg, now);
  const bufs = h.codec.preamble(h.clock.wallNow());
  bufs.push(h.codec.sealHandshake(1, msg, p.udpWindow));
  // out first: the timers' bookkeeping is nothing the peer's answer waits for (one thread: the
  // order between them and the send is not observable)
  sendBuffers(h, p, bufs);
  // the next initiation's preparation is scheduled after the send too (it was the only
  // bookkeeping left before it)
  h.prepareSoon?.(p);
  timersAnyAuthenticatedPacketTraversal(h, p);
  timersAnyAuthenticatedPacketSent(h, p);
  timersHandshakeInitiated(h, p);
  if (p.staged.some((b) => b.length > 0)) h.boostHandshake(p);
}

export function sendHandshakeResponse(h: SendHost, p: Peer): void {
  const now = h.clock.now();
  p.handshake.lastSentHandshake = now;
  const msg = createMessageResponse(h, p, h.codec.pickType(2));
  if (!msg) return;
  p.cookieGenerator.addMacs(msg, now);
  if (!beginSymmetricSession(h, p)) return;
  timersSessionDerived(h, p);
  timersAnyAuthenticatedPacketTraversal(h, p);
  timersAnyAuthenticatedPacketSent(h, p);
  sendBuffers(h, p, [h.codec.sealHandshake(2, msg, p.udpWindow)]);
}

/** Under load: answer a handshake message whose mac2 is missing or stale with a cookie. */
export function sendHandshakeCookie(h: SendHost, msg: Uint8Array, from: Endpoint): void {
  if (h.awg.disableCookies) return;
  const reply = h.cookieChecker.createReply(msg, readU32(msg, 4), sourceBytes(from), h.clock.now());
  writeU32(reply, COOKIE.type, h.codec.pickType(3));
  h.bind.send([h.codec.sealHandshake(3, reply, DEFAULT_UDP_WINDOW)], from);
}

/** Cookie source bytes: address ‖ u16le port (only we recompute it). */
export function sourceBytes(ep: Endpoint): Uint8Array {
  const a = addressBytes(ep.address) ?? new Uint8Array(0);
  const out = new Uint8Array(a.length + 2);
  out.set(a);
  out[a.length] = ep.port & 0xff;
  out[a.length + 1] = ep.port >> 8;
  return out;
}
