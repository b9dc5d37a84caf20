/**
 * The WireGuard / AmneziaWG device (wireguard-go `device.Device`): depends only on a TunDevice
 * and a Bind. Single-threaded: TUN batches, datagrams and timers run to completion on the
 * event loop, so there are no locks. State: down → up → down …, closed is terminal.
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { AwgError } from '../../errors.js';
import { AwgCodec } from '../awg/codec.js';
import { type AwgParams, defaultAwgParams, validateAwgParams } from '../awg/params.js';
import { type RandomSource, cryptoRandom } from '../awg/random.js';
import { type UintRange, ZERO_RANGE, isZeroRange, range } from '../awg/range.js';
import {
  type Bind,
  type Endpoint,
  formatEndpoint,
  sameEndpoint,
  splitHostPort,
} from '../conn/bind.js';
import {
  DEFAULT_UDP_WINDOW,
  MAX_PEERS,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MIN_MESSAGE_SIZE,
  QUEUE_STAGED_SIZE,
  REJECT_AFTER_MESSAGES_NUM,
  REKEY_AFTER_MESSAGES_NUM,
  UNDER_LOAD_AFTER_TIME,
  UNDER_LOAD_HANDSHAKES_PER_SECOND,
} from '../constants.js';
import { TAG_SIZE, openWithNonce, sealInto, writeNonce } from '../crypto/aead.js';
import { isZeroKey, keyToBase64 } from '../crypto/keys.js';
import { clamp, publicKey as derivePublic, sharedSecret } from '../crypto/x25519.js';
import { CookieChecker } from '../noise/cookie.js';
import { COOKIE, TRANSPORT, readU32, readU64, writeU32, writeU64 } from '../noise/messages.js';
import type { TunDevice } from '../tun/tun.js';
import {
  IPC_ERROR,
  UapiError,
  type UapiFlavor,
  parseUapiSet,
  serializeUapiGet,
} from './uapi.js';
import { AllowedIPs, addressBytes, formatPrefix, parsePrefix, type Prefix } from './allowedips.js';
import { type Clock, systemClock } from '../clock.js';
import type { DeviceConfig, PeerConfig } from './config.js';
import {
  type HandshakeHost,
  type IndexEntry,
  beginSymmetricSession,
  clearHandshake,
  consumeMessageInitiation,
  consumeMessageResponse,
  createMessageInitiation,
  createMessageResponse,
  deleteKeypair,
  isOwnKey,
  receivedWithKeypair,
} from './handshake.js';
import type { Keypair } from './keypair.js';
import { Peer } from './peer.js';
import { RateLimiter } from './ratelimiter.js';
import { type Resolver, dnsResolver } from './resolver.js';
import {
  type TimerHost,
  Timing,
  expiryHandlers,
  timersAnyAuthenticatedPacketReceived,
  timersAnyAuthenticatedPacketSent,
  timersAnyAuthenticatedPacketTraversal,
  timersDataReceived,
  timersDataSent,
  timersHandshakeComplete,
  timersHandshakeInitiated,
  timersSessionDerived,
  timersStop,
} from './timers.js';

export type DeviceState = 'down' | 'up' | 'closed';

export interface DeviceOptions {
  tun: TunDevice;
  bind: Bind;
  clock?: Clock;
  random?: RandomSource;
  resolver?: Resolver;
  /** handshake messages per second that put the device under load (cookie replies) */
  underLoadThreshold?: number;
  /** test hooks: lower message limits to exercise rekey-after-messages */
  rekeyAfterMessages?: number;
  rejectAfterMessages?: number;
  log?: (level: 'debug' | 'info' | 'warn', message: string) => void;
}

export interface PeerSummary {
  publicKey: Uint8Array;
  endpoint: Endpoint | null;
  endpointHost: string | null;
  /** Unix ms; 0 = never */
  lastHandshakeTime: number;
  txBytes: number;
  rxBytes: number;
  hasSession: boolean;
  /** ms the oldest unanswered handshake initiation has been waiting (0: none pending) */
  handshakePendingMs: number;
}

export interface PeerStatus extends PeerSummary {
  presharedKey: Uint8Array | null;
  persistentKeepalive: UintRange;
  allowedIps: string[];
}

export interface DeviceSnapshot {
  privateKey: Uint8Array | null;
  listenPort: number;
  fwmark: number;
  awg: AwgParams;
  peers: PeerStatus[];
}

export interface DeviceEvents {
  state: [DeviceState];
  /** a session was established (initiator: response consumed; responder: key confirmed) */
  handshake: [{ publicKey: Uint8Array; endpoint: Endpoint | null; initiator: boolean }];
  /** retransmits exhausted; staged packets dropped */
  'handshake-failed': [{ publicKey: Uint8Array }];
  /** an authenticated packet arrived from a new address (roaming) or a hostname re-resolved */
  endpoint: [{ publicKey: Uint8Array; endpoint: Endpoint }];
}

const hexOf = (k: Uint8Array) => Buffer.from(k).toString('hex');

export class Device extends EventEmitter<DeviceEvents> implements TimerHost, HandshakeHost {
  readonly clock: Clock;
  readonly rng: RandomSource;
  readonly timing: Timing;
  readonly indices = new Map<number, IndexEntry>();
  staticPrivate: Uint8Array | null = null;
  staticPublic: Uint8Array | null = null;

  private stateValue: DeviceState = 'down';
  private readonly tun: TunDevice;
  private readonly bind: Bind;
  private readonly resolver: Resolver;
  private readonly peers = new Map<string, Peer>();
  private readonly allowedIps = new AllowedIPs<Peer>();
  private readonly cookieChecker: CookieChecker;
  private readonly rateLimiter = new RateLimiter();
  private readonly expiry;
  private awg: AwgParams = defaultAwgParams();
  private codec: AwgCodec;
  private listenPort = 0;
  private boundPort = 0;
  private fwmark = 0;
  private readonly underLoadThreshold: number;
  private underLoadUntil = -Infinity;
  private hsWindowStart = -Infinity;
  private hsWindowCount = 0;
  private readonly rekeyAfterMessages: number;
  private readonly rejectAfterMessages: number;
  private readonly nonce = Buffer.alloc(12);
  private readonly log: NonNullable<DeviceOptions['log']>;

  constructor(opts: DeviceOptions) {
    super();
    this.tun = opts.tun;
    this.bind = opts.bind;
    this.clock = opts.clock ?? systemClock;
    this.rng = opts.random ?? cryptoRandom;
    this.resolver = opts.resolver ?? dnsResolver;
    this.underLoadThreshold = opts.underLoadThreshold ?? UNDER_LOAD_HANDSHAKES_PER_SECOND;
    this.rekeyAfterMessages = opts.rekeyAfterMessages ?? REKEY_AFTER_MESSAGES_NUM;
    this.rejectAfterMessages = opts.rejectAfterMessages ?? REJECT_AFTER_MESSAGES_NUM;
    this.log = opts.log ?? (() => {});
    this.timing = new Timing(() => this.awg, this.rng);
    this.codec = new AwgCodec(this.awg, this.rng);
    this.cookieChecker = new CookieChecker(new Uint8Array(32), (n) => this.rng.bytes(n));
    this.expiry = expiryHandlers(this);
    // a packet must never take the process down: contain anything unexpected per batch
    this.tun.onReceive((packets) => this.guard('tun', () => this.onTunPackets(packets)));
    this.bind.onReceive((data, from) => this.guard('udp', () => this.onDatagram(data, from)));
  }

  private guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log('warn', `${where} packet dropped: ${(e as Error).message}`);
    }
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
    for (const p of this.peers.values()) this.startPeer(p);
    this.emit('state', 'up');
  }

  /** Stops peers (keys and queues dropped, configuration kept) and closes the socket. */
  async down(): Promise<void> {
    if (this.stateValue !== 'up') return;
    this.stateValue = 'down';
    for (const p of this.peers.values()) this.stopPeer(p);
    await this.bind.close();
    this.boundPort = 0;
    this.emit('state', 'down');
  }

  async close(): Promise<void> {
    if (this.stateValue === 'closed') return;
    await this.down();
    for (const p of [...this.peers.values()]) this.removePeer(p);
    this.tun.onReceive(null);
    this.bind.onReceive(null);
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
    const problems: string[] = [];
    let awg: AwgParams | null = null;
    if (cfg.awg) {
      const { i, ...rest } = cfg.awg;
      awg = { ...this.awg, ...rest, i: [...this.awg.i] as AwgParams['i'] };
      i?.forEach((v, k) => {
        if (v !== undefined && k < 5) awg!.i[k] = v === '' ? null : v;
      });
      problems.push(...validateAwgParams(awg));
    }
    if (
      cfg.listenPort !== undefined &&
      !(Number.isInteger(cfg.listenPort) && cfg.listenPort >= 0 && cfg.listenPort <= 65535)
    )
      problems.push('listen_port must be 0..65535');
    if (
      cfg.fwmark !== undefined &&
      !(Number.isInteger(cfg.fwmark) && cfg.fwmark >= 0 && cfg.fwmark <= 0xffff_ffff)
    )
      problems.push('fwmark must be a uint32');
    if (cfg.privateKey && cfg.privateKey.length !== 32)
      problems.push('private_key must be 32 bytes');
    const prefixes = new Map<PeerConfig, { add: Prefix[]; remove: Prefix[] }>();
    for (const pc of cfg.peers ?? []) {
      if (pc.publicKey.length !== 32) problems.push('public_key must be 32 bytes');
      if (pc.presharedKey && pc.presharedKey.length !== 32)
        problems.push('preshared_key must be 32 bytes');
      if (pc.endpoint) {
        const hp = splitHostPort(pc.endpoint);
        if (!hp) problems.push(`invalid endpoint "${pc.endpoint}"`);
      }
      const pk = pc.persistentKeepalive;
      if (pk !== undefined) {
        const r = typeof pk === 'number' ? range(pk) : pk;
        if (!(
          Number.isInteger(r.lo) &&
          Number.isInteger(r.hi) &&
          r.lo >= 0 &&
          r.hi <= 65535 &&
          r.lo <= r.hi
        ))
          problems.push('persistent_keepalive_interval must be 0..65535');
      }
      const sets = { add: [] as Prefix[], remove: [] as Prefix[] };
      for (const a of pc.allowedIps ?? []) {
        try {
          if (a.startsWith('-')) sets.remove.push(parsePrefix(a.slice(1)));
          else sets.add.push(parsePrefix(a));
        } catch (e) {
          problems.push((e as Error).message);
        }
      }
      prefixes.set(pc, sets);
    }
    const newPeers = (cfg.peers ?? []).filter(
      (pc) => !pc.remove && !pc.updateOnly && !this.peers.has(hexOf(pc.publicKey)),
    ).length;
    if (this.peers.size + newPeers > MAX_PEERS) problems.push(`too many peers (max ${MAX_PEERS})`);
    if (problems.length)
      throw new AwgError('invalid-config', problems.join('; '), {
        issues: problems.map((message) => ({
          file: '<uapi>',
          path: '',
          message,
          severity: 'error' as const,
        })),
      });

    // rebind first: a port in use fails the whole call with nothing changed
    if (cfg.listenPort !== undefined && cfg.listenPort !== this.listenPort) {
      if (this.isUp()) {
        const previous = this.boundPort;
        try {
          this.boundPort = await this.bind.open(cfg.listenPort);
        } catch (e) {
          this.boundPort = await this.bind.open(previous).catch(() => 0);
          throw e;
        }
      }
      this.listenPort = cfg.listenPort;
    }
    if (cfg.privateKey !== undefined) this.setPrivateKey(cfg.privateKey);
    if (cfg.fwmark !== undefined && cfg.fwmark !== this.fwmark) {
      this.fwmark = cfg.fwmark;
      if (this.isUp()) this.bind.setMark?.(cfg.fwmark);
    }
    if (awg) {
      this.awg = awg;
      this.codec = new AwgCodec(awg, this.rng);
    }
    if (cfg.replacePeers) for (const p of [...this.peers.values()]) this.removePeer(p);
    for (const pc of cfg.peers ?? []) await this.applyPeer(pc, prefixes.get(pc)!);
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
      if (e instanceof UapiError) throw e;
      const kind = e instanceof AwgError ? e.kind : 'bug';
      const errno =
        kind === 'invalid-config'
          ? IPC_ERROR.INVALID
          : kind === 'driver'
            ? IPC_ERROR.PORT_IN_USE
            : IPC_ERROR.UNKNOWN;
      throw new UapiError(errno, (e as Error).message);
    }
  }

  /** UAPI `get=1` response text (ends with `errno=0` and a blank line). */
  ipcGet(flavor: UapiFlavor = 'auto'): string {
    return serializeUapiGet(this.snapshot(), flavor);
  }

  private setPrivateKey(sk: Uint8Array | null): void {
    if (!sk || isZeroKey(sk)) {
      this.staticPrivate = null;
      this.staticPublic = null;
    } else {
      this.staticPrivate = clamp(sk);
      this.staticPublic = derivePublic(this.staticPrivate);
      const own = this.peers.get(hexOf(this.staticPublic));
      if (own) this.removePeer(own);
      this.cookieChecker.init(this.staticPublic);
    }
    for (const p of this.peers.values()) {
      p.handshake.precomputedStaticStatic = this.staticPrivate
        ? sharedSecret(this.staticPrivate, p.publicKey)
        : null;
      this.expireCurrentKeypairs(p);
    }
  }

  private expireCurrentKeypairs(p: Peer): void {
    clearHandshake(this, p);
    p.handshake.lastSentHandshake = this.clock.now() - (this.timing.rekeyTimeoutLo() + 1000);
    if (p.keypairs.current) p.keypairs.current.sendNonce = Infinity;
    if (p.keypairs.next) p.keypairs.next.sendNonce = Infinity;
  }

  private async applyPeer(
    pc: PeerConfig,
    sets: { add: Prefix[]; remove: Prefix[] },
  ): Promise<void> {
    if (isOwnKey(this, pc.publicKey)) return;
    const key = hexOf(pc.publicKey);
    let p = this.peers.get(key);
    if (pc.remove) {
      if (p) this.removePeer(p);
      return;
    }
    if (!p) {
      if (pc.updateOnly) return;
      p = new Peer(Uint8Array.from(pc.publicKey), this.clock, this.expiry);
      p.handshake.precomputedStaticStatic = this.staticPrivate
        ? sharedSecret(this.staticPrivate, p.publicKey)
        : null;
      p.timers.maxHandshakeAttempts = this.timing.maxHandshakeAttempts();
      this.peers.set(key, p);
      if (this.isUp()) this.startPeer(p);
    }
    if (pc.presharedKey !== undefined)
      p.handshake.presharedKey = pc.presharedKey
        ? Uint8Array.from(pc.presharedKey)
        : new Uint8Array(32);
    if (pc.endpoint !== undefined) {
      const hp = pc.endpoint ? splitHostPort(pc.endpoint) : null;
      if (!hp) {
        p.endpoint = null;
        p.endpointHost = null;
      } else if (isIP(hp.host)) {
        p.endpointHost = null;
        this.setEndpoint(p, { address: hp.host, port: hp.port });
      } else {
        p.endpointHost = hp;
        if (this.isUp()) await this.resolveEndpoint(p);
      }
    }
    if (pc.persistentKeepalive !== undefined) {
      const was = p.persistentKeepalive;
      p.persistentKeepalive =
        typeof pc.persistentKeepalive === 'number'
          ? pc.persistentKeepalive
            ? range(pc.persistentKeepalive)
            : ZERO_RANGE
          : pc.persistentKeepalive;
      if (isZeroRange(was) && !isZeroRange(p.persistentKeepalive) && this.isUp() && p.running)
        this.sendKeepalive(p);
    }
    if (pc.replaceAllowedIps) this.allowedIps.removeValue(p);
    for (const pre of sets.remove) this.allowedIps.remove(pre, p);
    for (const pre of sets.add) this.allowedIps.insert(pre, p);
  }

  private removePeer(p: Peer): void {
    this.stopPeer(p);
    this.allowedIps.removeValue(p);
    this.peers.delete(p.publicKeyHex);
  }

  private startPeer(p: Peer): void {
    if (p.running) return;
    p.running = true;
    p.handshake.lastSentHandshake = this.clock.now() - (this.timing.rekeyTimeoutLo() + 1000);
    p.timers.handshakeAttempts = 0;
    if (!isZeroRange(p.persistentKeepalive)) this.sendKeepalive(p);
  }

  private stopPeer(p: Peer): void {
    p.running = false;
    timersStop(p);
    this.zeroAndFlushAll(p);
  }

  peerByKey(pub: Uint8Array): Peer | undefined {
    return this.peers.get(hexOf(pub));
  }

  private async resolveEndpoint(p: Peer): Promise<void> {
    const hp = p.endpointHost;
    if (!hp) return;
    try {
      const addrs = await this.resolver.resolve(hp.host);
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

  reresolveEndpoint(p: Peer): void {
    void this.resolveEndpoint(p);
  }

  private setEndpoint(p: Peer, ep: Endpoint): void {
    if (sameEndpoint(p.endpoint, ep)) return;
    p.endpoint = ep;
    p.udpWindow = DEFAULT_UDP_WINDOW;
  }

  /** Roaming: authenticated packets move the peer's endpoint to their source. */
  private setEndpointFromPacket(p: Peer, from: Endpoint): void {
    if (sameEndpoint(p.endpoint, from)) return;
    this.setEndpoint(p, { address: from.address, port: from.port });
    this.emit('endpoint', { publicKey: p.publicKey, endpoint: p.endpoint! });
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
    return [...this.peers.values()].map((p) => this.peerSummary(p));
  }

  private peerSummary(p: Peer): PeerSummary {
    return {
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      endpointHost: p.endpointHost ? `${p.endpointHost.host}:${p.endpointHost.port}` : null,
      lastHandshakeTime: p.lastHandshakeWall,
      txBytes: p.txBytes,
      rxBytes: p.rxBytes,
      hasSession: !!p.keypairs.current,
      handshakePendingMs: p.handshakePendingSince === null ? 0 : Math.max(1, this.clock.now() - p.handshakePendingSince),
    };
  }

  peerStatus(p: Peer): PeerStatus {
    const psk = p.handshake.presharedKey;
    return {
      ...this.peerSummary(p),
      presharedKey: isZeroKey(psk) ? null : psk,
      persistentKeepalive: p.persistentKeepalive,
      allowedIps: this.allowedIps.entriesFor(p).map(formatPrefix),
    };
  }

  peerStatusByKey(pub: Uint8Array): PeerStatus | null {
    const p = this.peerByKey(pub);
    return p ? this.peerStatus(p) : null;
  }

  /** @internal for tests */
  peerInternals(pub: Uint8Array): Peer | undefined {
    return this.peerByKey(pub);
  }

  // ---- timer host -------------------------------------------------------------------------

  handshakeComplete(p: Peer): void {
    this.emit('handshake', {
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      initiator: !!p.keypairs.current?.isInitiator,
    });
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

  // ---- send path --------------------------------------------------------------------------

  private onTunPackets(packets: Uint8Array[]): void {
    if (!this.isUp()) return;
    const touched = new Set<Peer>();
    for (const pkt of packets) {
      const dst = destinationOf(pkt);
      if (!dst) continue;
      const p = this.allowedIps.lookup(dst);
      if (!p || !p.running) continue;
      this.stage(p, pkt);
      touched.add(p);
    }
    for (const p of touched) this.sendStagedPackets(p);
  }

  private stage(p: Peer, pkt: Uint8Array): void {
    if (p.staged.length >= QUEUE_STAGED_SIZE) p.staged.shift();
    p.staged.push(pkt);
  }

  /** Queues a keepalive (unless data is already staged) and flushes. */
  sendKeepalive(p: Peer): void {
    if (p.staged.length === 0) p.staged.push(new Uint8Array(0));
    this.sendStagedPackets(p);
  }

  private keypairUsable(kp: Keypair | null): kp is Keypair {
    return (
      !!kp &&
      kp.sendNonce < this.rejectAfterMessages &&
      this.clock.now() - kp.created < this.timing.rejectAfterTime()
    );
  }

  private sendStagedPackets(p: Peer): void {
    if (!this.isUp() || !p.running || p.staged.length === 0) return;
    const kp = p.keypairs.current;
    if (!this.keypairUsable(kp)) {
      this.sendHandshakeInitiation(p, false);
      return;
    }
    const mtu = this.tun.mtu();
    const out: Uint8Array[] = [];
    let data = false;
    while (p.staged.length) {
      if (kp.sendNonce >= this.rejectAfterMessages) break;
      const pkt = p.staged.shift()!;
      out.push(this.encrypt(p, kp, pkt, mtu));
      if (pkt.length) data = true;
    }
    if (out.length) {
      timersAnyAuthenticatedPacketTraversal(this, p);
      timersAnyAuthenticatedPacketSent(this, p);
      this.sendBuffers(p, out);
      if (data) timersDataSent(this, p);
    }
    if (p.staged.length) this.sendHandshakeInitiation(p, false);
    this.keepKeyFreshSending(p);
  }

  private encrypt(p: Peer, kp: Keypair, pkt: Uint8Array, mtu: number): Uint8Array {
    const counter = kp.sendNonce++;
    const pad = this.codec.transportPadding(pkt.length, mtu, p.udpWindow);
    const s4 = this.codec.transportPrefix;
    const d = Buffer.allocUnsafe(s4 + MESSAGE_TRANSPORT_HEADER_SIZE + pkt.length + pad + TAG_SIZE);
    writeU32(d, s4 + TRANSPORT.type, this.codec.pickType(4));
    writeU32(d, s4 + TRANSPORT.receiver, kp.remoteIndex);
    writeU64(d, s4 + TRANSPORT.counter, counter);
    sealInto(
      kp.sendKey,
      writeNonce(this.nonce, counter),
      pkt,
      pad,
      d,
      s4 + MESSAGE_TRANSPORT_HEADER_SIZE,
    );
    this.codec.finishTransport(d);
    if (d.length > p.udpWindow) p.udpWindow = d.length;
    return d;
  }

  private sendBuffers(p: Peer, bufs: Uint8Array[]): boolean {
    if (!p.endpoint) return false;
    this.bind.send(bufs, p.endpoint);
    for (const b of bufs) p.txBytes += b.length;
    return true;
  }

  private keepKeyFreshSending(p: Peer): void {
    const kp = p.keypairs.current;
    if (!kp) return;
    if (
      kp.sendNonce > this.rekeyAfterMessages ||
      (kp.isInitiator && this.clock.now() - kp.created > this.timing.rekeyAfterTime())
    ) {
      this.sendHandshakeInitiation(p, false);
    }
  }

  sendHandshakeInitiation(p: Peer, isRetry: boolean): void {
    if (!this.isUp() || !p.running) return;
    if (!isRetry) {
      p.timers.handshakeAttempts = 0;
      p.timers.maxHandshakeAttempts = this.timing.maxHandshakeAttempts();
    }
    const now = this.clock.now();
    if (now - p.handshake.lastSentHandshake < this.timing.rekeyTimeoutLo()) return;
    p.handshake.lastSentHandshake = now;
    if (p.handshakePendingSince === null && p.endpoint) p.handshakePendingSince = now;
    const msg = createMessageInitiation(this, p, this.codec.pickType(1));
    if (!msg) return;
    p.cookieGenerator.addMacs(msg, now);
    const bufs = this.codec.preamble(this.clock.wallNow());
    bufs.push(this.codec.sealHandshake(1, msg, p.udpWindow));
    timersAnyAuthenticatedPacketTraversal(this, p);
    timersAnyAuthenticatedPacketSent(this, p);
    this.sendBuffers(p, bufs);
    timersHandshakeInitiated(this, p);
  }

  private sendHandshakeResponse(p: Peer): void {
    const now = this.clock.now();
    p.handshake.lastSentHandshake = now;
    const msg = createMessageResponse(this, p, this.codec.pickType(2));
    if (!msg) return;
    p.cookieGenerator.addMacs(msg, now);
    if (!beginSymmetricSession(this, p)) return;
    timersSessionDerived(this, p);
    timersAnyAuthenticatedPacketTraversal(this, p);
    timersAnyAuthenticatedPacketSent(this, p);
    this.sendBuffers(p, [this.codec.sealHandshake(2, msg, p.udpWindow)]);
  }

  private sendCookieReply(msg: Uint8Array, from: Endpoint): void {
    if (this.awg.disableCookies) return;
    const reply = this.cookieChecker.createReply(
      msg,
      readU32(msg, 4),
      sourceBytes(from),
      this.clock.now(),
    );
    writeU32(reply, COOKIE.type, this.codec.pickType(3));
    this.bind.send([this.codec.sealHandshake(3, reply, DEFAULT_UDP_WINDOW)], from);
  }

  // ---- receive path -----------------------------------------------------------------------

  private onDatagram(data: Uint8Array, from: Endpoint): void {
    if (!this.isUp()) return;
    const c = this.codec.classify(data);
    if (!c) return;
    switch (c.kind) {
      case 1:
      case 2:
        this.receiveHandshake(c.kind, c.msg, from);
        break;
      case 3:
        this.receiveCookieReply(c.msg);
        break;
      case 4:
        this.receiveTransport(c.msg, from, data.length);
        break;
    }
  }

  /** Under load when handshake messages arrive faster than the threshold (held for 1 s). */
  isUnderLoad(): boolean {
    return this.clock.now() < this.underLoadUntil;
  }

  private countHandshake(): void {
    const now = this.clock.now();
    if (now - this.hsWindowStart >= 1000) {
      this.hsWindowStart = now;
      this.hsWindowCount = 0;
    }
    if (++this.hsWindowCount >= this.underLoadThreshold)
      this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME;
  }

  private receiveHandshake(kind: 1 | 2, msg: Uint8Array, from: Endpoint): void {
    if (!this.staticPublic || !this.cookieChecker.checkMAC1(msg)) return;
    this.countHandshake();
    if (this.isUnderLoad()) {
      if (!this.cookieChecker.checkMAC2(msg, sourceBytes(from), this.clock.now())) {
        this.sendCookieReply(msg, from);
        return;
      }
      if (!this.rateLimiter.allow(from.address, this.clock.now())) return;
    }
    if (kind === 1) {
      const p = consumeMessageInitiation(this, msg);
      if (!p || !p.running) return;
      this.setEndpointFromPacket(p, from);
      p.rxBytes += msg.length;
      timersAnyAuthenticatedPacketTraversal(this, p);
      timersAnyAuthenticatedPacketReceived(this, p);
      this.sendHandshakeResponse(p);
    } else {
      const p = consumeMessageResponse(this, msg);
      if (!p || !p.running) return;
      this.setEndpointFromPacket(p, from);
      p.rxBytes += msg.length;
      timersAnyAuthenticatedPacketTraversal(this, p);
      timersAnyAuthenticatedPacketReceived(this, p);
      if (!beginSymmetricSession(this, p)) return;
      timersSessionDerived(this, p);
      timersHandshakeComplete(this, p);
      this.sendKeepalive(p);
    }
  }

  private receiveCookieReply(msg: Uint8Array): void {
    const e = this.indices.get(readU32(msg, COOKIE.receiver));
    if (!e) return;
    e.peer.cookieGenerator.consumeReply(msg, this.clock.now());
  }

  private receiveTransport(msg: Uint8Array, from: Endpoint, datagramLength: number): void {
    if (msg.length < MIN_MESSAGE_SIZE) return;
    const e = this.indices.get(readU32(msg, TRANSPORT.receiver));
    if (!e || !e.keypair) return;
    const { peer: p, keypair: kp } = e;
    if (!p.running || this.clock.now() - kp.created >= this.timing.rejectAfterTime()) return;
    const counter = readU64(msg, TRANSPORT.counter);
    if (!(counter < this.rejectAfterMessages)) return;
    const plain = openWithNonce(
      kp.recvKey,
      writeNonce(this.nonce, counter),
      msg.subarray(MESSAGE_TRANSPORT_HEADER_SIZE),
    );
    if (!plain) return;
    if (!kp.replay.validate(counter, this.rejectAfterMessages)) return;
    if (receivedWithKeypair(this, p, kp)) {
      timersHandshakeComplete(this, p);
      this.sendStagedPackets(p);
    }
    this.keepKeyFreshReceiving(p);
    timersAnyAuthenticatedPacketTraversal(this, p);
    timersAnyAuthenticatedPacketReceived(this, p);
    p.rxBytes += datagramLength;
    const w = this.codec.transportPrefix + MESSAGE_TRANSPORT_HEADER_SIZE + plain.length;
    if (w > p.udpWindow) p.udpWindow = w;
    this.setEndpointFromPacket(p, from);
    // keepalive: empty, or (AWG 3 padded keepalives) first byte zero; IP packets start with 4/6
    if (plain.length === 0 || plain[0] === 0) return;
    const pkt = innerPacket(plain);
    if (!pkt) return;
    const src = sourceOf(pkt);
    if (!src || this.allowedIps.lookup(src) !== p) return;
    timersDataReceived(this, p);
    this.tun.write([pkt]);
  }

  private keepKeyFreshReceiving(p: Peer): void {
    if (p.timers.sentLastMinuteHandshake) return;
    const kp = p.keypairs.current;
    if (kp && kp.isInitiator && this.clock.now() - kp.created > this.timing.lastMinuteRekey()) {
      p.timers.sentLastMinuteHandshake = true;
      this.sendHandshakeInitiation(p, false);
    }
  }
}

/** Truncates to the IP length field; null when not a sane IPv4/IPv6 packet. */
function innerPacket(b: Uint8Array): Uint8Array | null {
  const v = b[0]! >> 4;
  if (v === 4 && b.length >= 20) {
    const len = (b[2]! << 8) | b[3]!;
    return len >= 20 && len <= b.length ? b.subarray(0, len) : null;
  }
  if (v === 6 && b.length >= 40) {
    const len = ((b[4]! << 8) | b[5]!) + 40;
    return len <= b.length ? b.subarray(0, len) : null;
  }
  return null;
}

function destinationOf(b: Uint8Array): Uint8Array | null {
  const v = b[0]! >> 4;
  if (v === 4 && b.length >= 20) return b.subarray(16, 20);
  if (v === 6 && b.length >= 40) return b.subarray(24, 40);
  return null;
}

function sourceOf(b: Uint8Array): Uint8Array | null {
  const v = b[0]! >> 4;
  if (v === 4) return b.subarray(12, 16);
  if (v === 6) return b.subarray(8, 24);
  return null;
}

/** Cookie source bytes: address ‖ u16le port (only we recompute it). */
function sourceBytes(ep: Endpoint): Uint8Array {
  const a = addressBytes(ep.address) ?? new Uint8Array(0);
  const out = new Uint8Array(a.length + 2);
  out.set(a);
  out[a.length] = ep.port & 0xff;
  out[a.length + 1] = ep.port >> 8;
  return out;
}

export { formatEndpoint };
