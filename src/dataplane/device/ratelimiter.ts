/**
 * Per-source-address token bucket for handshake messages under load (wireguard-go
 * `ratelimiter`): 20 packets/s, burst 5; a new source starts with burst − 1 tokens.
 */
import {
  RATELIMIT_BURST,
  RATELIMIT_GC_INTERVAL,
  RATELIMIT_PACKETS_PER_SECOND,
} from '../constants.js';

const COST = 1000 / RATELIMIT_PACKETS_PER_SECOND; // ms of budget per packet
const MAX_TOKENS = COST * RATELIMIT_BURST;

export class RateLimiter {
  private table = new Map<string, { tokens: number; last: number }>();
  private lastGc = 0;

  allow(source: string, now: number): boolean {
    if (now - this.lastGc > RATELIMIT_GC_INTERVAL) this.gc(now);
    const e = this.table.get(source);
    if (!e) {
      this.table.set(source, { tokens: MAX_TOKENS - COST, last: now });
      return true;
    }
    e.tokens = Math.min(MAX_TOKENS, e.tokens + (now - e.last));
    e.last = now;
    if (e.tokens >= COST) {
      e.tokens -= COST;
      return true;
    }
    return false;
  }

  private gc(now: number): void {
    this.lastGc = now;
    for (const [k, e] of this.table) if (now - e.last > RATELIMIT_GC_INTERVAL) this.table.delete(k);
  }
}
