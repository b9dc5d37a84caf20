/**
 * The destination part of rules (`to:`), as a per-connection router or `awg explain` asks it:
 * does rule i's `to` contain this address, or one of these names? Pure.
 *
 * - A rule without `to` fits every destination; a disabled rule fits none.
 * - Addresses: binary search of the rule's merged intervals (config/lists.ts
 *   intervalsContain), per family; a v4-mapped IPv6 address (`::ffff:a.b.c.d`) is its IPv4
 *   address. A host that is not an address literal fits by its names only.
 * - Names (`to.domains` and list domains): config/domain-set.ts DomainSet (a name and every
 *   name under it; `*.x` the names under x only; `full:`, `keyword:`, `regexp:` entries). The caller says which names a connection
 *   has (the TLS SNI or HTTP Host it sent, names learned from DNS answers): a rule fits when
 *   one of them is in its domains.
 * - `destinations` comes from the config loader (load.ts LoadResult.destinations, by rule
 *   name); a rule with `to` missing from it (the lists were not read) is compiled from its
 *   inline `domains` and `cidrs` only.
 */
import type { Rule } from '../config/schema.js';
import {
  intervalsContain,
  mergeDestinations,
  parseInlineDestinations,
  parseV6,
  type DestinationSet,
  type DomainSet,
} from '../config/lists.js';
import { parseV4 } from '../config/cidr.js';
import { compileMatch, ruleName, type RuleMatch } from './match.js';

export interface CompiledDestinations {
  /** rule `index` (in config.rules) fits `addr` (an address literal, `[v6]` too) or one of `names` */
  fits(index: number, addr: string, names?: readonly string[]): boolean;
  /** rule `index` has domains, so the names of a connection can make it fit */
  hasDomains(index: number): boolean;
  /** some enabled rule has domains */
  readonly anyDomains: boolean;
}

type Parsed = { v4: number } | { v6: bigint } | undefined;

/** an address literal → its number; v4-mapped IPv6 → IPv4 */
export function parseAddr(addr: string): Parsed {
  const a = addr.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
  const v4 = parseV4(a);
  if (v4 !== undefined) return { v4 };
  if (!a.includes(':')) return undefined;
  const v6 = parseV6(a);
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { v4: Number(v6 & 0xffffffffn) };
  return { v6 };
}

interface Entry {
  set: DestinationSet;
  domains: DomainSet | undefined;
}

function inlineSet(rule: Rule): DestinationSet {
  const sets: DestinationSet[] = [];
  if (rule.to?.domains) sets.push(parseInlineDestinations(rule.to.domains, 'domains', '', '').set);
  if (rule.to?.cidrs) sets.push(parseInlineDestinations(rule.to.cidrs, 'cidrs', '', '').set);
  return mergeDestinations(sets);
}

export function compileDestinations(
  rules: readonly Rule[],
  destinations?: ReadonlyMap<string, DestinationSet>,
): CompiledDestinations {
  const entries: (Entry | null | undefined)[] = rules.map((rule, i) => {
    if (rule.enabled === false) return null; // fits nothing
    if (!rule.to) return undefined; // fits everything
    const set = destinations?.get(ruleName(rule, i)) ?? inlineSet(rule);
    const domains = set.domains.size ? set.domains : undefined;
    return { set, domains };
  });
  return {
    fits(index, addr, names) {
      const e = entries[index];
      if (e === null) return false;
      if (e === undefined) return index >= 0 && index < entries.length;
      const a = parseAddr(addr);
      if (a && 'v4' in a && intervalsContain(e.set.v4, a.v4)) return true;
      if (a && 'v6' in a && intervalsContain(e.set.v6, a.v6)) return true;
      return e.domains !== undefined && (names ?? []).some((n) => e.domains!.matchDomain(n));
    },
    hasDomains: (index) => entries[index]?.domains !== undefined,
    anyDomains: entries.some((e) => e?.domains !== undefined),
  };
}

/** The rules with both parts: what a router decides a connection by. */
export interface RuleWalk {
  /**
   * Every enabled rule whose `match` fits the program and whose `to` fits the destination
   * (a missing part fits), in rule order: the first decides, fallbacks walk the rest
   * (match.ts effectiveRoute).
   */
  chain(exePath: string, addr: string, names?: readonly string[]): RuleMatch[];
  /**
   * Could the connection's names change `chain`? True when an enabled rule with domains fits
   * the program but not the address: only then is a name worth waiting for.
   */
  namesMatter(exePath: string, addr: string): boolean;
}

export function compileRuleWalk(
  rules: readonly Rule[],
  destinations?: ReadonlyMap<string, DestinationSet>,
): RuleWalk {
  const dest = compileDestinations(rules, destinations);
  const compiled = rules.flatMap((rule, index) =>
    rule.enabled === false
      ? []
      : [
          {
            index,
            program: rule.match ? compileMatch(rule.match) : () => true,
            info: {
              index,
              name: ruleName(rule, index),
              target: rule.target,
              fallback: rule.fallback ?? 'block',
            } satisfies RuleMatch,
          },
        ],
  );
  return {
    chain: (exe, addr, names) =>
      compiled.filter((c) => c.program(exe) && dest.fits(c.index, addr, names)).map((c) => c.info),
    namesMatter: (exe, addr) =>
      dest.anyDomains &&
      compiled.some((c) => dest.hasDomains(c.index) && c.program(exe) && !dest.fits(c.index, addr)),
  };
}
