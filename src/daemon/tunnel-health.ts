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
 * On top (health-rating.ts): `down` for `no-data` when handshakes are answered but our data
 * is not (data-path.ts), and for `probe-failed` when the tunnel's configured probe fails
 * (health-probe.ts); each state carries its reason, since when, and when it was last up.
 *
 * Proxy tunnels: the upstream health checker's state (`unknown` counts as connecting).
 * Only `down` and `auth-failed` make rules take their fallback: `connecting` routes into the
 * tunnel (its traffic waits there for the first handshake instead of going direct).
 */
import { isWgLike, type Config } from '../config/schema.js';
import { sameSet } from '../util/canonical.js';
import type { HealthState } from './names.js';
import {
  ByteWatch,
  controlSizes,
  DATA_PROBE_AFTER_MS,
  NO_DATA_MS,
  NO_DATA_ONE_WAY_MS,
  peerNoData,
  type DataPathSample,
} from './data-path.js';
import { TunnelRating, type DownReason, type Rating } from './health-rating.js';
import type { ProfileSwitch } from './profile-switch.js';
import type { ProbeState } from './health-probe.js';

export type { HealthState } from './names.js';

/** a tunnel's active obfuscation profile and its switches (profile-switch.ts) */
export interface ProfileView {
  view(tunnel: string): { active: string; switches: ProfileSwitch[] } | undefined;
}

/** a tunnel's active probe as status shows it (health-probe.ts) */
export interface ProbeView {
  stateOf(tunnel: string): ProbeState | undefined;
}

/** the rules held on a tunnel's fallback although it is up (sticky.ts) */
export interface StickyView {
  readonly held: ReadonlySet<string>;
  list(): readonly { rule: string; tunnel: string; sinceMs: number }[];
}

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

/** the data probe's source: the tunnel's first IPv4 address, else its first (data-path.ts) */
export function probeSource(addresses: readonly string[]): string | undefined {
  const a = addresses.map((c) => c.split('/')[0]!);
  return a.find((x) => !x.includes(':')) ?? a[0];
}

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
      dataUnansweredMs?: number;
      lastRxKeepalive?: boolean;
    }[];
  }[];
  probe(tunnel: string, opts?: { peer?: string; data?: boolean; from?: string }): void;
}

export interface HealthChange {
  tunnel: string;
  state: HealthState;
  reason?: DownReason;
  error?: string;
  /** ms (the monitor's clock) of the change */
  sinceMs: number;
  /** ms of the last tick the tunnel was up (0: never) */
  lastUpMs: number;
}

type EngineRow = ReturnType<HealthEngines['stats']>[number];

/**
 * The daemon's view of every tunnel's health. `tick()` rates each tunnel of the config from
 * the engines' stats (WireGuard: handshakes and the data path) or the proxy checker's last
 * word, and the configured probe's; keeps probing tunnels that are not up and silent peers of
 * those that are (a data message to peers of a tunnel down for no-data: is the path back?),
 * and reports transitions and whether the set of down tunnels changed (the firewall's rule
 * actions and the placer's failover follow it).
 */
export class HealthMonitor {
  private ratings = new Map<string, TunnelRating>();
  private errors = new Map<string, string>();
  /** proxy tunnels: the upstream checker's last state, from engine 'health' events */
  private proxy = new Map<string, { state: 'up' | 'down' | 'auth-failed'; error?: string }>();
  /** tunnels whose configured probe failed past its threshold, with the probe's error */
  private probeFailed = new Map<string, string>();
  private down_ = new Set<string>();
  /** per tunnel/peer: byte counters at the last tick and when rx last moved */
  private peerSeen = new Map<
    string,
    { rx: number; tx: number; rxAt: number; txSinceRx: boolean }
  >();
  /** external engines' peers: the data path derived from byte counters */
  private watches = new Map<string, ByteWatch>();
  /** the obfuscation profiles' view (tunnels.ts sets it): status shows it beside the health */
  profiles: ProfileView | undefined;
  /** the active probes (tunnels.ts sets it): status shows their failures */
  probes: ProbeView | undefined;
  /** the sticky holds (tunnels.ts sets it): status shows the rules held on a tunnel's fallback */
  sticky: StickyView | undefined;

  constructor(
    private readonly engines: HealthEngines,
    private readonly now: () => number = Date.now,
  ) {}

  /** tunnels not up: given to buildDesired (rules' fallbacks) and the placer (failover) */
  get down(): ReadonlySet<string> {
    return this.down_;
  }

  stateOf(tunnel: string): HealthState {
    return this.ratings.get(tunnel)?.current?.state ?? 'connecting';
  }

  /** the state with its reason and times (undefined: not rated yet) */
  ratingOf(tunnel: string): Rating | undefined {
    return this.ratings.get(tunnel)?.current;
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

  /** the tunnel's configured probe: failed past its threshold (with why), or not (undefined) */
  setProbe(tunnel: string, failed: string | undefined): void {
    if (failed === undefined) this.probeFailed.delete(tunnel);
    else this.probeFailed.set(tunnel, failed);
  }

  tick(cfg: Config): { changes: HealthChange[]; downChanged: boolean } {
    const stats = new Map(this.engines.stats().map((s) => [s.tunnel, s]));
    const errors = new Map<string, string>();
    const changes: HealthChange[] = [];
    const t = this.now();
    const ratings = new Map<string, TunnelRating>();
    for (const [name, tun] of Object.entries(cfg.tunnels)) {
      const rating = this.ratings.get(name) ?? new TunnelRating();
      ratings.set(name, rating);
      const before = rating.current;
      let base: HealthState;
      let baseReason: DownReason | undefined;
      let noData = false;
      /** initiating peers (keys) whose data has been unanswered DATA_PROBE_AFTER_MS */
      const unanswered: string[] = [];
      let errorText: string | undefined;
      if (isWgLike(tun)) {
        const s = stats.get(name);
        // not hosted (yet): the next run starts it; keep what we knew
        base = s
          ? wgHealth(
              s.up,
              s.peers.map((p) => ({
                hasEndpoint: p.endpoint !== undefined,
                lastHandshakeMs: p.lastHandshakeMs,
                handshakePendingMs: p.handshakePendingMs,
              })),
              tun.downAfter * 1000,
            )
          : (before?.state ?? 'connecting');
        baseReason = !s ? before?.reason : s.up ? 'handshake' : 'stopped';
        errorText =
          baseReason === 'stopped'
            ? 'the engine is not running'
            : `no handshake answered for ${tun.downAfter}s`;
        if (s) {
          const obf = 'obfuscation' in tun ? tun.obfuscation : undefined;
          noData = this.noData(name, s, t, obf, unanswered);
        }
      } else {
        const px = this.proxy.get(name);
        base = px?.state ?? 'connecting';
        baseReason = base === 'auth-failed' ? 'auth-failed' : 'proxy';
        errorText = px?.error;
      }
      const { rating: r, changed } = rating.next(
        { base, baseReason, noData, probeFailed: this.probeFailed.has(name) },
        t,
      );
      const error =
        r.reason === 'probe-failed'
          ? `probe failed: ${this.probeFailed.get(name) ?? 'recovering'}`
          : r.reason === 'no-data'
            ? `handshakes answered, but our data went unanswered for ${NO_DATA_MS / 1000}s (${NO_DATA_ONE_WAY_MS / 1000}s one-way): data messages dropped on the path?`
            : isDown(r.state)
              ? errorText
              : undefined;
      if (error) errors.set(name, error);
      if (isWgLike(tun) && stats.has(name))
        this.keepProbing(name, stats.get(name)!, r, probeSource(tun.addresses), unanswered);
      if (changed && !(before === undefined && r.state === 'connecting'))
        changes.push({
          tunnel: name,
          state: r.state,
          ...(r.reason ? { reason: r.reason } : {}),
          ...(error ? { error } : {}),
          sinceMs: r.sinceMs,
          lastUpMs: r.lastUpMs,
        });
    }
    this.ratings = ratings;
    this.errors = errors;
    const d = downSet(new Map([...ratings].map(([n, r]) => [n, r.current!.state])));
    const downChanged = !sameSet(d, this.down_);
    if (downChanged) this.down_ = d;
    return { changes, downChanged };
  }

  /** every initiating peer with a fresh session has our data unanswered past the bound */
  private noData(
    tunnel: string,
    s: EngineRow,
    t: number,
    obf: Parameters<typeof controlSizes>[0],
    unanswered: string[],
  ): boolean {
    let fresh = 0;
    let dead = 0;
    for (const p of s.peers) {
      if (p.endpoint === undefined) continue;
      let sample: DataPathSample;
      if (p.dataUnansweredMs !== undefined)
        sample = {
          lastHandshakeMs: p.lastHandshakeMs,
          dataUnansweredMs: p.dataUnansweredMs,
          lastRxKeepalive: p.lastRxKeepalive ?? false,
        };
      else {
        const key = `${tunnel}/${p.publicKey}`;
        let w = this.watches.get(key);
        if (!w) this.watches.set(key, (w = new ByteWatch(controlSizes(obf))));
        sample = { lastHandshakeMs: p.lastHandshakeMs, ...w.sample(p.rxBytes, p.txBytes, t) };
      }
      if (sample.lastHandshakeMs <= 0) continue;
      if (sample.dataUnansweredMs >= DATA_PROBE_AFTER_MS) unanswered.push(p.publicKey);
      fresh++;
      if (peerNoData(sample, t)) dead++;
    }
    return fresh > 0 && dead === fresh;
  }

  private keepProbing(
    name: string,
    s: EngineRow,
    r: Rating,
    from: string | undefined,
    unanswered: readonly string[],
  ): void {
    const src = from === undefined ? {} : { from };
    if (r.state !== 'up') this.engines.probe(name);
    if (r.state === 'up') this.probeSilentPeers(name, s.peers);
    // is the data path back? a data message the peer answers
    if (r.reason === 'no-data') this.engines.probe(name, { data: true, ...src });
    // our data unanswered for a while: the peer answers a data probe at once if it is alive
    // (a one-way flow), so neither a late answer nor a stale keepalive decides (data-path.ts)
    else if (r.state === 'up')
      for (const peer of unanswered) this.engines.probe(name, { peer, data: true, ...src });
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
