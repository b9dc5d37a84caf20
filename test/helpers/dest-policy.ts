/**
 * A firewall policy of destination rules only (no tunnel, no cgroup): each rule drops what its
 * sets hold — static `d4_<rule>`/`d6_<rule>` with the given elements, a learned `l4_<rule>` when
 * asked. For the firewall driver's set tests (unit and netns).
 */
import type { DestSet, RuleSets } from '../../src/model/policy.js';
import type { NftPolicy } from '../../src/resources/firewall/policy.js';

export interface DestRule {
  name: string;
  v4?: string[];
  v6?: string[];
  learned4?: boolean;
}

export function destPolicy(
  table: string,
  rules: DestRule[],
  killSwitch: 'on' | 'off' = 'off',
): NftPolicy {
  const sets: DestSet[] = [];
  const apps: NftPolicy['apps'] = [];
  for (const r of rules) {
    const to: RuleSets = {};
    if (r.v4) {
      sets.push({ name: `d4_${r.name}`, kind: 'static', family: 4, elements: r.v4 });
      to.static4 = `d4_${r.name}`;
    }
    if (r.learned4) {
      sets.push({ name: `l4_${r.name}`, kind: 'learned', family: 4 });
      to.learned4 = `l4_${r.name}`;
    }
    if (r.v6) {
      sets.push({ name: `d6_${r.name}`, kind: 'static', family: 6, elements: r.v6 });
      to.static6 = `d6_${r.name}`;
    }
    apps.push({ name: r.name, to, action: { type: 'drop' } });
  }
  return {
    table,
    linkPrefix: 'awg-',
    fwmarkMask: 0x0f000000,
    bypassMark: 0x0f000000,
    killSwitch,
    dnsLeakProtection: false,
    tunnels: [],
    apps,
    blockMarks: [],
    sets,
  };
}
