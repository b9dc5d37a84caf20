/**
 * What a running WireGuard/AmneziaWG engine really holds, as an EngineSpec for the planner:
 * the spec we configured, corrected by what the device reports (UAPI `get=1` for a detached
 * engine, the device snapshot in the daemon). Someone with access to the UAPI socket may have
 * run `wg set`: a peer we did not configure, an allowed IP added to or removed from one of
 * ours, a removed peer, another private key. Each shows up here, so the plan has an engine
 * `update` (cause drift) and its UAPI delta removes the extra peer / rewrites the allowed
 * IPs. Endpoints and keepalives of our peers stay as configured (roaming is not drift).
 * Pure.
 */
import { canonicalPrefix } from '../../config/cidr.js';
import type { KeepaliveSpec } from '../../config/keepalive.js';
import type { WgEnginePeer, WgEngineSpec } from '../../model/resources.js';

export interface LivePeer {
  /** base64 */
  publicKey: string;
  /** as the device prints them */
  allowedIPs: readonly string[];
  endpoint: string | null;
  persistentKeepalive: KeepaliveSpec;
}

/**
 * A device's `persistent_keepalive_interval` (a number, or AmneziaWG 3.x `"MIN-MAX"`) in the
 * model's form (config/keepalive.ts): a one-value range is its number, anything unreadable 0.
 */
export function liveKeepalive(v: unknown): KeepaliveSpec {
  const m = /^(\d+)(?:-(\d+))?$/.exec(String(v ?? 0).trim());
  if (!m) return 0;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return lo === hi ? lo : `${lo}-${hi}`;
}

export interface LiveDevice {
  /** fingerprint of the live private key, `none` without one */
  privateKey: string;
  fwmark: number;
  peers: readonly LivePeer[];
}

function canonical(cidr: string): string {
  try {
    return canonicalPrefix(cidr).cidr;
  } catch {
    return cidr; // not a prefix we know how to read: kept as is, so it differs
  }
}

/** `ours` when the live set equals it (order kept), else ours still there + the extras */
function liveAllowed(ours: readonly string[], live: readonly string[]): string[] {
  const have = new Set(live.map(canonical));
  const want = new Set(ours);
  if (have.size === want.size && [...have].every((a) => want.has(a))) return [...ours];
  return [...ours.filter((a) => have.has(a)), ...[...have].filter((a) => !want.has(a)).sort()];
}

export function liveWgSpec(spec: WgEngineSpec, live: LiveDevice): WgEngineSpec {
  const configured = new Map(spec.config.peers.map((p) => [p.publicKey, p]));
  const byKey = new Map(live.peers.map((p) => [p.publicKey, p]));
  const peers: WgEnginePeer[] = [];
  for (const p of spec.config.peers) {
    const l = byKey.get(p.publicKey);
    if (l) peers.push({ ...p, allowedIPs: liveAllowed(p.allowedIPs, l.allowedIPs) });
  }
  for (const l of live.peers) {
    if (configured.has(l.publicKey)) continue;
    peers.push({
      publicKey: l.publicKey,
      presharedKey: null,
      endpoint: l.endpoint,
      allowedIPs: liveAllowed([], l.allowedIPs),
      persistentKeepalive: l.persistentKeepalive,
    });
  }
  return {
    ...spec,
    config: { ...spec.config, privateKey: live.privateKey, fwmark: live.fwmark, peers },
  };
}
