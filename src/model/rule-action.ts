/**
 * A rule's action in the firewall, from its target, its fallback and the health of its
 * tunnel (model/desired.ts builds the policy with it). Pure.
 */
import type { Config, Rule } from '../config/schema.js';
import type { AppAction } from './policy.js';

/**
 * A rule's firewall action now (docs/architecture.md#per-app-placement-tunnel-health-and-fallbacks; the same table as model/match.ts effectiveRoute):
 * target `block` or fallback `drop` → drop; target `direct` → direct; tunnel up → its mark;
 * tunnel down → allow-direct: direct, block: drop, failover: drop — the placer moves each
 * process on to its next matching rule, so what stays in this cgroup has none left.
 */
export function ruleAction(
  rule: Pick<Rule, 'target' | 'fallback'>,
  mark: number | undefined,
  ipv6: Config['ipv6'],
  down: ReadonlySet<string>,
): AppAction {
  if (rule.target === 'block' || rule.fallback === 'drop') return { type: 'drop' };
  if (rule.target === 'direct') return { type: 'direct' };
  if (!down.has(rule.target)) return { type: 'mark', mark: mark!, ipv6 };
  return rule.fallback === 'allow-direct' ? { type: 'direct' } : { type: 'drop' };
}
