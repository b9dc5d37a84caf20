/**
 * AllowedIPs that more than one [Peer] claims: WireGuard keeps each prefix for one peer only,
 * so `awg import` finds the claims a later peer takes over. Pure.
 */
import { parseCidr } from '../cidr.js';
import { splitList } from '../ini.js';
import type { IniSection } from '../ini.js';
import { parseIniAddress } from './values.js';

/** Where a prefix is claimed: the AllowedIPs item and its [Peer] header. */
export interface Claim {
  line: number;
  col: number;
  value: string;
  peerLine: number;
}

/**
 * WireGuard's allowed-IPs table maps each prefix (host bits cleared) to one peer; setting
 * a prefix that is already there moves it to the new peer (wireguard-go `insert` on an
 * exact node, the kernel's `add` likewise), and wg-quick sets peers in file order. So the
 * last [Peer] that lists a prefix gets it. Returns each earlier claim, by `line:col`, with
 * the claim that wins. Claims within one peer do not compete.
 */
export function laterClaims(peers: IniSection[]): Map<string, Claim> {
  const claims: (Claim & { key: string; peer: number })[] = [];
  peers.forEach((s, peer) => {
    for (const e of s.entries) {
      if (e.lower !== 'allowedips') continue;
      for (const item of splitList(e)) {
        const written = parseIniAddress(item.value, true);
        const c = typeof written === 'string' ? undefined : parseCidr(written.value);
        if (typeof written === 'string' || c === undefined) continue;
        const key = `${c.family}:${c.network}/${c.len}`;
        claims.push({
          key,
          peer,
          line: e.line,
          col: item.col,
          value: written.value,
          peerLine: s.line,
        });
      }
    }
  });
  const last = new Map<string, Claim & { peer: number }>();
  for (const c of claims) last.set(c.key, c);
  const lost = new Map<string, Claim>();
  for (const c of claims) {
    const w = last.get(c.key)!;
    if (w.peer !== c.peer)
      lost.set(`${c.line}:${c.col}`, {
        line: w.line,
        col: w.col,
        value: w.value,
        peerLine: w.peerLine,
      });
  }
  return lost;
}
