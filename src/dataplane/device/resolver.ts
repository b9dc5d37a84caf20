/** Hostname resolution for endpoints, injected so tests need no DNS. */
import { lookup } from 'node:dns/promises';

export interface Resolver {
  /** numeric addresses for `host`, preferred first; rejects when the name does not resolve */
  resolve(host: string): Promise<string[]>;
}

export const dnsResolver: Resolver = {
  async resolve(host) {
    const r = await lookup(host, { all: true });
    return r.map((a) => a.address);
  },
};
