/**
 * Semantic checks of a peer's persistent keepalive range (AmneziaWG 3.x, `amneziawg`
 * tunnels; schema-tunnels.ts AwgPeer): what the schema cannot say alone. A wireguard
 * tunnel's peer cannot hold a range at all (its schema says why).
 */
import type { PathKey } from './positions.js';
import type { WgLikeTunnel } from './schema-tunnels.js';
import { rangeOf } from './schema-values.js';

export function checkKeepalive(
  t: WgLikeTunnel,
  base: PathKey[],
  err: (path: PathKey[], message: string) => void,
): void {
  t.peers.forEach((p, pi) => {
    if (p.persistentKeepalive === undefined) return;
    const path = [...base, 'peers', pi, 'persistentKeepalive'];
    const r = rangeOf(p.persistentKeepalive);
    if (r.min === r.max) return;
    if (r.min > r.max) err(path, `range ${r.min}-${r.max} is reversed`);
    // 0 means "off" only as the whole value; a draw of 0 s would send keepalives back to back
    else if (r.min === 0)
      err(
        path,
        `range ${r.min}-${r.max} starts at 0; use 0 alone to turn keepalives off, or start at 1`,
      );
    else if (t.engine === 'kernel')
      err(
        path,
        `Linux's WireGuard module keeps one keepalive interval, but ${r.min}-${r.max} is a range (AmneziaWG 3.x): use engine: embedded or {external: …amneziawg-go 3.x}, or one number`,
      );
  });
}
