/**
 * Sticky fallbacks (`rules[].sticky: true`, docs/architecture.md#sticky-fallbacks): a rule that
 * took its fallback because its target tunnel went down keeps it after the tunnel is back,
 * until the network changes (another default gateway, interface or gateway MAC: the identity
 * obfuscation profiles are remembered by), the followed config changes or `awg apply` runs.
 *
 * A hold begins when a sticky rule's target enters the down set (every health tick), so it
 * changes nothing while the tunnel is down; it starts to matter when the tunnel is up again:
 * the rule's name is then in `held`, which the firewall (model/desired.ts), the placer
 * (procs/placer.ts) and every route reading (model/match.ts TunnelUp) take as "the target is
 * down for this rule". Pure bookkeeping: the caller emits the events and wakes the loop.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { ruleName } from '../model/match.js';
import { checkedRecord, type StateStore } from '../util/state.js';
import { sameNetwork, type NetworkId } from './profile-switch.js';

/** the state key of the holds (the state directory's `sticky` record) */
export const STICKY_STATE_KEY = 'sticky';

/** a rule held on its fallback */
export interface StickyHold {
  rule: string;
  tunnel: string;
  /** when it took the fallback (epoch ms): its tunnel went down */
  sinceMs: number;
}

/** why holds ended */
export type StickyRelease = 'network' | 'config' | 'apply' | 'rule';

/** a change of the holds that shows (the tunnel is up): for an event each */
export type StickyChange =
  | { type: 'held'; hold: StickyHold }
  | { type: 'released'; hold: StickyHold; reason: StickyRelease };

/** the sticky rules of a config that can take a fallback: rule name → its target tunnel */
export function stickyRules(config: Config): Map<string, string> {
  const out = new Map<string, string>();
  config.rules.forEach((r, i) => {
    if (!r.sticky || !r.enabled || r.fallback === 'drop') return;
    if (config.tunnels[r.target] === undefined) return;
    out.set(ruleName(r, i), r.target);
  });
  return out;
}

export class StickyHolds {
  private readonly holds = new Map<string, StickyHold>();
  /** the network the last config read saw (undefined: no default route) */
  private network: NetworkId | undefined;
  private seenNetwork = false;
  /** fingerprint of the followed config the holds were taken under */
  private configKey: string | undefined;
  /** the config last followed, and its fingerprint */
  private config: Config | undefined;
  private configHash = '';
  /** the tunnels down at the last follow (a hold shows once its tunnel left this set) */
  private down: ReadonlySet<string> = new Set();
  /** what the state store holds, as written (no write when nothing changed) */
  private saved = '';

  constructor(private readonly state?: StateStore) {
    const r = state && checkedRecord(state, STICKY_STATE_KEY, isStickyRecord, 'sticky holds');
    if (!r) return;
    for (const h of r.holds) this.holds.set(h.rule, { ...h });
    this.network = r.network ?? undefined;
    this.seenNetwork = true;
    this.configKey = r.config;
    this.saved = JSON.stringify(r);
  }

  /** rules held on their fallback whose tunnel is up again: what routing reads */
  get held(): ReadonlySet<string> {
    return new Set(
      [...this.holds.values()].filter((h) => !this.down.has(h.tunnel)).map((h) => h.rule),
    );
  }

  /** every hold, by rule name (status: the held ones whose tunnel is up) */
  list(): StickyHold[] {
    return [...this.holds.values()].sort((a, b) => a.rule.localeCompare(b.rule));
  }

  /**
   * A health tick under the followed `config`: sticky rules whose target is down begin a hold
   * (when `fault` says the path failed it: not awg's own engine stopping, as when a run
   * replaces it); holds of rules gone (or no longer sticky, or retargeted) end; a changed
   * config ends all. Returns what shows: a hold whose tunnel came back up (`held`), a release
   * while up.
   */
  follow(
    config: Config,
    down: ReadonlySet<string>,
    nowMs: number,
    fault: (tunnel: string) => boolean = () => true,
  ): StickyChange[] {
    const out: StickyChange[] = [];
    // the followed config is one object per read: hashed once per read, not every tick
    if (config !== this.config) this.configHash = fingerprint(config);
    this.config = config;
    const key = this.configHash;
    if (this.configKey !== undefined && key !== this.configKey)
      out.push(...this.releaseAll('config'));
    this.configKey = key;
    const rules = stickyRules(config);
    for (const h of [...this.holds.values()])
      if (rules.get(h.rule) !== h.tunnel) out.push(...this.end(h, 'rule'));
    for (const [rule, tunnel] of rules)
      if (down.has(tunnel) && fault(tunnel) && !this.holds.has(rule))
        this.holds.set(rule, { rule, tunnel, sinceMs: nowMs });
    const before = this.down;
    this.down = new Set(down);
    for (const h of this.holds.values())
      if (before.has(h.tunnel) && !down.has(h.tunnel)) out.push({ type: 'held', hold: h });
    this.save();
    return out;
  }

  /**
   * The network a config read's facts show (undefined: no default route): a change from the
   * one seen before ends every hold (a MAC learned later is the same network: sameNetwork).
   */
  setNetwork(n: NetworkId | undefined): StickyChange[] {
    const prev = this.network;
    const first = !this.seenNetwork;
    this.seenNetwork = true;
    this.network = n;
    const same = prev === undefined || n === undefined ? prev === n : sameNetwork(prev, n);
    const out = first || same ? [] : this.releaseAll('network');
    this.save();
    return out;
  }

  /** End every hold (`awg apply`, a network or config change). */
  releaseAll(reason: StickyRelease): StickyChange[] {
    const out = [...this.holds.values()].flatMap((h) => this.end(h, reason));
    this.save();
    return out;
  }

  /** the holds with their network and config into the state store: removed when there are none */
  private save(): void {
    if (!this.state) return;
    const rec: StickyRecord | undefined =
      this.holds.size && this.configKey !== undefined
        ? {
            version: 1,
            network: this.network ?? null,
            config: this.configKey,
            holds: this.list().map(({ rule, tunnel, sinceMs }) => ({ rule, tunnel, sinceMs })),
          }
        : undefined;
    const text = rec ? JSON.stringify(rec) : '';
    if (text === this.saved) return;
    this.saved = text;
    if (rec) this.state.set(STICKY_STATE_KEY, rec);
    else this.state.delete(STICKY_STATE_KEY);
  }

  private end(h: StickyHold, reason: StickyRelease): StickyChange[] {
    this.holds.delete(h.rule);
    // a hold whose tunnel is still down changed nothing yet: no event
    return this.down.has(h.tunnel) ? [] : [{ type: 'released', hold: h, reason }];
  }
}

/** a config's identity for "the config changed" (the followed config is re-read every run) */
function fingerprint(config: Config): string {
  return createHash('sha256').update(JSON.stringify(config)).digest('base64');
}

/** the `sticky` state record */
interface StickyRecord {
  version: 1;
  /** the network the holds were taken on (null: no default route) */
  network: NetworkId | null;
  /** the followed config's fingerprint */
  config: string;
  holds: StickyHold[];
}

const str = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= max;

/** a record as this version writes it; anything else is set aside (a hostile or torn file) */
function isStickyRecord(r: unknown): r is StickyRecord {
  if (typeof r !== 'object' || r === null) return false;
  const o = r as Record<string, unknown>;
  const n = o.network as Record<string, unknown> | null;
  return (
    o.version === 1 &&
    str(o.config, 128) &&
    (n === null ||
      (typeof n === 'object' &&
        str(n.gateway, 64) &&
        str(n.interface, 64) &&
        (n.mac === undefined || str(n.mac, 64)) &&
        (n.ssid === undefined || str(n.ssid, 128)))) &&
    Array.isArray(o.holds) &&
    o.holds.length <= 1024 &&
    o.holds.every((h: unknown) => {
      const x = h as Record<string, unknown>;
      return (
        typeof h === 'object' &&
        h !== null &&
        str(x.rule, 256) &&
        str(x.tunnel, 64) &&
        typeof x.sinceMs === 'number' &&
        Number.isFinite(x.sinceMs)
      );
    })
  );
}
