import type { DnsManager } from './dns/parse.js';

/** What fact probing needs from the DNS driver. */
export interface DnsDriverLike {
  manager(): Promise<DnsManager>;
}
