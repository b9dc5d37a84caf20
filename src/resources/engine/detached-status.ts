/**
 * Status of the detached engines (`awg engine` processes left by a one-shot `awg apply`),
 * read over their UAPI (proxy: control) sockets: last handshake, byte counters, endpoint and
 * keepalive per peer. Secrets in the UAPI answer (private and preshared keys) are dropped here and
 * never leave this function.
 */
import { isProxyEngine } from '../../model/resources.js';
import type { StateStore } from '../../util/state.js';
import { liveKeepalive } from './live-spec.js';
import type { EngineRecord } from './process-host.js';
import { parseGet, uapiGet } from './uapi-client.js';

/** One detached engine as it answers; the daemon's TunnelStatus has the same fields. */
export interface DetachedEngineStatus {
  name: string;
  type: string;
  link?: string;
  up: boolean;
  /** seconds since the most recent handshake of any peer; absent: never */
  lastHandshakeAgeSec?: number;
  rxBytes: number;
  txBytes: number;
  peers: {
    publicKey: string;
    endpoint?: string;
    /** as the engine holds it: seconds, or AmneziaWG 3.x "MIN-MAX"; absent: off */
    persistentKeepalive?: string;
    lastHandshakeAgeSec?: number;
    rxBytes: number;
    txBytes: number;
  }[];
  /** proxy engines: the upstream checker's state (`unknown` reads as `connecting`) */
  health?: 'connecting' | 'up' | 'down' | 'auth-failed';
  error?: string;
  connectionsActive?: number;
  connectionsTotal?: number;
  dialErrors?: number;
}

const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

export function detachedStatusFromGet(
  rec: Pick<EngineRecord, 'tunnel' | 'link'> & { spec: Pick<EngineRecord['spec'], 'type'> },
  text: string | undefined,
  nowMs: number,
): DetachedEngineStatus {
  const base: DetachedEngineStatus = {
    name: rec.tunnel,
    type: rec.spec.type,
    link: rec.link,
    up: false,
    rxBytes: 0,
    txBytes: 0,
    peers: [],
  };
  if (text === undefined) return base;
  let got: ReturnType<typeof parseGet>;
  try {
    got = parseGet(text);
  } catch {
    return base; // a malformed reply reads as an engine that does not answer
  }
  const peers = got.peers.map((p) => {
    const sec = Number(p.last_handshake_time_sec ?? 0);
    const nsec = Number(p.last_handshake_time_nsec ?? 0);
    const at = sec * 1000 + Math.floor(nsec / 1e6);
    const keepalive = liveKeepalive(p.persistent_keepalive_interval);
    return {
      publicKey: b64(String(p.public_key)),
      ...(p.endpoint ? { endpoint: String(p.endpoint) } : {}),
      ...(keepalive ? { persistentKeepalive: String(keepalive) } : {}),
      ...(at > 0 ? { lastHandshakeAgeSec: Math.max(0, Math.round((nowMs - at) / 1000)) } : {}),
      rxBytes: Number(p.rx_bytes ?? 0),
      txBytes: Number(p.tx_bytes ?? 0),
    };
  });
  const ages = peers.flatMap((p) =>
    p.lastHandshakeAgeSec === undefined ? [] : [p.lastHandshakeAgeSec],
  );
  return {
    ...base,
    up: true,
    ...(ages.length ? { lastHandshakeAgeSec: Math.min(...ages) } : {}),
    rxBytes: peers.reduce((s, p) => s + p.rxBytes, 0),
    txBytes: peers.reduce((s, p) => s + p.txBytes, 0),
    peers,
  };
}

export async function detachedEngineStatus(
  state: StateStore,
  nowMs = Date.now(),
): Promise<DetachedEngineStatus[]> {
  const out: DetachedEngineStatus[] = [];
  for (const key of state
    .keys()
    .filter((k) => k.startsWith('engine-'))
    .sort()) {
    const rec = state.get<EngineRecord>(key);
    if (!rec) continue;
    if (isProxyEngine(rec.spec)) {
      const { detachedStats } = await import('./proxy-detached.js');
      const px = await detachedStats(rec.uapiPath);
      const health = px?.health === 'unknown' ? 'connecting' : px?.health;
      out.push({
        name: rec.tunnel,
        type: rec.spec.type,
        up: health === 'up',
        ...(health ? { health } : {}),
        ...(px?.error ? { error: px.error } : {}),
        rxBytes: px?.bytes.down ?? 0,
        txBytes: px?.bytes.up ?? 0,
        peers: [],
        ...(px
          ? {
              connectionsActive: px.connections.active,
              connectionsTotal: px.connections.total,
              dialErrors: Object.values(px.dialErrors).reduce((a, n) => a + (n ?? 0), 0),
            }
          : {}),
      });
      continue;
    }
    const text = await uapiGet(rec.uapiPath).catch(() => undefined);
    out.push(detachedStatusFromGet(rec, text, nowMs));
  }
  return out;
}
