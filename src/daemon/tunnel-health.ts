/**
 * Tunnel health as the loop sees it (docs/architecture.md#per-app-placement-tunnel-health-and-fallbacks: rules switch fallbacks while their
 * target is "not up"): the rating (pure functions) and the daemon's monitor that applies it
 * every second and on engine events.
 *
 * WireGuard/AmneziaWG, from the engine's peers (only peers with an endpoint initiate; a
 * tunnel with none — a server — is always up):
 * - `down`: the engine is not running, or every initiating peer has had a handshake
 *   initiation unanswered for at least `downAfterMs` (a rekey unanswered that long counts
 *   too, even while the old session has not expired yet);
 * - `up`: not down, and some peer completed a handshake (ever, since the engine started);
 * - `connecting`: not down and no handshake yet.
 * A down tunnel stays down until a handshake completes (the unanswered series keeps its
 * start time across the daemon's probes), so it does not flap at every probe.
 *
 * Proxy tunnels: the upstream health checker's state (`unknown` counts as connecting).
 * Only `down` and `auth-failed` make rules take their fallback: `connecting` routes into the
 * tunnel (its traffic waits there for the first handshake instead of going direct).
 */
import { isWgLike, type Config } from '../config/schema.js';
import { sameSet } from '../util/canonical.js';

export type HealthState = 'connecting' | 'up' | 'down' | 'auth-failed';

export interface WgPeerHealth {
  hasEndpoint: boolean;
  /** Unix ms; 0 = never */
  lastHandshakeMs: number;
  handshakePendingMs: number;
}

export function wgHealth(
  running: boolean,
  peers: readonly WgPeerHealth[],
  downAfterMs: number,
): HealthState {
  if (!running) return 'down';
  const initiating = peers.filter((p) => p.hasEndpoint);
  if (initiating.length === 0) return 'up';
  // also when a session still exists: a rekey unanswered that long means the peer is gone
  if (initiating.every((p) => p.handshakePendingMs >= downAfterMs)) return 'down';
  return peers.some((p) => p.lastHandshakeMs > 0) ? 'up' : 'connecting';
}

/** whether rules targeting a tunnel in this state take their fallback */
export const isDown = (s: HealthState | undefined): boolean => s === 'down' || s === 'auth-failed';

/** the set of tunnels not up, for BuildOptions.down */
export function downSet(states: ReadonlyMap<string, HealthState>): Set<string> {
  return new Set([...states].filter(([, s]) => isDown(s)).map(([t]) => t));
}

/**
 * A peer we sent to but did not hear from for this long gets a handshake initiation: if it
 * goes unanswered for `downAfter`, the tunnel is down. WireGuard alone only notices at the
 * next rekey when we merely send keepalives. Longer than KEEPALIVE_TIMEOUT (10 s), within
 * which a live peer answers data with at least a keepalive.
 */
export const SILENCE_PROBE_MS = 11_000;

/** What the monitor needs of the engine host (resources/engine/inproc.ts). */
export interface HealthEngines {
  stats(): readonly {
    tunnel: string;
    up: boolean;
    peers: readonly {
      publicKey: string;
      endpoint?: string;
      lastHandshakeMs: number;
      handshakePendingMs: number;
      rxBytes: number;
      txBytes: number;
    }[];
  }[];
  probe(tunnel: string, opts?: { peer?: string }): void;
}

export interface HealthChange {
  tunnel: string;
  state: HealthState;
  error?: string;
}

/**
 * The daemon's view of every tunnel's health. `tick()` rates each tunnel of the config from
 * the engines' stats (WireGuard) or the proxy checker's last word, keeps probing tunnels that
 * are not up and silent peers of those that are, and reports transitions and whether the set
 * of down tunnels changed (the firewall's rule actions and the placer's failover follow it).
 */
export class HealthMonitor {
  private health = new Map<string, HealthState>();
  private errors = new Map<string, string>();
  /** proxy tunnels: the upstream checker's last state, from engine 'health' events */
  private proxy = new Map<string, { state: 'up' | 'down' | 'auth-failed'; error?: string }>();
  private down_ = new Set<string>();
  /** per tunnel/peer: byte counters at the last tick and when rx last moved */
  private peerSeen = new Map<
    string,
    { rx: number; tx: number; rxAt: number; txSinceRx: boolean }
  >();

  constructor(
    private readonly engines: HealthEngines,
    private readonly now: () => number = Date.now,
  ) {}

  /** tunnels not up: given to buildDesired (rules' fallbacks) and the placer (failover) */
  get down(): ReadonlySet<string> {
    return this.down_;
  }

  stateOf(tunnel: string): HealthState {
    return this.health.get(tunnel) ?? 'connecting';
  }

  errorOf(tunnel: string): string | undefined {
    return this.errors.get(tunnel);
  }

  /** a proxy tunnel's checker reported (engine 'health' event) */
  setProxy(tunnel: string, state: 'up' | 'down' | 'auth-failed', error?: string): void {
    this.proxy.set(tunnel, { state, ...(error ? { error } : {}) });
  }

  proxyError(tunnel: string): string | undefined {
    return this.proxy.get(tunnel)?.error;
  }

  tick(cfg: Config): { changes: HealthChange[]; downChanged: boolean } {
    const stats = new Map(this.engines.stats().map((s) => [s.tunnel, s]));
    const next = new Map<string, HealthState>();
    const errors = new Map<string, string>();
    const changes: HealthChange[] = [];
    for (const [name, t] of Object.entries(cfg.tunnels)) {
      let st: HealthState;
      if (isWgLike(t)) {
        const s = stats.get(name);
        // not hosted (yet): the next run starts it; keep what we knew
        st = s
          ? wgHealth(
              s.up,
              s.peers.map((p) => ({
                hasEndpoint: p.endpoint !== undefined,
                lastHandshakeMs: p.lastHandshakeMs,
                handshakePendingMs: p.handshakePendingMs,
              })),
              t.downAfter * 1000,
            )
          : this.stateOf(name);
        if (s && st !== 'up') this.engines.probe(name);
        if (s && st === 'up') this.probeSilentPeers(name, s.peers);
      } else {
        st = this.proxy.get(name)?.state ?? 'connecting';
      }
      next.set(name, st);
      const error = !isDown(st)
        ? undefined
        : isWgLike(t)
          ? `no handshake answered for ${t.downAfter}s`
          : this.proxy.get(name)?.error;
      if (error) errors.set(name, error);
      const before = this.health.get(name);
      if (before !== st && !(before === undefined && st === 'connecting'))
        changes.push({ tunnel: name, state: st, ...(error ? { error } : {}) });
    }
    this.health = next;
    this.errors = errors;
    const d = downSet(next);
    const downChanged = !sameSet(d, this.down_);
    if (downChanged) this.down_ = d;
    return { changes, downChanged };
  }

  private probeSilentPeers(
    tunnel: string,
    peers: readonly { publicKey: string; endpoint?: string; rxBytes: number; txBytes: number }[],
  ): void {
    const t = this.now();
    for (const p of peers) {
      if (p.endpoint === undefined) continue;
      const key = `${tunnel}/${p.publicKey}`;
      const seen = this.peerSeen.get(key);
      if (!seen || seen.rx !== p.rxBytes) {
        this.peerSeen.set(key, { rx: p.rxBytes, tx: p.txBytes, rxAt: t, txSinceRx: false });
        continue;
      }
      if (seen.tx !== p.txBytes) {
        seen.tx = p.txBytes;
        seen.txSinceRx = true;
      }
      if (seen.txSinceRx && t - seen.rxAt >= SILENCE_PROBE_MS) {
        this.engines.probe(tunnel, { peer: p.publicKey });
        seen.rxAt = t;
        seen.txSinceRx = false;
      }
    }
  }
}
