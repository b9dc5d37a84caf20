/** The captures the model answers in (test/fixtures/macos/) and the laptop built from them. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseNetstatRoutes, type NetstatRoute } from '../../../src/platform/darwin/netstat.js';
import type { MacHost } from './model.js';
import type { MRoute } from './state.js';

const CAPTURES = new URL('../../fixtures/macos/', import.meta.url);

/** the verbatim part of a capture in test/fixtures/macos */
export function capture(rel: string): string {
  const text = readFileSync(fileURLToPath(new URL(rel, CAPTURES)), 'utf8');
  const marker = '# ---- verbatim output below this line ----\n';
  const i = text.indexOf(marker);
  if (i < 0) throw new Error(`macos-host: capture ${rel} has no marker line`);
  return text.slice(i + marker.length);
}

export const LAPTOP_NETSTAT = 'routes/netstat-rn-split-0-1-128-1-utun2-tun2socks.txt';

function capturedRoutes(): NetstatRoute[] {
  return parseNetstatRoutes(capture(LAPTOP_NETSTAT));
}

/**
 * A MacBook on Wi-Fi. Its IPv4 table is the captured `netstat -rn` of the tun2socks report
 * (routes/netstat-rn-split-0-1-128-1-utun2-tun2socks.txt), read with the project's parser,
 * without the VPN's lines (the utun2 routes and its server's host route), plus the
 * interface-scoped default (flag I) that macOS keeps beside the primary one
 * (routes/netstat-nr-two-defaults-scoped-2020.txt). Interfaces and services follow the
 * captures' devices (en0 = link#11).
 */
export function furnishLaptop(h: MacHost): void {
  h.interfaces.set('lo0', {
    name: 'lo0',
    index: 1,
    mtu: 16384,
    up: true,
    inet: [{ address: '127.0.0.1', prefixlen: 8 }],
    inet6: [
      { address: '::1', prefixlen: 128 },
      { address: 'fe80::1', prefixlen: 64 },
    ],
  });
  h.interfaces.set('en0', {
    name: 'en0',
    index: 11,
    mtu: 1500,
    up: true,
    inet: [{ address: '192.168.1.175', prefixlen: 24 }],
    inet6: [],
  });
  h.routes = capturedRoutes()
    .filter((r) => r.netif !== 'utun2' && !(r.destination === '192.168.1.51' && r.viaGateway))
    .map((r) => {
      if (!r.dst)
        throw new Error(`macos-host: capture row without a destination: ${r.destination}`);
      const g = r.gateway;
      const gateway =
        g.kind === 'link'
          ? `link#${g.index}`
          : g.kind === 'ip'
            ? g.address
            : g.kind === 'mac'
              ? g.address
              : g.name;
      const m: MRoute = {
        family: r.family,
        dst: r.dst,
        gateway,
        flags: r.flags,
        netif: r.netif,
        system: true,
      };
      if (r.expire !== undefined) m.expire = r.expire;
      return m;
    });
  h.routes.splice(1, 0, {
    family: 4,
    dst: '0.0.0.0/0',
    gateway: '192.168.1.1',
    flags: 'UGScIg',
    netif: 'en0',
    system: true,
  });
  h.services = [
    {
      name: 'Wi-Fi',
      device: 'en0',
      enabled: true,
      dns: [],
      search: [],
      dhcp: { dns: ['192.168.1.1'], search: ['home.arpa'] },
    },
    {
      name: 'Thunderbolt Bridge',
      device: 'bridge0',
      enabled: true,
      dns: ['192.168.7.1'],
      search: ['corp.example'],
    },
    { name: 'iPhone USB', device: 'en5', enabled: false, dns: [], search: [] },
  ];
}

/** the laptop's uplink given IPv6 (`MacHost.withIpv6Uplink`) */
export function addIpv6Uplink(h: MacHost): void {
  h.interfaces.get('en0')!.inet6.push({ address: '2001:db8:1::175', prefixlen: 64 });
  h.routes.push(
    { family: 6, dst: '::/0', gateway: 'fe80::1%en0', flags: 'UGcg', netif: 'en0', system: true },
    {
      family: 6,
      dst: '2001:db8:1::/64',
      gateway: 'link#11',
      flags: 'UC',
      netif: 'en0',
      system: true,
    },
  );
}
