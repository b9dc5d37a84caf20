/**
 * The WireGuard / AmneziaWG device (wireguard-go `device.Device`): depends only on a TunDevice
 * and a Bind. Single-threaded: TUN batches, datagrams and timers run to completion on the
 * event loop, so there are no locks. State: down → up → down …, closed is terminal.
 *
 * This file holds the device state, its lifecycle, its peers' start and stop, and status. A
 * configuration delta is applied by configure.ts (config.ts checks it, uapi.ts speaks the
 * UAPI text); what a peer reports is formatted by status.ts; the options and events are in
 * device-options.ts. The packet paths are send.ts and receive.ts, the handshake glue
 * handshake.ts, the timers timers.ts; they reach the device through their host interfaces, so
 * the members those list are package-internal.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { AwgError } from '../../errors.js';
import { AwgCodec } from '../awg/codec.js';
import { type AwgParams, defaultAwgParams } from '../awg/params.js';
import { type RandomSource, cryptoRandom } from '../awg/random.js';
import { isZeroRange } from '../awg/range.js';
import { BatchClock, type Clock, systemClock } from '../clock.js';
import { type Bind, type Endpoint, sameEndpoint } from '../conn/bind.js';
import {
  DEFAULT_UDP_WINDOW,
  REJECT_AFTER_MESSAGES_NUM,
  REKEY_AFTER_MESSAGES_NUM,
  UNDER_LOAD_HANDSHAKES_PER_SECOND,
} from '../constants.js';
import { keyToBase64 } from '../crypto/keys.js';
import { type PrivateKey, disposePrivateKey } from '../crypto/x25519.js';
import { CookieChecker } from '../noise/cookie.js';
import type { TunDevice } from '../tun/tun.js';
import { idleReleaseMs, reuseBuffers } from '../buffers.js';
import { releasePages } from '../../native/rawmem.js';
import { setBusy, settleSoon } from '../../native/settle.js';
import { AllowedIPs, formatPrefix } from './allowedips.js';
import type { DeviceConfig } from './config.js';
import { type ConfigureHost, applyConfig } from './configure.js';
import type { DeviceEvents, DeviceOptions, DeviceState } from './device-options.js';
import {
  type HandshakeHost,
  type IndexEntry,
  clearHandshake,
  deleteKeypair,
  dropPrepared,
  prepareNextInitiation,
} from './handshake.js';
import type { Peer, PeerExpiry } from './peer.js';
import { RateLimiter } from './ratelimiter.js';
import { sharedCryptoPool } from '../crypto/pool.js';
import type { PoolQueue } from '../crypto/pool-queue.js';
import type { HandshakeBoost } from '../boost.js';
import {
  HandshakeLoad,
  type PendingOpen,
  type ReceiveHost,
  finishOpens,
  routineReceiveIncoming,
} from './receive.js';
import { type Resolver, dnsResolver } from './resolver.js';
import { PrepareQueue } from './prepare-queue.js';
import * as send from './send.js';
import {
  type DeviceSnapshot,
  type PeerStatus,
  type PeerSummary,
  peerStatus,
  peerSummary,
} from './status.js';
import { Timing, expiryHandlers, timersStop, type TimerHost } from './timers.js';
import { type UapiFlavor, parseUapiSet, serializeUapiGet, toUapiError } from './uapi.js';

export type { DeviceSnapshot, PeerStatus, PeerSummary } from './status.js';
export type { DeviceEvents, DeviceOptions, DeviceState } from './device-options.js';

const hexOf = (k: Uint8Array) => Buffer.from(k).toString('hex');

/**
 * `handshake` events are emitted this long after the session exists, on the device's clock:
 * the packets that waited for the handshake, and the peer's first answers to them, go first.
 * Synchronous listeners (the daemon's tunnel health and event stream, the engine's log line)
 * had run before the staged packets were sent, a visible part of every first packet's wait in
 * the daemon. Measurements: bench/RESULTS.md, section "The handshake path cut down".
 */
export const HANDSHAKE_EVENT_DELAY_MS = 50;
/**
 * Receive batches (TUN reads, datagrams) within one idle-check period that make the device
 * busy: the process then settles without a garbage collection (native/settle.ts) until a
 * period with fewer. Keepalives and handshakes stay below it.
 */
const BUSY_AFTER = 32;
/** the slabs' sizes (DeviceOptions.slabs) */
export const TX_SLAB = 128 * 1024;
export const RX_SLAB = 256 * 1024;

export class Device
  extends EventEmitter<DeviceEvents>
  implements TimerHost, HandshakeHost, ReceiveHost, ConfigureHost
{
  // ---- package-internal: the members the host interfaces list -----------------------------
  readonly clock: Clock;
  /** `clock`, held for the length of each batch of packets */
  private readonly batchClock: BatchClock;
  readonly rng: RandomSource;
  readonly timing: Timing;
  readonly indices = new Map<number, IndexEntry>();
  staticPrivate: Uint8Array | null = null;
  staticPublic: Uint8Array | null = null;
  staticKey: PrivateKey | null = null;
  readonly tun: TunDevice;
  readonly bind: Bind;
  readonly allowedIps = new AllowedIPs<Peer>();
  readonly cookieChecker: CookieChecker;
  readonly rateLimiter = new RateLimiter();
  readonly load: HandshakeLoad;
  awg: AwgParams = defaultAwgParams();
  codec: AwgCodec;
  /** transport messages are sealed here (send.ts): 64 MTU-sized datagrams, sent then reused */
  readonly txSlab: Buffer;
  /** AWG_BUFFER_REUSE=0: a buffer per packet instead of the slabs (diagnosis) */
  readonly reuseBuffers = reuseBuffers();
  /** AWG_MSS_CLAMP=0: TCP SYNs keep their MSS behind a transport prefix (tun/mss.ts; diagnosis) */
  readonly mssClamp = process.env.AWG_MSS_CLAMP !== '0';
  readonly rekeyAfterMessages: number;
  readonly rejectAfterMessages: number;
  readonly sealQueue: PoolQueue | null;
  readonly openQueue: PoolQueue | null;
  readonly opens: PendingOpen[] = [];
  pendingOpens = 0;
  /** peers by public key (hex) */
  readonly peers = new Map<string, Peer>();
  readonly expiry: PeerExpiry;
  /** the port asked for (0: any) and the one bound while up */
  listenPort = 0;
  boundPort = 0;
  fwmark = 0;

  private stateValue: DeviceState = 'down';
  private readonly resolver: Resolver;
  private readonly log: NonNullable<DeviceOptions['log']>;
  private readonly prepareAhead: boolean;
  /** peers whose next initiation is to be prepared, and the pending turn that does it */
  private readonly toPrepare = new PrepareQueue((p) => {
    if (p.running && this.isUp())
      try {
        prepareNextInitiation(this, p);
        this.codec.preparePreamble();
        this.codec.prepareInitiationFrame(p.udpWindow);
      } catch (e) {
        this.dropped('handshake preparation', e);
      }
  });
  /**
   * packets (batches) seen since the last idle check, and whether the buffers were released
   * since the last one; BUSY_AFTER of them within a period mark the device busy (native/settle.ts)
   */
  private activity = 0;
  private released = true;
  private readonly idleReleaseMs: number;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly ownSlabs: boolean;
  /** bytes of buffer pages given back while idle (status and tests) */
  idleReleasedBytes = 0;
  private readonly boost: HandshakeBoost | null;
  private boostReported = false;

  constructor(opts: DeviceOptions) {
    super();
    this.tun = opts.tun;
    this.bind = opts.bind;
    this.txSlab = opts.slabs?.tx ?? Buffer.allocUnsafeSlow(TX_SLAB);
    this.rxSlab = opts.slabs?.rx ?? Buffer.allocUnsafeSlow(RX_SLAB);
    this.ownSlabs = !opts.slabs;
    this.idleReleaseMs = opts.idleReleaseMs ?? idleReleaseMs();
    this.clock = this.batchClock = new BatchClock(opts.clock ?? systemClock);
    this.rng = opts.random ?? cryptoRandom;
    this.resolver = opts.resolver ?? dnsResolver;
    this.load = new HandshakeLoad(opts.underLoadThreshold ?? UNDER_LOAD_HANDSHAKES_PER_SECOND);
    this.rekeyAfterMessages = opts.rekeyAfterMessages ?? REKEY_AFTER_MESSAGES_NUM;
    this.rejectAfterMessages = opts.rejectAfterMessages ?? REJECT_AFTER_MESSAGES_NUM;
    this.log = opts.log ?? (() => {});
    this.prepareAhead = opts.prepareInitiations ?? process.env.AWG_HANDSHAKE_PREPARE !== '0';
    this.boost = opts.boost ?? null;
    this.timing = new Timing(() => this.awg, this.rng);
    this.codec = new AwgCodec(this.awg, this.rng);
    this.cookieChecker = new CookieChecker(new Uint8Array(32), (n) => this.rng.bytes(n));
    this.expiry = expiryHandlers(this);
    const pool = this.reuseBuffers
      ? opts.cryptoPool === undefined
        ? sharedCryptoPool()
        : opts.cryptoPool
      : null;
    this.sealQueue = pool?.queue() ?? null;
    this.openQueue = pool?.queue() ?? null;
    // a packet must never take the process down: contain anything unexpected per batch
    // (no closure per packet: try/catch in place)
    const clock = this.batchClock;
    this.tun.onReceive((packets) => {
      if (++this.activity === BUSY_AFTER) setBusy(this, true);
      clock.hold();
      try {
        send.routineReadFromTun(this, packets);
      } catch (e) {
        this.dropped('tun', e);
      } finally {
        clock.release();
      }
    });
    // inner packets for the TUN are collected per receive batch and written together (the
    // TUN coalesces TCP segments of a batch); a bind without batches flushes per datagram
    const batched = typeof this.bind.onBatchEnd === 'function';
    this.bind.onReceive((data, from) => {
      clock.hold(); // until the batch ends
      try {
        if (++this.activity === BUSY_AFTER) setBusy(this, true);
        routineReceiveIncoming(this, data, from);
        if (!batched) this.flushTun();
      } catch (e) {
        this.dropped('udp', e);
      }
      if (!batched) clock.release();
    });
    this.bind.onBatchEnd?.(() => {
      try {
        this.flushTun();
      } catch (e) {
        this.dropped('udp', e);
      } finally {
        clock.release();
      }
    });
  }

  /** packets opened in the current receive batch, waiting for `flushTun` */
  tunOut: Uint8Array[] = [];
  /** the receive path opens transport messages here (receive.ts); reused after each flush */
  readonly rxSlab: Buffer;
  rxOff = 0;

  /** Writes the packets the receive path collected (ReceiveHost); the slab starts over. */
  flushTun(): void {
    if (this.pendingOpens) finishOpens(this);
    this.rxOff = 0;
    if (this.tunOut.length === 0) return;
    const out = this.tunOut;
    this.tunOut = [];
    this.tun.write(out);
  }

  /**
   * The idle check (every idleReleaseMs): a device that saw no packet during a whole period
   * releases its buffers' pages once (buffers.ts), unless work is still in flight.
   */
  private idleCheck(): void {
    const activity = this.activity;
    this.activity = 0;
    // fewer than BUSY_AFTER batches in the period: not carrying traffic (keepalives, handshakes)
    if (activity < BUSY_AFTER) setBusy(this, false);
    if (activity) {
      this.released = false;
      return;
    }
    if (
      this.released ||
      this.pendingOpens ||
      this.tunOut.length ||
      this.sealQueue?.length ||
      this.openQueue?.length
    )
      return;
    this.released = true;
    this.idleReleasedBytes += (this.bind.releaseIdle?.() ?? 0) + (this.tun.releaseIdle?.() ?? 0);
    if (this.ownSlabs && this.reuseBuffers)
      this.idleReleasedBytes += releasePages(this.txSlab, this.rxSlab);
    settleSoon();
  }

  private dropped(where: string, e: unknown): void {
    this.log('warn', `${where} packet dropped: ${(e as Error).message}`);
  }

  // ---- lifecycle --------------------------------------------------------------------------

  get state(): DeviceState {
    return this.stateValue;
  }

  isUp(): boolean {
    return this.stateValue === 'up';
  }

  /** Binds the UDP port, resolves hostname endpoints and starts the peers. */
  async up(): Promise<void> {
    if (this.stateValue === 'closed') throw new AwgError('bug', 'device is closed');
    if (this.stateValue === 'up') return;
    this.boundPort = await this.bind.open(this.listenPort);
    if (this.fwmark) this.bind.setMark?.(this.fwmark);
    await Promise.all(
      [...this.peers.values()].filter((p) => p.endpointHost).map((p) => this.resolveEndpoint(p)),
    );
    this.stateValue = 'up';
    if (this.idleReleaseMs > 0)
      this.idleTimer ??= setInterval(() => this.idleCheck(), this.idleReleaseMs).unref();
    for (const p of this.peers.values()) this.startPeer(p);
    this.emit('state', 'up');
  }

  /** Stops peers (keys and queues dropped, configuration kept) and closes the socket. */
  async down(): Promise<void> {
    if (this.stateValue !== 'up') return;
    this.stateValue = 'down';
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = null;
    // not busy while down
    this.activity = 0;
    setBusy(this, false);
    for (const p of this.peers.values()) this.stopPeer(p);
    await this.bind.close();
    this.boundPort = 0;
    this.emit('state', 'down');
  }

  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    await this.down();
    for (const p of [...this.peers.values()]) this.removePeer(p);
    disposePrivateKey(this.staticKey);
    this.staticKey = null;
    this.toPrepare.clear();
    this.tun.onReceive(null);
    this.bind.onReceive(null);
    this.bind.onBatchEnd?.(null);
    this.tunOut = [];
    this.pendingOpens = 0;
    this.openQueue?.close();
    this.sealQueue?.close();
    await this.tun.close();
    this.stateValue = 'closed';
    this.emit('state', 'closed');
  }

  get port(): number {
    return this.boundPort || this.listenPort;
  }

  // ---- configuration ----------------------------------------------------------------------

  /**
   * Applies a configuration delta. Everything is validated before anything changes; throws
   * AwgError('invalid-config') listing all problems, or AwgError('driver') when rebinding fails.
   */
  async configure(cfg: DeviceConfig): Promise<void> {
    if (this.stateValue === 'closed') throw new AwgError('bug', 'device is closed');
    await applyConfig(this, cfg);
  }

  /**
   * UAPI `set=1`: parses and applies; throws UapiError whose `errno` is the reply code
   * (-22 invalid, -71 protocol, -98 port in use, -55 other).
   */
  async ipcSet(text: string): Promise<void> {
    const cfg = parseUapiSet(text);
    try {
      await this.configure(cfg);
    } catch (e) {
      throw toUapiError(e);
    }
  }

  /** UAPI `get=1` response text (ends with `errno=0` and a blank line). */
  ipcGet(flavor: UapiFlavor = 'auto'): string {
    return serializeUapiGet(this.snapshot(), flavor);
  }

  removePeer(p: Peer): void {
    this.stopPeer(p);
    this.allowedIps.removeValue(p);
    this.peers.delete(p.publicKeyHex);
  }

  startPeer(p: Peer): void {
    if (p.running) return;
    p.running = true;
    p.handshake.lastSentHandshake = this.clock.now() - (this.timing.rekeyTimeoutLo() + 1000);
    p.timers.handshakeAttempts = 0;
    if (!isZeroRange(p.persistentKeepalive)) send.sendKeepalive(this, p);
    this.prepareSoon(p, true);
  }

  private stopPeer(p: Peer): void {
    p.running = false;
    p.boosted = false;
    this.boost?.leave(p);
    timersStop(p);
    this.zeroAndFlushAll(p);
    this.toPrepare.delete(p);
    dropPrepared(p);
  }

  /**
   * HandshakeHost: prepare the peer's next initiation on a later turn of the event loop
   * (prepare-queue.ts): soon, or with `next` on the next turn (a peer that starts).
   */
  prepareSoon(p: Peer, next = false): void {
    if (this.prepareAhead && !p.handshake.prepared) this.toPrepare.add(p, next);
  }

  peerByKey(pub: Uint8Array): Peer | undefined {
    return this.peers.get(hexOf(pub));
  }

  async resolveEndpoint(p: Peer): Promise<void> {
    const hp = p.endpointHost;
    if (!hp) return;
    try {
      const addrs = await this.resolver.resolve(hp.host, { mark: this.fwmark });
      const a = addrs.find((x) => isIP(x));
      if (a && p.endpointHost === hp) {
        const ep = { address: a, port: hp.port };
        if (!sameEndpoint(ep, p.endpoint)) {
          this.setEndpoint(p, ep);
          this.emit('endpoint', { publicKey: p.publicKey, endpoint: ep });
        }
      }
    } catch (e) {
      this.log('warn', `cannot resolve ${hp.host}: ${(e as Error).message}`);
    }
  }

  setEndpoint(p: Peer, ep: Endpoint): void {
    if (sameEndpoint(p.endpoint, ep)) return;
    p.endpoint = ep;
    p.udpWindow = DEFAULT_UDP_WINDOW;
  }

  setEndpointFromPacket(p: Peer, from: Endpoint): void {
    const cur = p.endpoint;
    if (sameEndpoint(cur, from)) {
      // the same peer now reaching another of our addresses: replies leave from that one
      if (cur !== from && (cur!.src !== from.src || cur!.srcIfindex !== from.srcIfindex))
        p.endpoint = from;
      return;
    }
    this.setEndpoint(p, from);
    this.emit('endpoint', {
      publicKey: p.publicKey,
      endpoint: { address: from.address, port: from.port },
    });
  }

  // ---- probing (the daemon's health checks and network changes) ----------------------------

  /**
   * Sends a handshake initiation to the peer now, session or not (is a silent peer still
   * there? does a tunnel that gave up come back?). Subject to the initiation rate limit (one
   * per rekey timeout); a retry series follows as for any initiation. `data`: a data message
   * the peer answers instead (send.ts sendDataProbe; on a session only), from `from` (our
   * tunnel address: the peer's kernel answers at once). False when the device is not up or
   * has no such peer.
   */
  probePeer(pub: Uint8Array, data = false, from?: string): boolean {
    const p = this.peerByKey(pub);
    if (!p || !this.isUp()) return false;
    if (data) return send.sendDataProbe(this, p, from);
    send.sendHandshakeInitiation(this, p, false);
    return true;
  }

  /**
   * After an underlay change: re-resolves a hostname endpoint and, on a live session, sends
   * a keepalive, so the peer learns our new source address at once. False when the device
   * is not up or has no such peer.
   */
  kickPeer(pub: Uint8Array): boolean {
    const p = this.peerByKey(pub);
    if (!p || !this.isUp()) return false;
    if (p.endpointHost) this.reresolveEndpoint(p);
    if (p.keypairs.current) send.sendKeepalive(this, p);
    return true;
  }

  // ---- status -----------------------------------------------------------------------------

  snapshot(): DeviceSnapshot {
    return {
      privateKey: this.staticPrivate,
      listenPort: this.port,
      fwmark: this.fwmark,
      awg: this.awg,
      peers: [...this.peers.values()].map((p) => this.peerStatus(p)),
    };
  }

  /**
   * Per-peer liveness and counters without the allowed-IP list (which `snapshot()` formats
   * prefix by prefix): what the daemon polls every second for health and status.
   */
  peerSummaries(): PeerSummary[] {
    return [...this.peers.values()].map((p) => peerSummary(p, this.clock));
  }

  private peerStatus(p: Peer): PeerStatus {
    return peerStatus(p, this.allowedIps.entriesFor(p).map(formatPrefix), this.clock);
  }

  peerStatusByKey(pub: Uint8Array): PeerStatus | null {
    const p = this.peerByKey(pub);
    return p ? this.peerStatus(p) : null;
  }

  /** Under load when handshake messages arrive faster than the threshold (held for 1 s). */
  isUnderLoad(): boolean {
    return this.load.isUnderLoad(this.clock.now());
  }

  // ---- timer host -------------------------------------------------------------------------

  sendKeepalive(p: Peer): void {
    send.sendKeepalive(this, p);
  }

  sendHandshakeInitiation(p: Peer, isRetry: boolean): void {
    send.sendHandshakeInitiation(this, p, isRetry);
  }

  reresolveEndpoint(p: Peer): void {
    void this.resolveEndpoint(p);
  }

  /** An initiation went out with data staged behind it: boost until the peer answers (boost.ts). */
  boostHandshake(p: Peer): void {
    const b = this.boost;
    if (!b) return;
    b.enter(p);
    const st = b.state();
    p.boosted = st.active;
    if (st.enabled || this.boostReported) return;
    this.boostReported = true;
    this.log('info', `handshake boost off: ${st.reason}`);
  }

  /** The peer's first data on the session arrived (`p.boosted`): the boost for it ends after this batch. */
  unboost(p: Peer): void {
    p.boosted = false;
    const b = this.boost;
    if (b) queueMicrotask(() => b.leave(p));
  }

  handshakeComplete(p: Peer): void {
    const e: DeviceEvents['handshake'][0] = {
      publicKey: p.publicKey,
      endpoint: p.endpoint && { address: p.endpoint.address, port: p.endpoint.port },
      initiator: !!p.keypairs.current?.isInitiator,
    };
    // not while the packets that waited for it are still to be sent (HANDSHAKE_EVENT_DELAY_MS)
    this.clock.setTimer(() => {
      if (this.stateValue !== 'closed') this.emit('handshake', e);
    }, HANDSHAKE_EVENT_DELAY_MS);
  }

  handshakeGaveUp(p: Peer): void {
    this.log(
      'info',
      `handshake with ${keyToBase64(p.publicKey)} gave up after ${p.timers.handshakeAttempts + 2} attempts`,
    );
    this.emit('handshake-failed', { publicKey: p.publicKey });
  }

  zeroAndFlushAll(p: Peer): void {
    const k = p.keypairs;
    deleteKeypair(this, k.previous);
    deleteKeypair(this, k.current);
    deleteKeypair(this, k.next);
    k.previous = k.current = k.next = null;
    clearHandshake(this, p);
    p.staged = [];
  }
}
