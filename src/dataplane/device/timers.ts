/**
 * Peer timers, as in wireguard-go `timers.go`: *hooks* (timersXxx) are called by the send and
 * receive paths and (re)arm or cancel timers; *expiry handlers* (expiredXxx) run when a timer
 * fires. AWG 3 timing ranges replace the constants when configured
 * (docs/dataplane.md#timing-ranges).
 */
import {
  KEEPALIVE_TIMEOUT,
  MAX_TIMER_HANDSHAKES,
  REJECT_AFTER_TIME,
  REKEY_AFTER_TIME,
  REKEY_TIMEOUT,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  RERESOLVE_AFTER_ATTEMPTS,
} from '../constants.js';
import type { AwgParams } from '../awg/params.js';
import type { RandomSource } from '../awg/random.js';
import { type UintRange, isZeroRange, pickOne } from '../awg/range.js';
import type { Clock } from '../clock.js';
import type { Peer, PeerExpiry } from './peer.js';

const S = 1000;

/** Durations in ms, drawn per use from the AWG ranges or the WireGuard constants. */
export class Timing {
  constructor(
    private readonly params: () => AwgParams,
    private readonly rng: RandomSource,
  ) {}
  private pick(r: UintRange, def: number): number {
    return isZeroRange(r) ? def : pickOne(r, this.rng) * S;
  }
  private lo(r: UintRange, def: number): number {
    return isZeroRange(r) ? def : r.lo * S;
  }
  private hi(r: UintRange, def: number): number {
    return isZeroRange(r) ? def : r.hi * S;
  }
  jitter(): number {
    return this.rng.intn(REKEY_TIMEOUT_JITTER_MAX_MS);
  }
  rekeyTimeout(): number {
    return this.pick(this.params().rekeyTimeout, REKEY_TIMEOUT);
  }
  /** initiation rate limit */
  rekeyTimeoutLo(): number {
    return this.lo(this.params().rekeyTimeout, REKEY_TIMEOUT);
  }
  keepaliveTimeout(): number {
    return this.pick(this.params().keepaliveTimeout, KEEPALIVE_TIMEOUT);
  }
  newHandshakeTimeout(): number {
    return (
      this.hi(this.params().keepaliveTimeout, KEEPALIVE_TIMEOUT) +
      this.rekeyTimeout() +
      this.jitter()
    );
  }
  rekeyAfterTime(): number {
    return this.pick(this.params().rekeyAfterTime, REKEY_AFTER_TIME);
  }
  rejectAfterTime(): number {
    return this.hi(this.params().rejectAfterTime, REJECT_AFTER_TIME);
  }
  lastMinuteRekey(): number {
    const p = this.params();
    return Math.max(
      0,
      this.pick(p.rejectAfterTime, REJECT_AFTER_TIME) -
        this.lo(p.keepaliveTimeout, KEEPALIVE_TIMEOUT) -
        this.lo(p.rekeyTimeout, REKEY_TIMEOUT),
    );
  }
  maxHandshakeAttempts(): number {
    const r = this.params().maxHandshakeAttempts;
    return isZeroRange(r) ? MAX_TIMER_HANDSHAKES : pickOne(r, this.rng);
  }
  persistentKeepalive(r: UintRange): number {
    return isZeroRange(r) ? 0 : pickOne(r, this.rng) * S;
  }
}

/** What the timers need from the device. */
export interface TimerHost {
  readonly clock: Clock;
  readonly timing: Timing;
  isUp(): boolean;
  sendKeepalive(p: Peer): void;
  sendHandshakeInitiation(p: Peer, isRetry: boolean): void;
  zeroAndFlushAll(p: Peer): void;
  handshakeComplete(p: Peer): void;
  handshakeGaveUp(p: Peer): void;
  reresolveEndpoint(p: Peer): void;
}

const active = (h: TimerHost, p: Peer) => p.running && h.isUp();

// ---- hooks --------------------------------------------------------------------------------

/** After sending a non-keepalive data packet. */
export function timersDataSent(h: TimerHost, p: Peer): void {
  if (active(h, p) && !p.timers.newHandshake.isPending)
    p.timers.newHandshake.mod(h.timing.newHandshakeTimeout());
}

/** After receiving a non-keepalive data packet. */
export function timersDataReceived(h: TimerHost, p: Peer): void {
  if (!active(h, p)) return;
  if (!p.timers.sendKeepalive.isPending) p.timers.sendKeepalive.mod(h.timing.keepaliveTimeout());
  else p.timers.needAnotherKeepalive = true;
}

export function timersAnyAuthenticatedPacketSent(h: TimerHost, p: Peer): void {
  if (active(h, p)) p.timers.sendKeepalive.del();
}

export function timersAnyAuthenticatedPacketReceived(h: TimerHost, p: Peer): void {
  if (active(h, p)) p.timers.newHandshake.del();
}

export function timersHandshakeInitiated(h: TimerHost, p: Peer): void {
  if (active(h, p)) p.timers.retransmitHandshake.mod(h.timing.rekeyTimeout() + h.timing.jitter());
}

export function timersHandshakeComplete(h: TimerHost, p: Peer): void {
  if (active(h, p)) p.timers.retransmitHandshake.del();
  p.timers.handshakeAttempts = 0;
  p.timers.maxHandshakeAttempts = h.timing.maxHandshakeAttempts();
  p.timers.sentLastMinuteHandshake = false;
  p.lastHandshakeWall = h.clock.wallNow();
  p.handshakePendingSince = null;
  h.handshakeComplete(p);
}

export function timersSessionDerived(h: TimerHost, p: Peer): void {
  if (active(h, p)) p.timers.zeroKeyMaterial.mod(h.timing.rejectAfterTime() * 3);
}

/** Before sending or after receiving any authenticated packet. */
export function timersAnyAuthenticatedPacketTraversal(h: TimerHost, p: Peer): void {
  const ms = h.timing.persistentKeepalive(p.persistentKeepalive);
  if (ms > 0 && active(h, p)) p.timers.persistentKeepalive.mod(ms);
}

export function timersStop(p: Peer): void {
  p.timers.retransmitHandshake.del();
  p.timers.sendKeepalive.del();
  p.timers.newHandshake.del();
  p.timers.zeroKeyMaterial.del();
  p.timers.persistentKeepalive.del();
}

// ---- expiry handlers ----------------------------------------------------------------------

export function expiredRetransmitHandshake(h: TimerHost, p: Peer): void {
  if (!active(h, p)) return;
  if (p.timers.handshakeAttempts > p.timers.maxHandshakeAttempts) {
    p.timers.sendKeepalive.del();
    p.staged = [];
    if (!p.timers.zeroKeyMaterial.isPending)
      p.timers.zeroKeyMaterial.mod(h.timing.rejectAfterTime() * 3);
    h.handshakeGaveUp(p);
    return;
  }
  p.timers.handshakeAttempts++;
  if (p.endpointHost && p.timers.handshakeAttempts % RERESOLVE_AFTER_ATTEMPTS === 0)
    h.reresolveEndpoint(p);
  h.sendHandshakeInitiation(p, true);
}

export function expiredSendKeepalive(h: TimerHost, p: Peer): void {
  if (!active(h, p)) return;
  h.sendKeepalive(p);
  if (p.timers.needAnotherKeepalive) {
    p.timers.needAnotherKeepalive = false;
    p.timers.sendKeepalive.mod(h.timing.keepaliveTimeout());
  }
}

export function expiredNewHandshake(h: TimerHost, p: Peer): void {
  if (active(h, p)) h.sendHandshakeInitiation(p, false);
}

export function expiredZeroKeyMaterial(h: TimerHost, p: Peer): void {
  h.zeroAndFlushAll(p);
}

export function expiredPersistentKeepalive(h: TimerHost, p: Peer): void {
  if (active(h, p) && !isZeroRange(p.persistentKeepalive)) h.sendKeepalive(p);
}

export function expiryHandlers(h: TimerHost): PeerExpiry {
  return {
    retransmitHandshake: (p) => expiredRetransmitHandshake(h, p),
    sendKeepalive: (p) => expiredSendKeepalive(h, p),
    newHandshake: (p) => expiredNewHandshake(h, p),
    zeroKeyMaterial: (p) => expiredZeroKeyMaterial(h, p),
    persistentKeepalive: (p) => expiredPersistentKeepalive(h, p),
  };
}
