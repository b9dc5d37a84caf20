/**
 * The reverse of import: a WireGuard / AmneziaWG tunnel → wg-quick INI text. Pure.
 * With `setconf: true` only the keys wg(8)/awg(8) `setconf` accepts are written
 * (no Address, DNS, MTU). Secrets are resolved through the caller's function, so this
 * module never reads files or the environment.
 */
import { effectiveMtu } from './mtu.js';
import { firstObfuscation } from './profiles.js';
import type { AwgObfuscation, Secret, U32Range, WgLikeTunnel } from './schema.js';

export interface ExportOptions {
  setconf?: boolean;
  /** the `# awg tunnel NAME` first line (default true) */
  header?: boolean;
  /**
   * `effective` (default): MTU written even when defaulted, as awg-quick would take its link
   * MTU − 80; `explicit`: only a `mtu:` the tunnel sets (an import then gives the tunnel back
   * as it was: the vpn:// key carries the effective MTU in a field of its own)
   */
  mtu?: 'effective' | 'explicit';
}

/** `5`, `"5-10"` and `{min, max}` → the INI form (`5` or `5-10`). */
export function formatRange(r: U32Range): string {
  if (typeof r === 'number' || typeof r === 'string') return String(r);
  return r.min === r.max ? String(r.min) : `${r.min}-${r.max}`;
}

export const OBF_KEYS: [keyof AwgObfuscation, string][] = [
  ['jc', 'Jc'],
  ['jmin', 'Jmin'],
  ['jmax', 'Jmax'],
  ['s1', 'S1'],
  ['s2', 'S2'],
  ['s3', 'S3'],
  ['s4', 'S4'],
  ['h1', 'H1'],
  ['h2', 'H2'],
  ['h3', 'H3'],
  ['h4', 'H4'],
  ['i1', 'I1'],
  ['i2', 'I2'],
  ['i3', 'I3'],
  ['i4', 'I4'],
  ['i5', 'I5'],
  ['headerProtectionKey', 'HeaderProtectionKey'],
  ['contentPaddingAddition', 'ContentPaddingAddition'],
  ['rekeyAfterTime', 'RekeyAfterTime'],
  ['rekeyTimeout', 'RekeyTimeout'],
  ['rejectAfterTime', 'RejectAfterTime'],
  ['keepaliveTimeout', 'KeepaliveTimeout'],
  ['maxHandshakeAttempts', 'MaxHandshakeAttempts'],
  ['randomTrailers', 'RandomTrailers'],
  ['disableCookies', 'DisableCookies'],
];

export function exportWgQuick(
  tunnelName: string,
  tunnel: WgLikeTunnel,
  resolveSecret: (s: Secret) => string,
  opts: ExportOptions = {},
): string {
  const out: string[] = [
    ...(opts.header === false ? [] : [`# awg tunnel ${tunnelName}`]),
    '[Interface]',
  ];
  const kv = (k: string, v: string | number): void => void out.push(`${k} = ${v}`);
  kv('PrivateKey', resolveSecret(tunnel.privateKey).trim());
  if (!opts.setconf) {
    kv('Address', tunnel.addresses.join(', '));
    if (tunnel.dns && tunnel.dns.length > 0) kv('DNS', tunnel.dns.join(', '));
    // written even when defaulted: awg-quick would take its link MTU − 80, with no room for S4
    if (opts.mtu !== 'explicit') kv('MTU', effectiveMtu(tunnel));
    else if (tunnel.mtu !== undefined) kv('MTU', tunnel.mtu);
  }
  if (tunnel.listenPort !== undefined) kv('ListenPort', tunnel.listenPort);
  if (tunnel.type === 'amneziawg') {
    const o = firstObfuscation(tunnel);
    for (const [k, name] of OBF_KEYS) {
      const v = o[k];
      if (v === undefined) continue;
      if (k === 'headerProtectionKey') kv(name, resolveSecret(v as Secret).trim());
      // awg(8) reads RandomTrailers/DisableCookies as on/off (or an integer)
      else if (typeof v === 'boolean') kv(name, v ? 'on' : 'off');
      else
        kv(name, typeof v === 'object' || typeof v === 'string' ? formatRange(v as U32Range) : v);
    }
  }
  for (const p of tunnel.peers) {
    out.push('', '[Peer]');
    kv('PublicKey', p.publicKey);
    if (p.presharedKey !== undefined) kv('PresharedKey', resolveSecret(p.presharedKey).trim());
    if (p.allowedIPs && p.allowedIPs.length > 0) kv('AllowedIPs', p.allowedIPs.join(', '));
    if (p.endpoint !== undefined) kv('Endpoint', p.endpoint);
    // AmneziaWG 3.x: a range as awg(8) reads it ("25-35")
    if (p.persistentKeepalive !== undefined)
      kv('PersistentKeepalive', formatRange(p.persistentKeepalive));
  }
  return out.join('\n') + '\n';
}
