/**
 * Obfuscation profiles at run time (docs/architecture.md#obfuscation-profiles): which profile
 * each amneziawg tunnel with `profiles` runs, the move to the next one when the tunnel is down
 * for `handshake` or `no-data` (the path drops this obfuscation), and the profile that works,
 * remembered per network in the state directory so that the next start there begins with it.
 *
 * Policy (pure but for the state store; the clock is given):
 * - the tunnel goes down for `handshake` or `no-data` (the rating already waited its bound):
 *   the next profile, wrapping; then none before `holdMs` — the detection bound, the time the
 *   new profile needs to be judged — however long the tunnel stays down;
 * - the tunnel is up: its profile is the one that works; written for the current network
 *   when it differs from what is remembered there;
 * - other reasons (`stopped`, `probe-failed`) switch nothing: the obfuscation is not the cause;
 * - the network changes (another default gateway): each tunnel takes the profile remembered
 *   for that network, else keeps its own.
 *
 * The network: the default route's gateway and interface, with the gateway's MAC from the
 * neighbour table and the Wi-Fi SSID when known (a MAC or SSID on one side only does not tell
 * two networks apart).
 */
import { activeProfile } from '../config/profiles.js';
import type { Config } from '../config/schema.js';
import { isObject } from '../util/shape.js';
import { checkedRecord, type StateStore } from '../util/state.js';
import { NO_DATA_ONE_WAY_MS } from './data-path.js';
import type { Rating } from './health-rating.js';

export const PROFILES_STATE_KEY = 'profiles';
/** switches kept for status (all tunnels) */
export const PROFILE_HISTORY = 32;
/** networks remembered; the least recently used goes first */
export const MAX_NETWORKS = 64;

export interface NetworkId {
  gateway: string;
  interface: string;
  /** the gateway's link-layer address (neighbour table), when known */
  mac?: string;
  /** the Wi-Fi network's SSID (as `iw` prints it), where the OS gives one */
  ssid?: string;
}

/** why a profile was switched: the tunnel's down reason, or `network` (the remembered one) */
export type SwitchReason = 'handshake' | 'no-data' | 'network';

export interface ProfileSwitch {
  /** RFC 3339 */
  at: string;
  tunnel: string;
  from: string;
  to: string;
  reason: SwitchReason;
}

interface NetworkRecord extends NetworkId {
  /** RFC 3339: last written */
  at: string;
  /** tunnel → the profile that worked there */
  tunnels: Record<string, string>;
}
interface ProfilesRecord {
  version: 1;
  networks: NetworkRecord[];
}

const isRecord = (r: unknown): r is ProfilesRecord =>
  isObject(r) &&
  r.version === 1 &&
  Array.isArray(r.networks) &&
  r.networks.every(
    (n: unknown) =>
      isObject(n) &&
      typeof n.gateway === 'string' &&
      typeof n.interface === 'string' &&
      (n.mac === undefined || typeof n.mac === 'string') &&
      (n.ssid === undefined || typeof n.ssid === 'string') &&
      typeof n.at === 'string' &&
      isObject(n.tunnels) &&
      Object.values(n.tunnels).every((v) => typeof v === 'string'),
  );

export function sameNetwork(a: NetworkId, b: NetworkId): boolean {
  return (
    a.gateway === b.gateway &&
    a.interface === b.interface &&
    (a.mac === undefined || b.mac === undefined || a.mac === b.mac) &&
    (a.ssid === undefined || b.ssid === undefined || a.ssid === b.ssid)
  );
}

export function networkLabel(n: NetworkId): string {
  return `${n.gateway} dev ${n.interface}${n.mac ? ` lladdr ${n.mac}` : ''}${n.ssid ? ` ssid ${JSON.stringify(n.ssid)}` : ''}`;
}

/** no second switch before the new profile could be judged: the tunnel's detection bound (ms) */
export function holdMs(downAfterS: number): number {
  return Math.max(downAfterS * 1000, NO_DATA_ONE_WAY_MS);
}

export class ProfileSwitcher {
  private readonly active = new Map<string, string>();
  private readonly lastSwitch = new Map<string, number>();
  private readonly history_: ProfileSwitch[] = [];
  private network_: NetworkId | undefined;
  /** tunnel → its active profile, as of its last rating (status) */
  private readonly rated = new Map<string, string>();
  /** tunnel → the profile known to be remembered for the current network (no re-read each tick) */
  private readonly written = new Map<string, string>();

  constructor(
    private readonly state: StateStore | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** tunnel → its active profile (what the next run's engine spec takes) */
  get profiles(): ReadonlyMap<string, string> {
    return this.active;
  }

  /** the switches, oldest first (at most PROFILE_HISTORY) */
  get history(): readonly ProfileSwitch[] {
    return this.history_;
  }

  get network(): NetworkId | undefined {
    return this.network_;
  }

  /** what status shows of a tunnel rated last tick: its active profile and its switches */
  view(tunnel: string): { active: string; switches: ProfileSwitch[] } | undefined {
    const active = this.rated.get(tunnel);
    if (active === undefined) return undefined;
    return { active, switches: this.history_.filter((h) => h.tunnel === tunnel) };
  }

  /** the tunnel's active profile (undefined: the tunnel has no profiles) */
  activeOf(cfg: Config, tunnel: string): string | undefined {
    const t = cfg.tunnels[tunnel];
    return t?.type === 'amneziawg'
      ? activeProfile(t.profiles, this.active.get(tunnel))?.name
      : undefined;
  }

  /**
   * The network the run probed (undefined: no default route). On a change each tunnel with
   * profiles takes the one remembered there; returns those switches.
   */
  setNetwork(n: NetworkId | undefined, cfg: Config): ProfileSwitch[] {
    const prev = this.network_;
    if (n && prev && sameNetwork(n, prev)) {
      if ((n.mac && !prev.mac) || (n.ssid && !prev.ssid)) this.network_ = n;
      return [];
    }
    this.network_ = n;
    this.written.clear();
    if (!n) return [];
    const known = this.find(n)?.tunnels ?? {};
    const out: ProfileSwitch[] = [];
    for (const [name, t] of Object.entries(cfg.tunnels)) {
      if (t.type !== 'amneziawg' || !t.profiles) continue;
      const want = known[name];
      const cur = activeProfile(t.profiles, this.active.get(name))!.name;
      if (want === undefined || want === cur || !t.profiles.some((p) => p.name === want)) continue;
      out.push(this.switchTo(name, cur, want, 'network'));
      this.lastSwitch.delete(name);
    }
    return out;
  }

  /**
   * One tunnel's rating this tick: the switch it causes, if any (the loop then applies the
   * new profile), and the working profile remembered when it is up.
   */
  rate(cfg: Config, tunnel: string, r: Rating | undefined): ProfileSwitch | undefined {
    const t = cfg.tunnels[tunnel];
    if (t?.type !== 'amneziawg' || !t.profiles) {
      this.rated.delete(tunnel);
      return undefined;
    }
    const cur = activeProfile(t.profiles, this.active.get(tunnel))!.name;
    this.rated.set(tunnel, cur);
    if (!r) return undefined;
    if (r.state === 'up') {
      this.lastSwitch.delete(tunnel);
      this.remember(tunnel, cur);
      return undefined;
    }
    if (r.state !== 'down' || (r.reason !== 'handshake' && r.reason !== 'no-data')) return;
    if (t.profiles.length < 2) return undefined;
    const last = this.lastSwitch.get(tunnel);
    const t0 = this.now();
    if (last !== undefined && t0 - last < holdMs(t.downAfter)) return undefined;
    const i = t.profiles.findIndex((p) => p.name === cur);
    const next = t.profiles[(i + 1) % t.profiles.length]!.name;
    this.lastSwitch.set(tunnel, t0);
    return this.switchTo(tunnel, cur, next, r.reason);
  }

  /** forget tunnels the config no longer has (or whose profiles went) */
  prune(cfg: Config): void {
    for (const name of [...this.rated.keys()]) if (!cfg.tunnels[name]) this.rated.delete(name);
    for (const name of [...this.active.keys()]) {
      const t = cfg.tunnels[name];
      if (t?.type !== 'amneziawg' || !t.profiles?.some((p) => p.name === this.active.get(name))) {
        this.active.delete(name);
        this.lastSwitch.delete(name);
      }
    }
  }

  private switchTo(tunnel: string, from: string, to: string, reason: SwitchReason): ProfileSwitch {
    this.active.set(tunnel, to);
    this.rated.set(tunnel, to);
    const s: ProfileSwitch = { at: new Date(this.now()).toISOString(), tunnel, from, to, reason };
    this.history_.push(s);
    if (this.history_.length > PROFILE_HISTORY) this.history_.shift();
    return s;
  }

  private read(): ProfilesRecord {
    const r = this.state
      ? checkedRecord(this.state, PROFILES_STATE_KEY, isRecord, 'obfuscation profiles')
      : undefined;
    return r ?? { version: 1, networks: [] };
  }

  private find(n: NetworkId): NetworkRecord | undefined {
    return this.read().networks.find((r) => sameNetwork(r, n));
  }

  private remember(tunnel: string, profile: string): void {
    const n = this.network_;
    if (!n || !this.state || this.written.get(tunnel) === profile) return;
    this.written.set(tunnel, profile);
    const rec = this.read();
    const i = rec.networks.findIndex((r) => sameNetwork(r, n));
    const had = i >= 0 ? rec.networks[i]! : undefined;
    if (
      had?.tunnels[tunnel] === profile &&
      (had.mac ?? '') === (n.mac ?? had.mac ?? '') &&
      (had.ssid ?? '') === (n.ssid ?? had.ssid ?? '')
    )
      return;
    const entry: NetworkRecord = {
      gateway: n.gateway,
      interface: n.interface,
      ...((n.mac ?? had?.mac) ? { mac: n.mac ?? had!.mac! } : {}),
      ...((n.ssid ?? had?.ssid) ? { ssid: n.ssid ?? had!.ssid! } : {}),
      at: new Date(this.now()).toISOString(),
      tunnels: { ...had?.tunnels, [tunnel]: profile },
    };
    const rest = rec.networks.filter((_, j) => j !== i);
    const networks = [entry, ...rest].slice(0, MAX_NETWORKS);
    this.state.set(PROFILES_STATE_KEY, { version: 1, networks });
  }
}
