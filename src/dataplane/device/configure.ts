/**
 * Applying a configuration delta to the device (wireguard-go's `IpcSet` handlers): the listen
 * port (rebound first), the private key, the mark, the AmneziaWG parameters and the peers.
 * config.ts has checked the delta before anything here runs; device.ts calls `applyConfig`
 * and owns the state it changes, reached through ConfigureHost.
 */
import { isIP } from 'node:net';
import { AwgCodec } from '../awg/codec.js';
import type { AwgParams } from '../awg/params.js';
import { ZERO_RANGE, isZeroRange, range } from '../awg/range.js';
import { type Bind, type Endpoint, splitHostPort } from '../conn/bind.js';
import { isZeroKey } from '../crypto/keys.js';
import { clamp, disposePrivateKey, importPrivateKey, sharedSecret } from '../crypto/x25519.js';
import type { CookieChecker } from '../noise/cookie.js';
import type { AllowedIPs } from './allowedips.js';
import { type DeviceConfig, type PeerConfig, type PrefixChanges, checkConfig } from './config.js';
import { type HandshakeHost, clearHandshake, dropPrepared, isOwnKey } from './handshake.js';
import { Peer, type PeerExpiry } from './peer.js';
import type { Timing } from './timers.js';

/** The device state a configuration changes (package-internal members of Device). */
export interface ConfigureHost extends HandshakeHost {
  readonly timing: Timing;
  readonly bind: Bind;
  readonly allowedIps: AllowedIPs<Peer>;
  readonly cookieChecker: CookieChecker;
  /** peers by public key (hex) */
  readonly peers: Map<string, Peer>;
  readonly expiry: PeerExpiry;
  awg: AwgParams;
  codec: AwgCodec;
  /** the port asked for (0: any) and the one bound while up */
  listenPort: number;
  boundPort: number;
  fwmark: number;
  isUp(): boolean;
  removePeer(p: Peer): void;
  startPeer(p: Peer): void;
  /** `next`: on the next turn (nothing in flight), else a little later (device.ts) */
  prepareSoon(p: Peer, next?: boolean): void;
  sendKeepalive(p: Peer): void;
  resolveEndpoint(p: Peer): Promise<void>;
  setEndpoint(p: Peer, ep: Endpoint): void;
}

const hexOf = (k: Uint8Array) => Buffer.from(k).toString('hex');

/**
 * Applies a configuration delta. Everything is validated before anything changes; throws
 * AwgError('invalid-config') listing all problems, or AwgError('driver') when rebinding fails.
 */
export async function applyConfig(h: ConfigureHost, cfg: DeviceConfig): Promise<void> {
  const { awg, prefixes } = checkConfig(cfg, {
    awg: h.awg,
    peerCount: h.peers.size,
    hasPeer: (hex) => h.peers.has(hex),
  });

  // rebind first: a port in use fails the whole call with nothing changed
  if (cfg.listenPort !== undefined && cfg.listenPort !== h.listenPort) {
    if (h.isUp()) {
      const previous = h.boundPort;
      try {
        h.boundPort = await h.bind.open(cfg.listenPort);
      } catch (e) {
        h.boundPort = await h.bind.open(previous).catch(() => 0);
        throw e;
      }
    }
    h.listenPort = cfg.listenPort;
  }
  if (cfg.privateKey !== undefined) setPrivateKey(h, cfg.privateKey);
  if (cfg.fwmark !== undefined && cfg.fwmark !== h.fwmark) {
    h.fwmark = cfg.fwmark;
    if (h.isUp()) h.bind.setMark?.(cfg.fwmark);
  }
  if (awg) {
    h.awg = awg;
    h.codec = new AwgCodec(awg, h.rng);
  }
  if (cfg.replacePeers) for (const p of [...h.peers.values()]) h.removePeer(p);
  for (const pc of cfg.peers ?? []) await applyPeer(h, pc, prefixes.get(pc)!);
}

function setPrivateKey(h: ConfigureHost, sk: Uint8Array | null): void {
  disposePrivateKey(h.staticKey);
  if (!sk || isZeroKey(sk)) {
    h.staticPrivate = null;
    h.staticPublic = null;
    h.staticKey = null;
  } else {
    h.staticPrivate = clamp(sk);
    h.staticKey = importPrivateKey(h.staticPrivate);
    h.staticPublic = h.staticKey.publicKey;
    const own = h.peers.get(hexOf(h.staticPublic));
    if (own) h.removePeer(own);
    h.cookieChecker.init(h.staticPublic);
  }
  for (const p of h.peers.values()) {
    p.handshake.precomputedStaticStatic = h.staticKey
      ? sharedSecret(h.staticKey, p.publicKey)
      : null;
    expireCurrentKeypairs(h, p);
    dropPrepared(p);
    if (p.running) h.prepareSoon(p, true);
  }
}

function expireCurrentKeypairs(h: ConfigureHost, p: Peer): void {
  clearHandshake(h, p);
  p.handshake.lastSentHandshake = h.clock.now() - (h.timing.rekeyTimeoutLo() + 1000);
  if (p.keypairs.current) p.keypairs.current.sendNonce = Infinity;
  if (p.keypairs.next) p.keypairs.next.sendNonce = Infinity;
}

async function applyPeer(h: ConfigureHost, pc: PeerConfig, sets: PrefixChanges): Promise<void> {
  if (isOwnKey(h, pc.publicKey)) return;
  const key = hexOf(pc.publicKey);
  let p = h.peers.get(key);
  if (pc.remove) {
    if (p) h.removePeer(p);
    return;
  }
  if (!p) {
    if (pc.updateOnly) return;
    p = new Peer(Uint8Array.from(pc.publicKey), h.clock, h.expiry);
    p.handshake.precomputedStaticStatic = h.staticKey
      ? sharedSecret(h.staticKey, p.publicKey)
      : null;
    p.timers.maxHandshakeAttempts = h.timing.maxHandshakeAttempts();
    h.peers.set(key, p);
    if (h.isUp()) h.startPeer(p);
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
      h.setEndpoint(p, { address: hp.host, port: hp.port });
    } else {
      p.endpointHost = hp;
      if (h.isUp()) await h.resolveEndpoint(p);
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
    if (isZeroRange(was) && !isZeroRange(p.persistentKeepalive) && h.isUp() && p.running)
      h.sendKeepalive(p);
  }
  if (pc.replaceAllowedIps) h.allowedIps.removeValue(p);
  for (const pre of sets.remove) h.allowedIps.remove(pre, p);
  for (const pre of sets.add) h.allowedIps.insert(pre, p);
}
