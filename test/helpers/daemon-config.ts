/**
 * The one-tunnel config the daemon's unit tests apply through fake drivers: a WireGuard tunnel
 * `vpn` (10.200.50.1/24, one peer at 10.200.9.2:51820) and, unless `rule` is false, a rule `web`
 * sending `app-web` through it.
 */
import { wgKeyPair } from './awg.js';

export interface OneTunnelConfig {
  /** the peer's allowed IPs (default 0.0.0.0/0) */
  allowedIPs?: string;
  /** the `web` rule (default on) */
  rule?: boolean;
  /** `killSwitch: on` (default off) */
  killSwitch?: boolean;
}

/** the tunnel's own keys and its peer's: one pair per test process, so configs differ only where asked */
export const ONE_TUNNEL_KEYS = { me: wgKeyPair(), peer: wgKeyPair() };

export function oneTunnelConfig(o: OneTunnelConfig = {}): string {
  const { me, peer } = ONE_TUNNEL_KEYS;
  const rules = `rules:
  - name: web
    match: { name: app-web }
    target: vpn
`;
  return `version: 1
tunnels:
  vpn:
    type: wireguard
    privateKey: "${me.privateKey}"
    addresses: [10.200.50.1/24]
    peers:
      - publicKey: "${peer.publicKey}"
        endpoint: 10.200.9.2:51820
        allowedIPs: [${o.allowedIPs ?? '0.0.0.0/0'}]
${o.killSwitch ? 'killSwitch: on\n' : ''}${o.rule === false ? '' : rules}`;
}
