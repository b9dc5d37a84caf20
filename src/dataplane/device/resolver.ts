/** Hostname resolution for endpoints, injected so tests need no DNS. */
import { lookup } from 'node:dns/promises';

export interface Resolver {
  /**
   * numeric addresses for `host`, preferred first; rejects when the name does not resolve.
   * `mark`: the device's fwmark (the bypass mark), for a resolver whose own queries must
   * carry it to pass the kill switch (resources/endpoints.ts).
   */
  resolve(host: string, ctx?: { mark: number }): Promise<string[]>;
}

export const dnsResolver: Resolver = {
  async resolve(host) {
    const r = await lookup(host, { all: true });
    return r.map((a) => a.address);
  },
};
