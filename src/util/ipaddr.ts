/**
 * ipaddr.js, loaded with `require`. Imported as an ES module (Node's translation of a
 * CommonJS file), this one small file grows the process by megabytes of RSS; required, it
 * costs almost nothing (bench/RESULTS.md, Step 10 memory). Every engine process and the
 * daemon load it. Import ipaddr from here, never from 'ipaddr.js'
 * (eslint enforces it).
 */
import { createRequire } from 'node:module';
import type Ipaddr from 'ipaddr.js';

const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof Ipaddr;
export default ipaddr;
export type IPv4 = Ipaddr.IPv4;
export type IPv6 = Ipaddr.IPv6;

/** is `host` inside one of `cidrs` (same family)? */
export function inSubnets(host: string, cidrs: readonly string[]): boolean {
  if (!ipaddr.isValid(host)) return false;
  let a = ipaddr.parse(host);
  if (a.kind() === 'ipv6' && (a as Ipaddr.IPv6).isIPv4MappedAddress())
    a = (a as Ipaddr.IPv6).toIPv4Address();
  return cidrs.some((c) => {
    try {
      const [net, len] = ipaddr.parseCIDR(c);
      return net.kind() === a.kind() && a.match([net, len] as never);
    } catch {
      return false;
    }
  });
}
