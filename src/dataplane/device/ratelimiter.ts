/**
 * Per-source token bucket for handshake messages under load (wireguard-go `ratelimiter`):
 * 20 packets/s, burst 5; a new source starts with burst − 1 tokens.
 *
 * A source is an IPv4 address, or the /64 prefix of an IPv6 address (as the Linux kernel's
 * WireGuard keys its table): one host commonly holds a whole /64, so keying by the full
 * address would give it 2^64 fresh buckets. An IPv4-mapped IPv6 address is its IPv4 address.
 */
import ipaddr, { type IPv4, type IPv6 } from '../../util/ipaddr.js';
import {
  RATELIMIT_BURST,
  RATELIMIT_GC_INTERVAL,
  RATELIMIT_PACKETS_PER_SECOND,
} from '../constants.js';

const COST = 1000 / RATELIMIT_PACKETS_PER_SECOND; // ms of budget per packet
const MAX_TOKENS = COST * RATELIMIT_BURST;

/** The bucket key of a source address: `4:<v4>` or `6:<first 8 bytes, hex>` (the /64). */
export function rateLimitKey(address: string): string {
  let a: IPv4 | IPv6;
  try {
    a = ipaddr.parse(address.replace(/%.*$/, ''));
  } catch {
    return `?:${address}`;
  }
  if (a.kind() === 'ipv6' && (a as IPv6).isIPv4MappedAddress()) a = (a as IPv6).toIPv4Address();
  if (a.kind() === 'ipv4') return `4:${a.toString()}`;
  return `6:${Buffer.from(a.toByteArray().slice(0, 8)).toString('hex')}`;
}

export class RateLimiter {
  private table = new Map<string, { tokens: number; last: number }>();
  private lastGc = 0;

  /** `source`: the sender's address; IPv6 senders share one bucket per /64 */
  allow(source: string, now: number): boolean {
    if (now - this.lastGc > RATELIMIT_GC_INTERVAL) this.gc(now);
    const key = rateLimitKey(source);
    const e = this.table.get(key);
    if (!e) {
      this.table.set(key, { tokens: MAX_TOKENS - COST, last: now });
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
