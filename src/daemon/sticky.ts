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
import { sameNetwork, type NetworkId } from './profile-switch.js';

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
    return first || same ? [] : this.releaseAll('network');
  }

  /** End every hold (`awg apply`, a network or config change). */
  releaseAll(reason: StickyRelease): StickyChange[] {
    return [...this.holds.values()].flatMap((h) => this.end(h, reason));
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
